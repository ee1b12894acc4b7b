"""Data movement ops (declarations, numpy references, topi computes): ``strided_slice`` (ONNX
Slice), ``take`` (Gather), ``broadcast_to`` (Expand), ``tile`` and ``interpolate`` (one axis of
Resize)."""
from __future__ import annotations

import numpy as np

from ...topi.nn import injective as topi_injective
from ...topi.nn import transform as topi_transform
from ..types import TensorType
from .common import _canon_axis, _contig, _op
from .registry import REQUIRED, Attr
from .strategy import register_compute

__all__ = ["slice_extents"]


def slice_extents(shape, begin, end, strides, axes):
    """Per sliced axis ``(start, step, count)`` with Python's (= ONNX's) clamping rules."""
    out = []
    for b, e, st, a in zip(begin, end, strides, axes):
        lo, hi, step = slice(b, e, st).indices(shape[a])
        out.append((lo, step, len(range(lo, hi, step))))
    return out


@_op("strided_slice", ("data",),
     (Attr("begin", "ints", REQUIRED, "first index per sliced axis (negative: from the end)"),
      Attr("end", "ints", REQUIRED, "end (exclusive) per sliced axis; out-of-range values clamp"),
      Attr("strides", "ints", None, "step per sliced axis (default 1; may be negative)"),
      Attr("axes", "ints", None, "the sliced axes (default: the leading ones)")),
     doc="data[begin:end:strides] on axes, with Python's slicing rules (ONNX Slice).")
def _slice_infer(ctx, types, attrs):
    t = types[0]
    n = len(attrs["begin"])
    axes = attrs["axes"] if attrs["axes"] is not None else tuple(range(n))
    strides = attrs["strides"] if attrs["strides"] is not None else (1,) * n
    if not len(attrs["end"]) == len(strides) == len(axes) == n:
        raise ctx.attr_error("end", "begin, end, strides and axes must have one entry per sliced axis")
    axes = [_canon_axis(ctx, "axes", a, t.ndim) for a in axes]
    if len(set(axes)) != len(axes):
        raise ctx.attr_error("axes", f"= {list(attrs['axes'])} names an axis twice")
    if 0 in strides:
        raise ctx.attr_error("strides", "must not hold 0")
    shape = list(t.shape)
    for a, (_, _, count) in zip(axes, slice_extents(t.shape, attrs["begin"], attrs["end"], strides, axes)):
        if count == 0:
            raise ctx.shape_error(f"the slice of axis {a} (extent {t.shape[a]}) is empty")
        shape[a] = count
    return TensorType(shape, t.dtype)


def _slice_np(i, a, o):
    x = i[0]
    n = len(a["begin"])
    axes = a["axes"] if a["axes"] is not None else range(n)
    strides = a["strides"] if a["strides"] is not None else (1,) * n
    sl = [slice(None)] * x.ndim
    for b, e, st, ax in zip(a["begin"], a["end"], strides, axes):
        sl[ax % x.ndim] = slice(b, e, st)
    return _contig(x[tuple(sl)])


_slice_infer.compute(_slice_np)
register_compute("strided_slice", lambda node, ins, name: topi_injective.strided_slice(
    ins[0], node.attrs["begin"], node.attrs["end"], node.attrs["strides"],
    node.attrs["axes"] if node.attrs["axes"] is not None else None, name=name))


@_op("take", ("data", "indices"), (Attr("axis", "int", 0, "the axis indexed"),),
     doc="data gathered along axis at integer indices (ONNX Gather; negative indices count from the end, "
         "out-of-range ones clamp).")
def _take_infer(ctx, types, attrs):
    d, i = types
    axis = _canon_axis(ctx, "axis", attrs["axis"], d.ndim)
    if np.dtype(i.dtype).kind not in "iu":
        raise ctx.dtype_error(f"indices must be integers, got {i.dtype}")
    return TensorType(d.shape[:axis] + i.shape + d.shape[axis + 1:], d.dtype)


