"""Element-wise math as ONNX (and numpy) define it, with numpy broadcasting.

* :func:`unary`: ``exp``, ``log``, ``sqrt``, ``tanh``, ``sin``, ``cos``, ``erf``, ``floor``,
  ``ceil``, ``round`` (half to even), ``reciprocal`` (floats); ``abs``, ``negative``, ``sign``
  (numbers); ``logical_not`` (bool). ``erf`` is a rational approximation evaluated in float32
  (Eigen's and TVM's ``fast_erf``: within a few float32 ulps), so it takes float16 and float32.
* :func:`binary`: ``divide`` (integers truncate toward zero, and ``x / 0`` is 0 as minitvm's
  integer division defines it), ``power`` (``b`` may have another dtype: computed in float64 and
  converted to ``a``'s dtype, as numpy's ``power(a, b).astype(a.dtype)``), ``mod`` (the
  divisor's sign, Python's ``%``) and ``fmod`` (the dividend's sign, C's ``fmod``),
  ``maximum``, ``minimum``, the comparisons (``equal``, ``less``, ``less_equal``, ``greater``,
  ``greater_equal``: bool) and ``logical_and`` / ``logical_or`` / ``logical_xor`` (bool).
* :func:`where`: ``x`` where ``cond`` else ``y``.

Every compute is tagged ``injective,elemwise`` or ``injective,broadcast`` so the injective
schedules fuse it.
"""
from __future__ import annotations

import numpy as np

from ... import dtype as dt
from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .injective import _bcast_index
from .layout import _const

__all__ = ["UNARY", "BINARY", "unary", "binary", "where", "erf"]

# Eigen's / TVM's fast_erf: erf(x) = x * P(x^2) / Q(x^2) on [-4, 4] (|erf| is 1 within float32 beyond)
_ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
             -1.42647390514189e-02)


def erf(x: E.PrimExpr) -> E.PrimExpr:
    """The error function of a float16 / float32 expression (computed in float32)."""
    if dt.element_of(x.dtype) not in ("float16", "float32"):
        raise DtypeError(f"erf takes float16 or float32, got {x.dtype} ({x})")
    v = x.astype("float32")
    v = te.min(te.max(v, E.const(-4.0, "float32")), E.const(4.0, "float32"))
    v2 = v * v
    p = E.const(_ERF_ALPHA[0], "float32")
    for c in _ERF_ALPHA[1:]:
        p = p * v2 + E.const(c, "float32")
    q = E.const(_ERF_BETA[0], "float32")
    for c in _ERF_BETA[1:]:
        q = q * v2 + E.const(c, "float32")
    return (v * p / q).astype(x.dtype)


def _sign(v):
    one, zero = E.const(1, v.dtype), E.const(0, v.dtype)
    if dt.is_uint(v.dtype):
        return te.select(v > zero, one, zero)
    return te.select(v > zero, one, te.select(v < zero, E.const(-1, v.dtype), zero))


#: unary op -> (expression builder, the dtype kinds it takes: f float, i signed, u unsigned, b bool)
UNARY = {
    "exp": (te.exp, "f"), "log": (te.log, "f"), "sqrt": (te.sqrt, "f"), "tanh": (te.tanh, "f"),
    "sin": (lambda v: E.Call(v.dtype, "sin", (v,)), "f"), "cos": (lambda v: E.Call(v.dtype, "cos", (v,)), "f"),
    "erf": (erf, "f"), "floor": (te.floor, "f"), "ceil": (te.ceil, "f"), "round": (te.round, "f"),
    "reciprocal": (lambda v: E.const(1.0, v.dtype) / v, "f"),
    "abs": (te.abs, "fiu"), "negative": (lambda v: E.const(0, v.dtype) - v, "fiu"), "sign": (_sign, "fiu"),
    "logical_not": (lambda v: ~v, "b"),
}


def _kind(dtype) -> str:
    return "b" if dt.is_bool(dtype) else ("f" if dt.is_float(dtype) else ("u" if dt.is_uint(dtype) else "i"))


def unary(x, op: str, name: str | None = None):
    """Element-wise ``op`` (a key of :data:`UNARY`) of tensor ``x``."""
    fn, kinds = UNARY[op]
    if _kind(x.dtype) not in kinds:
        raise DtypeError(f"{op}: {x.name} is {x.dtype}; {op} takes {_kinds_text(kinds)} tensors")
    return te.compute(x.shape, lambda *i: fn(x(*i)), name=name or op, tag=f"injective,elemwise,{op}")


