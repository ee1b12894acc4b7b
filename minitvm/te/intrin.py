"""Scalar helpers of the tensor-expression language: variables, math, selection, threads."""
from __future__ import annotations

from .. import dtype as dt
from ..errors import DtypeError
from ..tir import expr as E

const = E.const


def var(name: str = "v", dtype: str = "int32") -> E.Var:
    """A scalar variable (e.g. a symbolic dimension)."""
    return E.Var(name, dt.canonical(dtype))


def size_var(name: str = "n", dtype: str = "int32") -> E.SizeVar:
    """A non-negative symbolic dimension, such as a batch size chosen at run time."""
    return E.SizeVar(name, dt.canonical(dtype))


def if_then_else(cond, t, f) -> E.PrimExpr:
    """``t`` where ``cond`` holds, else ``f``; the branch not taken is never read.

    Reads in the untaken branch may be out of bounds (padding): they are made safe when lowered.
    """
    cond = E.convert(cond)
    if not dt.is_bool(cond.dtype):
        raise DtypeError(f"if_then_else: the condition must be bool, got {cond.dtype} ({cond})")
    t_is, f_is = isinstance(t, E.PrimExpr), isinstance(f, E.PrimExpr)
    if t_is and not f_is:
        f = E._literal_for(f, t.dtype)
    elif f_is and not t_is:
        t = E._literal_for(t, f.dtype)
    else:
        t, f = E.convert(t), E.convert(f)
    if t.dtype != f.dtype:
        raise DtypeError(f"if_then_else: branches have dtypes {t.dtype} and {f.dtype}; cast one")
    return E.Call(t.dtype, "if_then_else", (cond, t, f))


def select(cond, t, f) -> E.PrimExpr:
    """``cond ? t : f`` evaluating both sides (use ``if_then_else`` to guard reads)."""
    call = if_then_else(cond, t, f)
    return E.Select(*call.args)


def all(*conds) -> E.PrimExpr:  # noqa: A001
    """Logical and of all conditions."""
    out = E.const(True)
    for c in conds:
        out = E.convert(c) if E.is_const_int(out, 1) else out & c
    return out


def any(*conds) -> E.PrimExpr:  # noqa: A001
    """Logical or of all conditions."""
    out = E.const(False)
    for c in conds:
        out = E.convert(c) if E.is_const_int(out, 0) else out | c
    return out


def floordiv(a, b) -> E.PrimExpr:
    """Integer division rounding toward minus infinity (``a // b``)."""
    return E._binary(E.FloorDiv, a, b)


def floormod(a, b) -> E.PrimExpr:
    """Remainder with the divisor's sign (``a % b``)."""
    return E._binary(E.FloorMod, a, b)


def _float_call(name, x):
    x = E.convert(x)
    if not dt.is_float(x.dtype):
        raise DtypeError(f"{name} needs a float argument, got {x.dtype} ({x}); cast with .astype('float32')")
    return E.Call(x.dtype, name, (x,))


def exp(x):
    """e to the power x."""
    return _float_call("exp", x)


def log(x):
    """Natural logarithm."""
    return _float_call("log", x)


def sqrt(x):
    """Square root."""
    return _float_call("sqrt", x)


def tanh(x):
    """Hyperbolic tangent."""
    return _float_call("tanh", x)


def floor(x):
    """Largest integer value not greater than x (as a float)."""
    return _float_call("floor", x)


def ceil(x):
    """Smallest integer value not less than x (as a float)."""
    return _float_call("ceil", x)


def round(x):  # noqa: A001
    """Round to the nearest integer value, ties to even (as numpy does)."""
    return _float_call("round", x)


def sigmoid(x):
    """1 / (1 + exp(-x))."""
    x = E.convert(x)
    return 1.0 / (1.0 + exp(-x))


def abs(x):  # noqa: A001
    """Absolute value (integers: wraps for the most negative value, as in C)."""
    x = E.convert(x)
    if dt.is_float(x.dtype):
        return E.Call(x.dtype, "fabs", (x,))
    if dt.is_uint(x.dtype):
        return x
    return E.Select(x < 0, -x, x)


def power(x, y):
    """x to the power y (floats)."""
    x = E.convert(x)
    y = E._literal_for(y, x.dtype) if isinstance(y, (int, float)) else E.convert(y)
    if not dt.is_float(x.dtype) or x.dtype != y.dtype:
        raise DtypeError(f"power needs two floats of one dtype, got {x.dtype} and {y.dtype}")
    return E.Call(x.dtype, "pow", (x, y))


THREAD_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z",
               "vthread", "vthread.x", "vthread.y", "vthread.z", "cthread")


def thread_axis(dom=None, tag: str = "", name: str = "") -> E.IterVar:
    """A GPU thread index to ``bind`` loops to: ``thread_axis("threadIdx.x")``.

    ``dom`` may be given as ``(0, n)`` to fix the extent; otherwise it comes from the bound loop.
    """
    if isinstance(dom, str):
        dom, tag = None, dom
    if tag not in THREAD_TAGS:
        raise DtypeError(f"unknown thread tag {tag!r}; use one of {', '.join(THREAD_TAGS)}")
    if dom is not None and not isinstance(dom, E.Range):
        lo, hi = dom if isinstance(dom, (tuple, list)) else (0, dom)
        dom = E.Range(E.convert(lo), E.convert(hi) - E.convert(lo))
    return E.IterVar(dom, E.Var(name or tag), E.THREAD_INDEX, tag)
