"""Element-wise ops: ``relu``, ``clip``, ``sigmoid``, ``cast``, ``add``, ``sub``, ``mul`` (declarations,
numpy references, topi computes)."""
from __future__ import annotations

import math

import numpy as np

from ... import te
from ...topi.nn import elemwise as topi_elemwise
from ...topi.nn import injective as topi_injective
from ..types import TensorType
from .common import _cast, _contig, _float_only, _op, _same_dtype
from .registry import REQUIRED, Attr
from .strategy import register_compute


# ====================================================================== element-wise
def _unary(name, fn, attrs=(), doc="", check=None):
    @_op(name, ("data",), attrs, doc=doc)
    def infer(ctx, types, a):
        if check:
            check(ctx, types[0], a)
        return types[0]
    infer.compute(lambda i, a, o: _cast(fn(i[0], a), o.dtype))


_unary("relu", lambda x, a: np.maximum(x, np.zeros((), x.dtype)), doc="max(x, 0).")


def _clip_check(ctx, t, a):
    if a["min"] > a["max"]:
        raise ctx.attr_error("min", f"= {a['min']} is larger than max = {a['max']}")


def _clip_np(x, a):
    lo, hi = a["min"], a["max"]
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        lo, hi = max(lo, info.min), min(hi, info.max)
        return np.clip(x, int(math.ceil(lo)), int(math.floor(hi)))
    return np.clip(x, lo, hi)


_unary("clip", _clip_np, (Attr("min", "float", REQUIRED, "lower bound"), Attr("max", "float", REQUIRED, "upper bound")),
       doc="min(max(x, min), max).", check=_clip_check)
_unary("sigmoid", lambda x, a: 1.0 / (1.0 + np.exp(-x.astype(np.float64))), doc="1 / (1 + exp(-x)).",
       check=lambda ctx, t, a: _float_only(ctx, t))



@_op("cast", ("data",), (Attr("dtype", "dtype", REQUIRED, "target dtype"),), doc="Convert to dtype.")
def _cast_infer(ctx, types, attrs):
    if not attrs["dtype"]:
        raise ctx.attr_error("dtype", "must name a dtype")
    return TensorType(types[0].shape, attrs["dtype"], types[0].layout)


_cast_infer.compute(lambda i, a, o: _contig(i[0].astype(o.dtype)))


def _binary(name, fn, doc):
    @_op(name, ("lhs", "rhs"), (), doc=doc)
    def infer(ctx, types, attrs):
        a, b = types
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ctx.shape_error(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        _same_dtype(ctx, types, ("lhs", "rhs"))
        if a.layout and b.layout and a.layout != b.layout:
            raise ctx.shape_error(f"operands have different layouts ({a.layout}, {b.layout})")
        layout = a.layout if a.ndim >= b.ndim else b.layout
        return TensorType(shape, a.dtype, layout or (b.layout if a.ndim == b.ndim else ""))
    infer.compute(lambda i, a, o: _cast(fn(i[0], i[1]), o.dtype))


_binary("add", np.add, "Element-wise lhs + rhs with numpy broadcasting.")
_binary("sub", np.subtract, "Element-wise lhs - rhs with numpy broadcasting.")
_binary("mul", np.multiply, "Element-wise lhs * rhs with numpy broadcasting.")


# ====================================================================== computes (te)
register_compute("relu", lambda node, ins, name: topi_elemwise.relu(ins[0], name=name))
register_compute("clip", lambda node, ins, name: topi_injective.clip(ins[0], node.attrs["min"], node.attrs["max"]))
register_compute("sigmoid", lambda node, ins, name: te.compute(ins[0].shape, lambda *i: te.sigmoid(ins[0](*i)),
                                                               name=name, tag="injective,sigmoid"))
register_compute("cast", lambda node, ins, name: topi_injective.cast(ins[0], node.type.dtype))
register_compute("add", lambda node, ins, name: topi_injective.add(ins[0], ins[1]))
register_compute("sub", lambda node, ins, name: topi_injective.subtract(ins[0], ins[1]))
register_compute("mul", lambda node, ins, name: topi_injective.multiply(ins[0], ins[1]))
