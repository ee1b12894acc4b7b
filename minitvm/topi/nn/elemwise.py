"""Element-wise epilogues that fuse into the producing kernel: bias, relu, add, requantize."""
from __future__ import annotations

import math

from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .fixed_point import round_shift, saturate


def bias_add_NCHWc(x, bias, name="bias_add"):
    """``x[n, c, h, w, cb] + bias[c, cb]`` for a packed ``NCHW[x]c`` tensor."""
    if bias.ndim != 2:
        raise ShapeError(f"{name}: bias must be packed as (C/x, x), got {bias.ndim}-D")
    if bias.dtype != x.dtype:
        raise DtypeError(f"{name}: bias dtype {bias.dtype} differs from {x.name}'s {x.dtype}")
    return te.compute(x.shape, lambda n, c, h, w, cb: x[n, c, h, w, cb] + bias[c, cb], name=name,
                      tag="injective,bias_add")


def relu(x, name="relu"):
    """``max(x, 0)``."""
    return te.compute(x.shape, lambda *i: te.max(x(*i), E.const(0, x.dtype)), name=name, tag="injective,relu")


def add(a, b, name="add"):
    """Element-wise sum of two tensors of one shape and dtype."""
    if len(a.shape) != len(b.shape):
        raise ShapeError(f"{name}: {a.name} and {b.name} have different ranks")
    return te.compute(a.shape, lambda *i: a(*i) + b(*i), name=name, tag="injective,add")


ROUNDING = ("UPWARD", "TONEAREST")


def requantize(x, multiplier: int, shift: int, out_dtype: str = "int8", rounding: str = "TONEAREST",
               name="requantize"):
    """Scale int32 ``x`` by ``multiplier * 2**-(31 + shift)`` and saturate to ``out_dtype``.

    ``multiplier`` is a Q31 fixed-point value in [2**30, 2**31) (so the real scale is
    ``multiplier / 2**31 / 2**shift``); the product is formed in int64 and rounded once:
    ``TONEAREST`` rounds halves away from zero, ``UPWARD`` rounds halves toward +infinity.
    """
    if x.dtype != "int32":
        raise DtypeError(f"{name}: input must be int32 accumulators, got {x.dtype}")
    if not (0 < multiplier < 2 ** 31):
        raise DtypeError(f"{name}: multiplier must be a positive Q31 int32 value, got {multiplier}")
    if rounding not in ROUNDING:
        raise DtypeError(f"{name}: rounding must be one of {ROUNDING}, got {rounding!r}")
    total = 31 + int(shift)
    if not 1 <= total <= 62:
        raise DtypeError(f"{name}: shift must keep 31 + shift within [1, 62], got {shift}")
    if out_dtype not in ("int8", "uint8", "int32"):
        raise DtypeError(f"{name}: out_dtype must be int8, uint8 or int32, got {out_dtype!r}")
    mult = E.const(multiplier, "int64")

    def f(*i):
        return saturate(round_shift(x(*i).astype("int64") * mult, E.const(total, "int64"), rounding), out_dtype)

    return te.compute(x.shape, f, name=name, tag="injective,requantize",
                      attrs={"multiplier": multiplier, "shift": shift, "rounding": rounding})


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``multiplier / 2**31 / 2**shift == scale`` as closely as int32 allows."""
    if scale <= 0:
        raise DtypeError(f"quantize_multiplier: scale must be positive, got {scale}")
    mant, exp = math.frexp(scale)  # scale = mant * 2**exp, mant in [0.5, 1)
    m = round(mant * 2 ** 31)
    if m == 2 ** 31:
        m //= 2
        exp += 1
    return int(m), int(-exp)
