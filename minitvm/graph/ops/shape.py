"""Shape ops: ``concatenate``, ``flatten``, ``reshape`` (:func:`infer_reshape`), ``transpose``, ``pad``
(declarations, numpy references, topi computes)."""
from __future__ import annotations

import numpy as np

from ...errors import ArgumentError
from ... import te
from ...topi.nn import conv2d as topi_conv2d
from ...topi.nn import injective as topi_injective
from ...topi.nn import transform as topi_transform
from ..types import TensorType
from .common import _canon_axis, _cast, _contig, _op
from .registry import REQUIRED, Attr
from .strategy import register_compute


# ====================================================================== shape ops
@_op("concatenate", ("*data",), (Attr("axis", "int", 1, "axis to join along"),),
     doc="Join tensors along axis; other dimensions must agree.")
def _concat_infer(ctx, types, attrs):
    t0 = types[0]
    axis = _canon_axis(ctx, "axis", attrs["axis"], t0.ndim)
    total = 0
    for i, t in enumerate(types):
        if t.ndim != t0.ndim:
            raise ctx.shape_error(f"input {i} is {t.ndim}-D, input 0 is {t0.ndim}-D")
        if t.dtype != t0.dtype:
            raise ctx.dtype_error(f"input {i} is {t.dtype}, input 0 is {t0.dtype}")
        default = "NCHW" if t.ndim == 4 else ""      # an unnamed 4-D layout is NCHW
        if (t.layout or default) != (t0.layout or default):
            raise ctx.shape_error(f"input {i} has layout {t.layout or 'default'}, input 0 {t0.layout or 'default'}")
        for d in range(t0.ndim):
            if d != axis and t.shape[d] != t0.shape[d]:
                raise ctx.shape_error(f"input {i} {list(t.shape)} differs from input 0 {list(t0.shape)} on axis {d} "
                                      f"(only axis {axis} may differ)")
        total += t.shape[axis]
    shape = list(t0.shape)
    shape[axis] = total
    return TensorType(shape, t0.dtype, t0.layout)


_concat_infer.compute(lambda i, a, o: _contig(np.concatenate(i, axis=a["axis"] % o.ndim)))


@_op("flatten", ("data",), (Attr("axis", "int", 1, "dims before axis form the rows"),),
     doc="Reshape to [prod(shape[:axis]), prod(shape[axis:])] (ONNX Flatten; axis=1 is batch_flatten).")
def _flatten_infer(ctx, types, attrs):
    t = types[0]
    axis = attrs["axis"]
    if not -t.ndim <= axis <= t.ndim:
        raise ctx.attr_error("axis", f"= {axis} is out of range for a {t.ndim}-D input")
    if axis < 0:
        axis += t.ndim
    return TensorType((int(np.prod(t.shape[:axis])), int(np.prod(t.shape[axis:]))), t.dtype)


_flatten_infer.compute(lambda i, a, o: _contig(i[0].reshape(o.shape)))


def infer_reshape(shape, newshape):
    """The output shape of reshaping ``shape`` to ``newshape`` (0 copies the input dim, -1 infers).

    Raises ``ValueError`` with the reason when it does not fit.
    """
    out, neg = [], None
    for i, d in enumerate(newshape):
        if d == 0:
            if i >= len(shape):
                raise ArgumentError(f"0 at position {i} but the input has only {len(shape)} dims")
            out.append(shape[i])
        elif d == -1:
            if neg is not None:
                raise ArgumentError("at most one -1 is allowed")
            neg = i
            out.append(1)
        elif d < -1:
            raise ArgumentError(f"invalid dimension {d}")
        else:
            out.append(d)
    total = int(np.prod(shape, dtype=np.int64))
    known = int(np.prod(out, dtype=np.int64))
    if neg is not None:
        if known == 0 or total % known:
            raise ArgumentError(f"cannot infer the -1 dimension: {total} elements do not divide by {known}")
        out[neg] = total // known
    elif known != total:
        raise ArgumentError(f"{list(shape)} has {total} elements, {list(out)} has {known}")
    return tuple(out)


