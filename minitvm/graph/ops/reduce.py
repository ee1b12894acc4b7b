"""``reduce``: ONNX's Reduce* over any axes (declaration, numpy reference, topi compute); see
:mod:`minitvm.topi.nn.reduction` for the kinds and their accumulation."""
from __future__ import annotations

import numpy as np

from ...topi.nn import reduction as topi_reduction
from ..types import TensorType
from .common import _cast, _op
from .registry import Attr
from .strategy import register_compute

__all__ = ["reduce_np"]


def reduce_np(x, axes, keepdims, kind):
    """numpy reference of ``reduce`` (floats in float64, integers in int64)."""
    ax = tuple(axes) if axes else tuple(range(x.ndim))
    if x.dtype == bool and kind in ("max", "min"):
        return (np.any if kind == "max" else np.all)(x, axis=ax, keepdims=keepdims)
    acc = x.astype(np.float64 if x.dtype.kind == "f" or kind in ("mean", "l2", "log_sum", "log_sum_exp")
                   else np.int64)
    with np.errstate(all="ignore"):
        if kind == "log_sum_exp":
            m = acc.max(axis=ax, keepdims=True)
            out = np.log(np.exp(acc - m).sum(axis=ax, keepdims=True)) + m
            return out if keepdims else out.reshape([d for k, d in enumerate(x.shape) if k not in ax])
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod,
              "sum_square": lambda v, **k: np.sum(v * v, **k), "l1": lambda v, **k: np.sum(np.abs(v), **k),
              "l2": lambda v, **k: np.sqrt(np.sum(v * v, **k)), "log_sum": lambda v, **k: np.log(np.sum(v, **k))}
        return fn[kind](acc, axis=ax, keepdims=keepdims)


@_op("reduce", ("data",),
     (Attr("axes", "ints", (), "axes to reduce (empty: all)"),
      Attr("keepdims", "bool", True, "keep the reduced axes with extent 1"),
      Attr("kind", "str", "sum", "the reduction", choices=topi_reduction.KINDS)),
     doc="A reduction over axes (ONNX Reduce*: sum, mean, max, min, prod, sum_square, l1, l2, log_sum, "
         "log_sum_exp).")
def _reduce_infer(ctx, types, attrs):
    t = types[0]
    for a in attrs["axes"]:
        if not -t.ndim <= a < t.ndim:
            raise ctx.attr_error("axes", f"= {list(attrs['axes'])}: axis {a} is out of range for a {t.ndim}-D input")
    axes = {a % t.ndim for a in attrs["axes"]} or set(range(t.ndim))
    if len(axes) != len(attrs["axes"]) and attrs["axes"]:
        raise ctx.attr_error("axes", f"= {list(attrs['axes'])} names an axis twice")
    if any(t.shape[a] == 0 for a in axes):
        raise ctx.shape_error(f"reduces an empty axis of {t}")
    if attrs["kind"] not in ("max", "min") and t.dtype == "bool":
        raise ctx.dtype_error(f"{attrs['kind']} of a bool tensor is not defined")
    shape = tuple(1 if k in axes else d for k, d in enumerate(t.shape)) if attrs["keepdims"] else \
        tuple(d for k, d in enumerate(t.shape) if k not in axes)
    return TensorType(shape, t.dtype)


def _reduce_compute(i, a, o):
    r = reduce_np(i[0], a["axes"], a["keepdims"], a["kind"])
    if np.dtype(o.dtype).kind in "iu" and np.asarray(r).dtype.kind == "f":
        r = np.trunc(r)   # an integer mean / l2 / log truncates toward zero, as the compute's cast
    return _cast(r, o.dtype)


_reduce_infer.compute(_reduce_compute)
register_compute("reduce", lambda node, ins, name: topi_reduction.reduce(
    ins[0], node.attrs["axes"], node.attrs["keepdims"], node.attrs["kind"], name=name))
