"""Element-wise math ops (declarations, numpy references, topi computes): the unary functions of
:data:`minitvm.topi.nn.math.UNARY` (``exp``, ``log``, ``sqrt``, ``erf``, ``tanh``, ``abs``,
``negative``, ``logical_not`` ...), the binary ops of :data:`~minitvm.topi.nn.math.BINARY`
(``divide``, ``power``, ``mod``, ``fmod``, ``maximum``, ``minimum``, the comparisons and the
logic ops) with numpy broadcasting, and ``where``. Semantics are ONNX's (= numpy's): integer
``divide`` truncates toward zero, ``power`` converts to the first operand's dtype, ``mod`` takes
the divisor's sign and ``fmod`` the dividend's; integer division or modulo by zero gives 0."""
from __future__ import annotations

import math

import numpy as np

from ...topi.nn import math as topi_math
from ..types import TensorType
from .common import _cast, _contig, _op
from .strategy import register_compute

__all__ = ["UNARY_OPS", "BINARY_OPS"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _div_np(a, b):
    if a.dtype.kind == "f":
        return a / b
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    safe = np.where(b64 == 0, 1, b64)
    q = np.abs(a64) // np.abs(safe) * np.sign(a64) * np.sign(safe)    # truncation toward zero
    return np.where(b64 == 0, 0, q).astype(a.dtype)


def _mod_np(fn):
    def mod(a, b):
        if a.dtype.kind == "f":
            return fn(a, b)
        return np.where(b == 0, 0, fn(a, np.where(b == 0, 1, b))).astype(a.dtype)
    return mod


_UNARY_NP = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin, "cos": np.cos,
    "erf": lambda x: _erf(x.astype(np.float64)), "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "reciprocal": lambda x: 1.0 / x, "abs": np.abs, "negative": np.negative, "sign": np.sign,
    "logical_not": np.logical_not,
}
_BINARY_NP = {
    "divide": _div_np, "power": lambda a, b: np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    if not (a.dtype.kind == "f" and a.dtype == b.dtype) else np.power(a, b),
    "mod": _mod_np(np.mod), "fmod": _mod_np(np.fmod), "maximum": np.maximum, "minimum": np.minimum,
    "equal": np.equal, "less": np.less, "less_equal": np.less_equal, "greater": np.greater,
    "greater_equal": np.greater_equal, "logical_and": np.logical_and, "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}
_KIND_NAMES = {"f": "float", "i": "signed integer", "u": "unsigned integer", "b": "bool"}
_BOOL_OUT = {"equal", "less", "less_equal", "greater", "greater_equal"}

#: the unary and binary op names registered here
UNARY_OPS = tuple(topi_math.UNARY)
BINARY_OPS = tuple(topi_math.BINARY)


def _check_kind(ctx, t, kinds, what):
    if np.dtype(t.dtype).kind not in kinds:
        raise ctx.dtype_error(f"{what} is {t.dtype}; {ctx.op} takes {', '.join(_KIND_NAMES[k] for k in kinds)} "
                              "tensors")


def _unary(name):
    _, kinds = topi_math.UNARY[name]

    @_op(name, ("data",), (), doc=f"Element-wise {name} (ONNX semantics).")
    def infer(ctx, types, attrs):
        _check_kind(ctx, types[0], kinds, "the input")
        if name == "erf" and types[0].dtype == "float64":
            raise ctx.dtype_error("erf is computed in float32; cast a float64 input to float32")
        return types[0]

    fn = _UNARY_NP[name]
    infer.compute(lambda i, a, o: _contig(np.asarray(fn(i[0])).astype(o.dtype)))
    register_compute(name, lambda node, ins, cname: topi_math.unary(ins[0], name, name=cname))


def _bshape(ctx, types):
    try:
        return tuple(np.broadcast_shapes(*(t.shape for t in types)))
    except ValueError:
        raise ctx.shape_error(f"shapes {[list(t.shape) for t in types]} do not broadcast") from None


def _binary(name):
    _, kinds, mixed = topi_math.BINARY[name]

    @_op(name, ("lhs", "rhs"), (), doc=f"Element-wise {name} with numpy broadcasting (ONNX semantics).")
    def infer(ctx, types, attrs):
        a, b = types
        _check_kind(ctx, a, kinds, "lhs")
        _check_kind(ctx, b, kinds, "rhs")
        if not mixed and a.dtype != b.dtype:
            raise ctx.dtype_error(f"rhs is {b.dtype} but lhs is {a.dtype}; insert a cast")
        return TensorType(_bshape(ctx, types), "bool" if name in _BOOL_OUT else a.dtype)

    fn = _BINARY_NP[name]

    def compute(i, a, o):
        with np.errstate(all="ignore"):
            return _contig(np.asarray(fn(i[0], i[1])).astype(o.dtype))

    infer.compute(compute)
    register_compute(name, lambda node, ins, cname: topi_math.binary(ins[0], ins[1], name, name=cname))


for _name in UNARY_OPS:
    _unary(_name)
for _name in BINARY_OPS:
    _binary(_name)


@_op("where", ("condition", "x", "y"), (), doc="x where condition (bool) holds, else y; numpy broadcasting.")
def _where_infer(ctx, types, attrs):
    c, x, y = types
    if c.dtype != "bool":
        raise ctx.dtype_error(f"condition must be bool, got {c.dtype}")
    if x.dtype != y.dtype:
        raise ctx.dtype_error(f"y is {y.dtype} but x is {x.dtype}; insert a cast")
    return TensorType(_bshape(ctx, types), x.dtype)


_where_infer.compute(lambda i, a, o: _cast(np.where(i[0], i[1], i[2]), o.dtype))
register_compute("where", lambda node, ins, name: topi_math.where(ins[0], ins[1], ins[2], name=name))