@_op("reshape", ("data",), (Attr("newshape", "ints", REQUIRED, "target shape; 0 copies, -1 infers"),),
     doc="Reshape (row-major); newshape may use 0 (copy the input dim) and one -1 (infer).")
def _reshape_infer(ctx, types, attrs):
    t = types[0]
    try:
        return TensorType(infer_reshape(t.shape, attrs["newshape"]), t.dtype)
    except ValueError as e:
        raise ctx.attr_error("newshape", f"= {attrs['newshape']} does not fit input {t}: {e}") from None


_reshape_infer.compute(lambda i, a, o: _contig(i[0].reshape(o.shape)))


@_op("transpose", ("data",), (Attr("axes", "ints", None, "permutation (default: reverse)"),),
     doc="Permute dimensions.")
def _transpose_infer(ctx, types, attrs):
    t = types[0]
    axes = attrs["axes"] if attrs["axes"] is not None else tuple(range(t.ndim))[::-1]
    if sorted(a % t.ndim if -t.ndim <= a < t.ndim else -1 for a in axes) != list(range(t.ndim)):
        raise ctx.attr_error("axes", f"= {axes} is not a permutation of {t.ndim} axes")
    return TensorType(tuple(t.shape[a] for a in axes), t.dtype)


_transpose_infer.compute(lambda i, a, o: _contig(np.transpose(i[0], a["axes"])))


@_op("pad", ("data",),
     (Attr("pad_width", "pad_width", REQUIRED, "((before, after), ...) per dimension"),
      Attr("value", "float", 0.0, "fill value (constant mode)"),
      Attr("mode", "str", "constant", "constant, edge, reflect or wrap",
           choices=("constant", "edge", "reflect", "wrap"))),
     doc="Pad every dimension.")
def _pad_infer(ctx, types, attrs):
    t = types[0]
    pw = attrs["pad_width"]
    if len(pw) != t.ndim:
        raise ctx.attr_error("pad_width", f"has {len(pw)} pairs for a {t.ndim}-D input")
    if attrs["mode"] == "reflect" and any(b >= s or a >= s for (b, a), s in zip(pw, t.shape)):
        raise ctx.attr_error("pad_width", "reflect padding must be smaller than the dimension")
    return TensorType(tuple(s + b + a for s, (b, a) in zip(t.shape, pw)), t.dtype, t.layout)


def _pad_np(i, a, o):
    if a["mode"] == "constant":
        return _cast(np.pad(i[0], a["pad_width"], constant_values=a["value"]), o.dtype)
    return np.pad(i[0], a["pad_width"], mode=a["mode"])


_pad_infer.compute(_pad_np)


# ====================================================================== computes (te)
def _pad_te(node, ins, name):
    a = node.attrs
    before = [p[0] for p in a["pad_width"]]
    after = [p[1] for p in a["pad_width"]]
    if not any(before) and not any(after):   # nothing to pad: a copy (the group needs a compute)
        return te.compute(ins[0].shape, lambda *i: ins[0](*i), name=name, tag="injective,pad")
    if a.get("mode", "constant") != "constant":
        return topi_transform.pad_mode(ins[0], before, after, a["mode"], name=name)
    return topi_conv2d.pad(ins[0], before, after, a["value"], name=name)


def _reshape_te(node, ins, name):
    return topi_injective.reshape(ins[0], tuple(node.type.shape))


register_compute("concatenate", lambda node, ins, name: topi_injective.concatenate(list(ins), node.attrs["axis"]))
register_compute("flatten", _reshape_te)
register_compute("reshape", _reshape_te)
register_compute("transpose", lambda node, ins, name: topi_injective.transpose(ins[0], node.attrs["axes"]))
register_compute("pad", _pad_te)