def _take_np(i, a, o):
    d, idx = i
    n = d.shape[a["axis"] % d.ndim]
    idx = idx.astype(np.int64)
    return _contig(np.take(d, np.clip(np.where(idx < 0, idx + n, idx), 0, n - 1), axis=a["axis"]))


_take_infer.compute(_take_np)
register_compute("take", lambda node, ins, name: topi_transform.take(ins[0], ins[1], node.attrs["axis"], name=name))


@_op("broadcast_to", ("data",), (Attr("shape", "ints", REQUIRED, "the target shape"),),
     doc="data broadcast to shape (numpy rules).")
def _bcast_infer(ctx, types, attrs):
    t, shape = types[0], tuple(attrs["shape"])
    try:
        if np.broadcast_shapes(t.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ctx.attr_error("shape", f"= {list(shape)}: {t} does not broadcast to it") from None
    return TensorType(shape, t.dtype)


_bcast_infer.compute(lambda i, a, o: _contig(np.broadcast_to(i[0], o.shape)))
register_compute("broadcast_to", lambda node, ins, name: topi_transform.broadcast_to(
    ins[0], node.attrs["shape"], name=name))


@_op("tile", ("data",), (Attr("reps", "ints", REQUIRED, "repetitions per axis"),),
     doc="data repeated reps[k] times along each axis k.")
def _tile_infer(ctx, types, attrs):
    t, reps = types[0], attrs["reps"]
    if len(reps) != t.ndim or any(r < 1 for r in reps):
        raise ctx.attr_error("reps", f"= {list(reps)} must give one positive count per axis of {t}")
    return TensorType(tuple(s * r for s, r in zip(t.shape, reps)), t.dtype)


_tile_infer.compute(lambda i, a, o: _contig(np.tile(i[0], a["reps"])))
register_compute("tile", lambda node, ins, name: topi_transform.tile(ins[0], node.attrs["reps"], name=name))


@_op("interpolate", ("data", "indices", "weights", "offset?"), (Attr("axis", "int", REQUIRED, "the resampled axis"),),
     doc="Resampling along axis: out[.., y, ..] = sum_t weights[y, t] * data[.., indices[y, t], ..] (+ offset[y]); "
         "one axis of ONNX Resize (integer data rounds half to even and saturates).")
def _interp_infer(ctx, types, attrs):
    d, i, w = types[:3]
    axis = _canon_axis(ctx, "axis", attrs["axis"], d.ndim)
    if i.ndim != 2 or w.shape != i.shape or np.dtype(i.dtype).kind not in "iu" or np.dtype(w.dtype).kind != "f":
        raise ctx.shape_error(f"indices (integers) and weights (floats) must be [out, taps] alike, got {i} and {w}")
    if len(types) > 3 and types[3].shape != (i.shape[0],):
        raise ctx.shape_error(f"offset must be [{i.shape[0]}], got {types[3]}")
    return TensorType(d.shape[:axis] + (i.shape[0],) + d.shape[axis + 1:], d.dtype)


def _interp_np(i, a, o):
    d, idx, w = i[:3]
    axis = a["axis"] % d.ndim
    g = np.take(d.astype(np.float64), idx.astype(np.int64), axis=axis)           # [.., out, taps, ..]
    wshape = (1,) * axis + w.shape + (1,) * (d.ndim - axis - 1)
    r = (g * w.astype(np.float64).reshape(wshape)).sum(axis=axis + 1)
    if len(i) > 3:
        r = r + i[3].astype(np.float64).reshape((1,) * axis + (-1,) + (1,) * (d.ndim - axis - 1))
    if d.dtype.kind in "iu":
        info = np.iinfo(d.dtype)
        r = np.clip(np.rint(r), info.min, info.max)
    return _contig(r.astype(o.dtype))


_interp_infer.compute(_interp_np)
register_compute("interpolate", lambda node, ins, name: topi_transform.interpolate(
    ins[0], ins[1], ins[2], ins[3] if len(ins) > 3 else None, node.attrs["axis"], name=name))
