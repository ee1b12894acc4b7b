"""``layout_transform`` (NCHW <-> NCHW4c ...): its declaration, numpy reference
(:func:`layout_transform_np`) and topi compute."""
from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from ...topi.nn.layout import layout_transform as topi_layout_transform
from ..types import TensorType
from .common import _contig, _op
from .registry import REQUIRED, Attr
from .strategy import register_compute


# ====================================================================== layout_transform
def layout_transform_np(x, src: str, dst: str, extents: dict | None = None):
    """numpy: re-lay out ``x`` from ``src`` to ``dst`` (zero-padding split axes; ``extents``
    crops primal axes to their true size, e.g. ``{"C": 3}`` when unpacking NCHW4c)."""
    from ...topi.nn.layout import Layout
    s, d = Layout.parse(src), Layout.parse(dst)
    pos = {ax: i for i, ax in enumerate(s.axes)}
    perm, merged = [], []
    for p in s.primal:
        f = s.factor(p)
        perm.append(pos[(p, 0)])
        if (p, f) in pos:                  # a sub-axis, also one of factor 1 ("OI1o")
            perm.append(pos[(p, f)])
        merged.append(x.shape[pos[(p, 0)]] * f)
    y = np.transpose(x, perm).reshape(merged)
    true = dict(zip(s.primal, merged))
    true.update(extents or {})
    y = y[tuple(slice(0, true[p]) for p in s.primal)]
    y = np.transpose(y, [s.primal.index(p) for p in d.primal])
    pads, split = [], []
    sub = {a for a, f in d.axes if f}
    for p in d.primal:
        f, n = d.factor(p), true[p]
        full = -(-n // f) * f
        pads.append((0, full - n))
        split.extend([full // f, f] if p in sub else [full])
    if any(a for _, a in pads):
        y = np.pad(y, pads)
    y = y.reshape(split)
    spos, k = {}, 0
    for p in d.primal:
        spos[(p, 0)] = k
        k += 1
        if p in sub:
            spos[(p, d.factor(p))] = k
            k += 1
    return _contig(np.transpose(y, [spos[ax] for ax in d.axes]))


@_op("layout_transform", ("data",),
     (Attr("src_layout", "layout", REQUIRED, "layout of the input"),
      Attr("dst_layout", "layout", REQUIRED, "layout of the output"),
      Attr("extents", "any", None, "true primal extents when src is padded, e.g. {'C': 3}")),
     doc="Re-lay out a tensor (e.g. NCHW -> NCHW4c); split axes are zero-padded.")
def _lt_infer(ctx, types, attrs):
    from ...topi.nn.layout import Layout
    t = types[0]
    s, d = Layout.parse(attrs["src_layout"]), Layout.parse(attrs["dst_layout"])
    if sorted(s.primal) != sorted(d.primal):
        raise ctx.attr_error("dst_layout", f"= {d.name!r} has other primal axes than src_layout {s.name!r}")
    if t.layout and t.layout != s.name:
        raise ctx.shape_error(f"input has layout {t.layout}, src_layout is {s.name}")
    try:
        prim = s.primal_shape(t.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"input {t} does not fit src_layout: {e}") from None
    ext = attrs["extents"] or {}
    if not isinstance(ext, dict):
        raise ctx.attr_error("extents", "must be a dict like {'C': 3}")
    for a, n in ext.items():
        if a not in prim or not isinstance(n, (int, np.integer)) or not 0 < n <= prim[a]:
            raise ctx.attr_error("extents", f"{a}={n} must name a primal axis with 0 < extent <= {prim.get(a)}")
        prim[a] = int(n)
    return TensorType(d.shape(prim), t.dtype, d.name)


_lt_infer.compute(lambda i, a, o: layout_transform_np(i[0], a["src_layout"], a["dst_layout"], a["extents"]))


# ====================================================================== computes (te)
register_compute("layout_transform", lambda node, ins, name: topi_layout_transform(
    ins[0], node.attrs["src_layout"], node.attrs["dst_layout"], node.attrs.get("extents"), name=name))
