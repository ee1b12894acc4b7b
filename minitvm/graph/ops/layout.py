"""``layout_transform`` (NCHW <-> NCHW4c ...) and ``fold_kernel_width`` (a conv's kernel width
folded into NHWC channels): their declarations, numpy references (:func:`layout_transform_np`,
:func:`fold_kernel_width_np`) and topi computes."""
from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from ...topi.nn.conv2d_gemm import fold_kernel_width as topi_fold_kernel_width
from ...topi.nn.conv2d_gemm import folded_width
from ...topi.nn.layout import layout_transform as topi_layout_transform
from ..types import TensorType
from .common import _check_layout, _contig, _conv_out, _op, _positive
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


# ====================================================================== fold_kernel_width
def fold_kernel_width_np(x, kernel_w: int, stride_w: int = 1, dilation_w: int = 1, pad_left: int = 0,
                         pad_right: int = 0):
    """numpy: NHWC ``x`` -> ``[N, H, OW, folded_width(C, kernel_w)]``, ``out[..., ow, kw * C + c] =
    x[..., ow * stride_w + kw * dilation_w - pad_left, c]`` (zeros outside and in the padding)."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad_left, pad_right), (0, 0)))
    ow = (w + pad_left + pad_right - (kernel_w - 1) * dilation_w - 1) // stride_w + 1
    out = np.zeros((n, h, ow, folded_width(c, kernel_w)), x.dtype)
    for kw in range(kernel_w):
        start = kw * dilation_w
        out[..., kw * c:(kw + 1) * c] = xp[:, :, start:start + (ow - 1) * stride_w + 1:stride_w, :]
    return out


@_op("fold_kernel_width", ("data",),
     (Attr("kernel_w", "int", REQUIRED, "the conv's kernel width", check=_positive),
      Attr("stride_w", "int", 1, "the conv's horizontal stride", check=_positive),
      Attr("dilation_w", "int", 1, "the conv's horizontal dilation", check=_positive),
      Attr("pad_left", "int", 0, "the conv's left padding"),
      Attr("pad_right", "int", 0, "the conv's right padding")),
     doc="NHWC im2col along the width only: a few-channel conv (an RGB first layer) becomes a KH x 1 conv "
         "over the kernel width's taps packed as channels (padded to a multiple of 32).")
def _fold_infer(ctx, types, attrs):
    t = types[0]
    if t.ndim != 4:
        raise ctx.shape_error(f"needs a 4-D NHWC input, got {t}")
    _check_layout(ctx, t, "NHWC", "input")
    if attrs["pad_left"] < 0 or attrs["pad_right"] < 0:
        raise ctx.attr_error("pad_left", "and pad_right must not be negative")
    n, h, w, c = t.shape
    ow = _conv_out(ctx, w, attrs["kernel_w"], attrs["stride_w"], attrs["dilation_w"], attrs["pad_left"],
                   attrs["pad_right"], "width")
    return TensorType((n, h, ow, folded_width(c, attrs["kernel_w"])), t.dtype, "NHWC")


_fold_infer.compute(lambda i, a, o: fold_kernel_width_np(i[0], a["kernel_w"], a["stride_w"], a["dilation_w"],
                                                         a["pad_left"], a["pad_right"]))


# ====================================================================== computes (te)
register_compute("layout_transform", lambda node, ins, name: topi_layout_transform(
    ins[0], node.attrs["src_layout"], node.attrs["dst_layout"], node.attrs.get("extents"), name=name))
register_compute("fold_kernel_width", lambda node, ins, name: topi_fold_kernel_width(
    ins[0], node.attrs["kernel_w"], node.attrs["stride_w"], node.attrs["dilation_w"], node.attrs["pad_left"],
    node.attrs["pad_right"], name=name))
