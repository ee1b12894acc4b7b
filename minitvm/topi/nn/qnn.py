"""Quantized-graph computes matching ``minitvm.graph.quantize.ops`` bit for bit.

``quantize``/``dequantize`` convert between float32 and int8 with one scale;
``requantize_per_channel`` rescales int32 accumulators per output channel (plain NCHW or packed
NCHW[x]c); ``qadd`` adds two int8 tensors of different scales with one rounding;
``qconcatenate`` rescales each input, then joins them. Products are formed in int64 and
rounded once (``TONEAREST``: halves away from zero; ``UPWARD``: halves toward +infinity).
"""
from __future__ import annotations

from ... import te
from ...errors import DtypeError
from ...tir import expr as E
from .elemwise import requantize
from .fixed_point import RANGE, i64, round_shift, saturate
from .injective import concatenate


def quantize(x, scale: float, out_dtype: str = "int8", name: str = "quantize"):
    """``clip(rint(float32(x) / float32(scale)))`` as ``out_dtype``."""
    lo, hi = RANGE[out_dtype]

    def f(*i):
        q = te.round(x(*i).astype("float32") / E.const(float(scale), "float32"))
        q = te.min(te.max(q, E.const(float(lo), "float32")), E.const(float(hi), "float32"))
        return q.astype(out_dtype)

    return te.compute(x.shape, f, name=name, tag="injective,quantize")


def dequantize(q, scale: float, out_dtype: str = "float32", name: str = "dequantize"):
    """``float32(q) * float32(scale)``."""
    return te.compute(q.shape, lambda *i: (q(*i).astype("float32") * E.const(float(scale), "float32")).astype(out_dtype),
                      name=name, tag="injective,dequantize")


def requantize_per_channel(acc, multiplier, shift, axis: int = 1, rounding: str = "TONEAREST",
                           out_dtype: str = "int8", packed: bool = False, name: str = "requantize"):
    """Per-channel requantize; ``multiplier``/``shift`` are int32 tensors [C]. With ``packed``
    the input is NCHW[x]c and channel ``c*x + cb`` uses entry ``c*x + cb``."""
    if acc.dtype != "int32":
        raise DtypeError(f"{name}: accumulators must be int32, got {acc.dtype}")
    block = int(acc.shape[4].value) if packed else 1

    def f(*i):
        ch = i[1] * block + i[4] if packed else i[axis % len(i)]
        p = acc(*i).astype("int64") * multiplier[ch].astype("int64")
        return saturate(round_shift(p, shift[ch].astype("int64") + i64(31), rounding), out_dtype)

    return te.compute(acc.shape, f, name=name, tag="injective,requantize")


def qadd(a, b, a_multiplier, a_shift, b_multiplier, b_shift, rounding="TONEAREST", out_dtype="int8", name="qadd"):
    """``saturate(round(a*ma/2**ta + b*mb/2**tb))`` in one rounding (same-shape operands)."""
    ta, tb = 31 + int(a_shift), 31 + int(b_shift)
    T = max(ta, tb)
    fa, fb = int(a_multiplier) << (T - ta), int(b_multiplier) << (T - tb)
    if (fa % (1 << T) == 0 and fb % (1 << T) == 0 and abs(fa >> T) + abs(fb >> T) < 2 ** 22
            and {a.dtype, b.dtype} <= {"int8", "uint8"}):
        # both rescales are exact integer factors (equal scales: 1 and 1): nothing to round, and
        # the sum of two int8 values times such factors fits int32
        ka, kb = E.const(fa >> T, "int32"), E.const(fb >> T, "int32")

        def exact(*i):
            v = a(*i).astype("int32") * ka + b(*i).astype("int32") * kb
            lo, hi = RANGE[out_dtype]
            return te.min(te.max(v, E.const(lo, "int32")), E.const(hi, "int32")).astype(out_dtype)

        return te.compute(a.shape, exact, name=name, tag="injective,qadd")

    def f(*i):
        pa = a(*i).astype("int64") * i64(a_multiplier) * i64(1 << (T - ta))
        pb = b(*i).astype("int64") * i64(b_multiplier) * i64(1 << (T - tb))
        return saturate(round_shift(pa + pb, i64(T), rounding), out_dtype)

    return te.compute(a.shape, f, name=name, tag="injective,qadd")


def qconcatenate(xs, multipliers, shifts, axis: int = 1, rounding="TONEAREST", out_dtype="int8", name="qconcat"):
    """Each input rescaled with requantize semantics, then joined along ``axis``."""
    parts = []
    for k, (x, m, s) in enumerate(zip(xs, multipliers, shifts)):
        xi = te.compute(x.shape, lambda *i, x=x: x(*i).astype("int32"), name=f"{name}_in{k}", tag="injective,cast")
        parts.append(requantize(xi, int(m), int(s), out_dtype, rounding, name=f"{name}_rq{k}"))
    return concatenate(parts, axis)
