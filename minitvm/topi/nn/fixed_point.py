"""Fixed-point integer arithmetic shared by the quantized computes (``elemwise.requantize``,
``qnn``): int64 shifts, one rounding (``TONEAREST``: halves away from zero; ``UPWARD``: halves
toward +infinity) and saturation to int8 / uint8 / int32."""
from __future__ import annotations

from ... import te
from ...tir import expr as E

RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-2 ** 31, 2 ** 31 - 1)}


def i64(v):
    """``v`` as an int64 constant."""
    return E.const(int(v), "int64")


def _shr(p, t):
    """``p >> t`` (arithmetic) for int64 ``p`` and int64 ``t`` (a constant or an expression)."""
    if isinstance(t, E.IntImm):
        return p // i64(1 << t.value)
    return E.Call("int64", "shift_right", (p, t))


def _shl(p, t):
    if isinstance(t, E.IntImm):
        return p * i64(1 << t.value)
    return E.Call("int64", "shift_left", (p, t))


def _let(value, name, fbody):
    """``let v = value in fbody(v)``: a value used several times is computed (and walked) once."""
    v = E.Var(name, value.dtype)
    return E.Let(v, value, fbody(v))


def round_shift(p, t, rounding: str):
    """``p / 2**t`` rounded once (int64); ``t`` >= 1."""
    t = t if isinstance(t, E.PrimExpr) else i64(t)
    half = _shl(i64(1), t - i64(1)) if not isinstance(t, E.IntImm) else i64(1 << (t.value - 1))
    if rounding == "UPWARD":
        return _shr(p + half, t)
    # halves away from zero: floor((p + h) / 2**t) for p >= 0 and, for p < 0,
    # -floor((-p + h) / 2**t) = ceil((p - h) / 2**t) = floor((p + h - 1) / 2**t): one select of
    # the addend instead of an absolute value and a negation
    return _let(p, "rq_p", lambda pv: _shr(pv + te.select(pv < i64(0), half - i64(1), half), t))


def saturate(q, out_dtype: str):
    """int64 ``q`` clipped to ``out_dtype``'s range and cast to it."""
    lo, hi = RANGE[out_dtype]
    return _let(q, "sat", lambda v: te.min(te.max(v, i64(lo)), i64(hi)).astype(out_dtype))