def _kinds_text(kinds):
    return ", ".join({"f": "float", "i": "signed integer", "u": "unsigned integer", "b": "bool"}[k] for k in kinds)


def _broadcast(name, *tensors) -> tuple:
    shapes = []
    for t in tensors:
        s = [_const(d) for d in t.shape]
        if None in s:
            raise ShapeError(f"{name}: {t.name} has a symbolic shape {t.shape}; this op needs static shapes")
        shapes.append(tuple(s))
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"{name}: shapes {[list(s) for s in shapes]} do not broadcast") from None


def _trunc_divide(a, b):
    if dt.is_float(a.dtype):
        return a / b
    return E.Call(a.dtype, "truncdiv", (a, b))


def _power(a, b):
    if dt.is_float(a.dtype) and a.dtype == b.dtype:
        return te.power(a, b)
    return te.power(a.astype("float64"), b.astype("float64")).astype(a.dtype)


def _floor_mod(a, b):
    if not dt.is_float(a.dtype):
        return te.floormod(a, b)
    # numpy's float mod: C fmod, moved into the divisor's sign (exact, unlike a - floor(a/b)*b)
    r = E.Call(a.dtype, "truncmod", (a, b))
    zero = E.const(0.0, a.dtype)
    return te.select((r != zero) & ((r < zero) != (b < zero)), r + b, r)


def _xor(a, b):
    return (a | b) & ~(a & b)


#: binary op -> (expression builder, the dtype kinds it takes, whether the operands may differ in dtype)
BINARY = {
    "divide": (_trunc_divide, "fiu", False), "power": (_power, "fiu", True),
    "mod": (_floor_mod, "fiu", False), "fmod": (lambda a, b: E.Call(a.dtype, "truncmod", (a, b)), "fiu", False),
    "maximum": (te.max, "fiub", False), "minimum": (te.min, "fiub", False),
    "equal": (lambda a, b: a == b, "fiub", False), "less": (lambda a, b: a < b, "fiu", False),
    "less_equal": (lambda a, b: a <= b, "fiu", False), "greater": (lambda a, b: a > b, "fiu", False),
    "greater_equal": (lambda a, b: a >= b, "fiu", False),
    "logical_and": (lambda a, b: a & b, "b", False), "logical_or": (lambda a, b: a | b, "b", False),
    "logical_xor": (_xor, "b", False),
}


def binary(a, b, op: str, name: str | None = None):
    """Element-wise ``op`` (a key of :data:`BINARY`) of tensors ``a`` and ``b``, broadcast."""
    fn, kinds, mixed = BINARY[op]
    name = name or op
    for t in (a, b):
        if _kind(t.dtype) not in kinds:
            raise DtypeError(f"{name}: {t.name} is {t.dtype}; {op} takes {_kinds_text(kinds)} tensors")
    if not mixed and a.dtype != b.dtype:
        raise DtypeError(f"{name}: {a.name} is {a.dtype} but {b.name} is {b.dtype}; cast one side")
    shape = _broadcast(name, a, b)
    if op in ("maximum", "minimum") and dt.is_bool(a.dtype):
        fn = (lambda x, y: x | y) if op == "maximum" else (lambda x, y: x & y)
    return te.compute(shape, lambda *i: fn(a(*_bcast_index(a, shape, i)), b(*_bcast_index(b, shape, i))),
                      name=name, tag=f"injective,broadcast,{op}")


def where(cond, x, y, name: str = "where"):
    """``x`` where bool ``cond`` holds, else ``y`` (all three broadcast; ``x`` and ``y`` of one dtype)."""
    if not dt.is_bool(cond.dtype):
        raise DtypeError(f"{name}: the condition {cond.name} must be bool, got {cond.dtype}")
    if x.dtype != y.dtype:
        raise DtypeError(f"{name}: {x.name} is {x.dtype} but {y.name} is {y.dtype}")
    shape = _broadcast(name, cond, x, y)
    return te.compute(shape, lambda *i: te.select(cond(*_bcast_index(cond, shape, i)), x(*_bcast_index(x, shape, i)),
                                                  y(*_bcast_index(y, shape, i))),
                      name=name, tag="injective,broadcast,where")
