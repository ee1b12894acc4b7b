"""Quantized graph ops: ``quantize``, ``dequantize``, ``requantize``, ``requantize_per_channel``,
``qadd`` and ``qconcatenate``.

Importing :mod:`minitvm.graph.quantize` registers them. Each has type inference and an exact
numpy reference; the integer ops are bit-exact (one right answer), the float ones are defined
in float32 arithmetic with IEEE round-to-nearest-even, which is what a CUDA/LLVM kernel does
with plain ``float`` code (no fast-math):

``quantize(x) -> int8``
    ``clip(rint(float32(x) / float32(scale)), lo, hi)``: one correctly rounded float32 division,
    then round half to even, then saturate to ``out_dtype``'s range.
``dequantize(q) -> float32``
    ``float32(q) * float32(scale)``: the int -> float32 conversion (exact for int8; round to
    nearest even for int32 beyond 2**24), then one float32 multiplication.
``requantize(acc: int32) -> int8``
    exactly :func:`minitvm.topi.testing.requantize` / :func:`minitvm.topi.nn.elemwise.requantize`:
    ``p = int64(acc) * multiplier``; ``t = 31 + shift``; ``TONEAREST``:
    ``q = sign(p) * ((|p| + 2**(t-1)) >> t)`` (half away from zero), ``UPWARD``:
    ``q = (p + 2**(t-1)) >> t`` (half toward +inf); saturate.
``requantize_per_channel(acc: int32, multiplier: int32[C], shift: int32[C]) -> int8``
    the same, with channel ``c`` (along ``axis``) using ``multiplier[c]`` and ``shift[c]``.
``qadd(a: int8, b: int8) -> int8``
    one rounding of the exact sum ``a * ma / 2**ta + b * mb / 2**tb`` (``ta = 31 + a_shift``
    ...): with ``T = max(ta, tb)``, ``p = ((a*ma) << (T-ta)) + ((b*mb) << (T-tb))`` in int64,
    ``q = round_shift(p, T)`` with the rounding above, saturate. ``|ta - tb| <= 23`` keeps
    ``|p| < 2**62``.
``qconcatenate(*x: int8) -> int8``
    each input ``i`` rescaled with ``requantize`` semantics (``multipliers[i]``, ``shifts[i]``;
    ``(2**30, -1)`` is the identity) and the results joined along ``axis``.

Scales come from :func:`multiplier_shift` (``topi.nn.elemwise.quantize_multiplier`` with the
extreme cases clamped) and :func:`qadd_params`.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import ArgumentError, GraphError
from ...topi import testing as _topi_testing
from ...topi.nn import elemwise as topi_elemwise
from ...topi.nn import qnn as topi_qnn
from ...topi.nn.elemwise import ROUNDING, quantize_multiplier
from ..types import TensorType
from ..ops import REQUIRED, Attr, OpDef, get_op, register_op
from ..ops.common import _contig
from ..ops.strategy import register_compute

__all__ = ["quantize_np", "dequantize_np", "requantize_np", "requantize_per_channel_np", "qadd_np",
           "qconcatenate_np", "round_shift", "multiplier_shift", "qadd_params", "QUANTIZE_OPS",
           "IDENTITY_MULTIPLIER"]

#: names of the ops this module registers
QUANTIZE_OPS = ("quantize", "dequantize", "requantize", "requantize_per_channel", "qadd", "qconcatenate")

#: ``(multiplier, shift)`` of the scale 1.0 (``2**30 / 2**31 / 2**-1``)
IDENTITY_MULTIPLIER = (1 << 30, -1)

_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-2 ** 15, 2 ** 15 - 1),
              "int32": (-2 ** 31, 2 ** 31 - 1)}
_QMAX_DIFF = 23  # largest |ta - tb| in qadd: 2 * 2**7 * 2**31 * 2**23 = 2**62


# ---------------------------------------------------------------------- numpy references
def round_shift(p, total, rounding: str = "TONEAREST"):
    """``p / 2**total`` rounded to an integer (int64 arrays; ``total`` >= 1, scalar or array).

    ``TONEAREST`` rounds halves away from zero, ``UPWARD`` toward +infinity (the two modes of
    ``topi.nn.elemwise.requantize``).
    """
    p = np.asarray(p, np.int64)
    total = np.asarray(total, np.int64)
    half = np.left_shift(np.int64(1), total - 1)
    if rounding == "UPWARD":
        return np.right_shift(p + half, total)
    return np.sign(p) * np.right_shift(np.abs(p) + half, total)


def _saturate(q, out_dtype):
    lo, hi = _INT_RANGE[np.dtype(out_dtype).name]
    return _contig(np.clip(q, lo, hi).astype(out_dtype))


def quantize_np(x, scale: float, out_dtype="int8"):
    """``clip(rint(float32(x) / float32(scale)), lo, hi)`` as ``out_dtype`` (see the module doc)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        q = np.rint(np.asarray(x).astype(np.float32) / np.float32(scale)).astype(np.float64)
    lo, hi = _INT_RANGE[np.dtype(out_dtype).name]
    return _contig(np.clip(q, lo, hi).astype(out_dtype))


def dequantize_np(q, scale: float, out_dtype="float32"):
    """``float32(q) * float32(scale)`` (one float32 rounding; see the module doc)."""
    return _contig((np.asarray(q).astype(np.float32) * np.float32(scale)).astype(out_dtype))


def requantize_np(acc, multiplier: int, shift: int, rounding: str = "TONEAREST", out_dtype="int8"):
    """Exactly :func:`minitvm.topi.testing.requantize` (int64 product, one rounding, saturate)."""
    return _contig(_topi_testing.requantize(np.asarray(acc), int(multiplier), int(shift), rounding,
                                            np.dtype(out_dtype)))


def requantize_per_channel_np(acc, multiplier, shift, axis: int = 1, rounding: str = "TONEAREST",
                              out_dtype="int8"):
    """:func:`requantize_np` with per-channel ``multiplier[c]`` / ``shift[c]`` along ``axis``."""
    acc = np.asarray(acc)
    axis = axis % acc.ndim
    bshape = [1] * acc.ndim
    bshape[axis] = acc.shape[axis]
    m = np.asarray(multiplier, np.int64).reshape(bshape)
    t = 31 + np.asarray(shift, np.int64).reshape(bshape)
    return _saturate(round_shift(acc.astype(np.int64) * m, t, rounding), out_dtype)


def qadd_np(a, b, a_multiplier: int, a_shift: int, b_multiplier: int, b_shift: int,
            rounding: str = "TONEAREST", out_dtype="int8"):
    """``saturate(round((a*ma) / 2**ta + (b*mb) / 2**tb))`` with one rounding (module doc)."""
    ta, tb = 31 + int(a_shift), 31 + int(b_shift)
    T = max(ta, tb)
    pa = np.asarray(a).astype(np.int64) * np.int64(a_multiplier)
    pb = np.asarray(b).astype(np.int64) * np.int64(b_multiplier)
    p = np.left_shift(pa, T - ta) + np.left_shift(pb, T - tb)
    return _saturate(round_shift(p, T, rounding), out_dtype)


def qconcatenate_np(xs, multipliers, shifts, axis: int = 1, rounding: str = "TONEAREST", out_dtype="int8"):
    """Each input rescaled by ``(multipliers[i], shifts[i])`` (requantize semantics), joined on ``axis``."""
    parts = [_saturate(round_shift(np.asarray(x).astype(np.int64) * np.int64(m), 31 + int(s), rounding),
                       out_dtype) for x, m, s in zip(xs, multipliers, shifts)]
    return _contig(np.concatenate(parts, axis=axis))


# ---------------------------------------------------------------------- scale helpers
def multiplier_shift(scale: float) -> tuple[int, int]:
    """``(multiplier, shift)`` for ``requantize`` with ``multiplier / 2**31 / 2**shift ~= scale``.

    ``topi.nn.elemwise.quantize_multiplier`` where it fits requantize's limits
    (``1 <= 31 + shift <= 62``); a scale below ``2**-32`` keeps ``shift = 31`` and a smaller
    multiplier (at least 1). Raises ``ValueError`` for scales that are not positive and finite
    or ``>= 2**30``.
    """
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ArgumentError(f"multiplier_shift: scale must be positive and finite, got {scale}")
    if scale >= 2.0 ** 30:
        raise ArgumentError(f"multiplier_shift: scale {scale} is too large for requantize (must be < 2**30)")
    m, s = quantize_multiplier(scale)
    if s > 31:
        m = max(1, int(round(m / 2.0 ** (s - 31))))
        s = 31
    return int(m), int(s)


def qadd_params(a_scale: float, b_scale: float) -> dict:
    """``qadd`` attributes for real rescale factors ``a_scale`` (= s_a / s_out) and ``b_scale``.

    When the two factors are more than ``2**23`` apart, the smaller one's multiplier is
    shifted right (its operand then contributes at most ~2**-16 of an output step per unit).
    """
    ma, sa = multiplier_shift(a_scale)
    mb, sb = multiplier_shift(b_scale)
    ta, tb = 31 + sa, 31 + sb
    if tb - ta > _QMAX_DIFF:
        mb, sb = max(1, round(mb / 2.0 ** (tb - ta - _QMAX_DIFF))), sa + _QMAX_DIFF
    elif ta - tb > _QMAX_DIFF:
        ma, sa = max(1, round(ma / 2.0 ** (ta - tb - _QMAX_DIFF))), sb + _QMAX_DIFF
    return {"a_multiplier": int(ma), "a_shift": int(sa), "b_multiplier": int(mb), "b_shift": int(sb)}


# ---------------------------------------------------------------------- attribute checks
def _scale_check(v):
    return None if (v > 0 and math.isfinite(v)) else "must be a positive finite number"


def _mult_check(v):
    return None if 0 < v < 2 ** 31 else "must be a positive Q31 value in (0, 2**31)"


def _shift_check(v):
    return None if 1 <= 31 + v <= 62 else "must keep 31 + shift within [1, 62]"


def _ints_check(check):
    def f(vs):
        """The first element's error message, or None."""
        for v in vs:
            msg = check(v)
            if msg:
                return f"element {v}: {msg}"
        return None
    return f


_ROUNDING_ATTR = Attr("rounding", "str", "TONEAREST", "TONEAREST (half away from zero) or UPWARD (half up)",
                      choices=ROUNDING)


def _int_out(default="int8", choices=("int8", "uint8", "int32")):
    return Attr("out_dtype", "dtype", default, "output integer dtype", choices=choices)


def _is_float(dtype):
    return np.dtype(dtype).kind == "f"


def _is_int(dtype):
    return np.dtype(dtype).kind in "iu"


def _register(name, inputs, attrs, infer, compute, te_compute, doc):
    """Register the op and its compute ``te_compute`` (once: re-importing the module keeps the first
    registration)."""
    try:
        get_op(name)
    except GraphError:
        register_op(OpDef(name, tuple(inputs), tuple(attrs), infer, compute, doc=doc))
        register_compute(name, te_compute)


# ---------------------------------------------------------------------- quantize / dequantize
def _quantize_infer(ctx, types, attrs):
    t = types[0]
    if not _is_float(t.dtype):
        raise ctx.dtype_error(f"data must be a float tensor, got {t.dtype}")
    return TensorType(t.shape, attrs["out_dtype"], t.layout)


_register("quantize", ("data",),
          (Attr("scale", "float", REQUIRED, "real value of one integer step", check=_scale_check),
           _int_out()),
          _quantize_infer, lambda i, a, o: quantize_np(i[0], a["scale"], o.dtype),
          lambda node, ins, name: topi_qnn.quantize(ins[0], node.attrs["scale"], node.type.dtype, name=name),
          "clip(rint(float32(x) / float32(scale)), out range): float -> int8 (round half to even).")


def _dequantize_infer(ctx, types, attrs):
    t = types[0]
    if not _is_int(t.dtype):
        raise ctx.dtype_error(f"data must be an integer tensor, got {t.dtype}")
    return TensorType(t.shape, attrs["out_dtype"], t.layout)


_register("dequantize", ("data",),
          (Attr("scale", "float", REQUIRED, "real value of one integer step", check=_scale_check),
           Attr("out_dtype", "dtype", "float32", "output float dtype", choices=("float32",))),
          _dequantize_infer, lambda i, a, o: dequantize_np(i[0], a["scale"], o.dtype),
          lambda node, ins, name: topi_qnn.dequantize(ins[0], node.attrs["scale"], node.type.dtype, name=name),
          "float32(x) * float32(scale): int -> float32.")


# ---------------------------------------------------------------------- requantize
def _requantize_infer(ctx, types, attrs):
    t = types[0]
    if t.dtype != "int32":
        raise ctx.dtype_error(f"data must be int32 accumulators, got {t.dtype}")
    return TensorType(t.shape, attrs["out_dtype"], t.layout)


_register("requantize", ("data",),
          (Attr("multiplier", "int", REQUIRED, "Q31 multiplier in (0, 2**31)", check=_mult_check),
           Attr("shift", "int", REQUIRED, "extra right shift (31 + shift in [1, 62])", check=_shift_check),
           _ROUNDING_ATTR, _int_out()),
          _requantize_infer,
          lambda i, a, o: requantize_np(i[0], a["multiplier"], a["shift"], a["rounding"], o.dtype),
          lambda node, ins, name: topi_elemwise.requantize(ins[0], node.attrs["multiplier"], node.attrs["shift"],
                                                           node.type.dtype, node.attrs["rounding"], name=name),
          "saturate(round(int64(x) * multiplier / 2**(31 + shift))): int32 -> int8 (topi.nn.elemwise.requantize).")


def _requantize_pc_infer(ctx, types, attrs):
    t, mt, st = types
    if t.dtype != "int32":
        raise ctx.dtype_error(f"data must be int32 accumulators, got {t.dtype}")
    packed = t.ndim == 5 and t.layout.startswith("NCHW") and t.layout.endswith("c")
    if t.layout and not packed and t.layout != "NHWC":
        raise ctx.shape_error(f"data has layout {t.layout}; requantize_per_channel takes NCHW, NHWC or NCHW[x]c")
    if not -t.ndim <= attrs["axis"] < t.ndim:
        raise ctx.attr_error("axis", f"= {attrs['axis']} is out of range for a {t.ndim}-D input")
    if packed and attrs["axis"] % t.ndim != 1:
        raise ctx.attr_error("axis", "must be the channel axis (1) for packed NCHW[x]c data")
    if t.layout == "NHWC" and attrs["axis"] % t.ndim != 3:
        raise ctx.attr_error("axis", "must be the channel axis (3) for NHWC data")
    c = t.shape[1] * t.shape[4] if packed else t.shape[attrs["axis"] % t.ndim]
    for nm, x in (("multiplier", mt), ("shift", st)):
        if x.shape != (c,):
            raise ctx.shape_error(f"{nm} must have shape [{c}] (one per channel on axis {attrs['axis']}), "
                                  f"got {list(x.shape)}")
        if x.dtype != "int32":
            raise ctx.dtype_error(f"{nm} must be int32, got {x.dtype}")
    return TensorType(t.shape, attrs["out_dtype"], t.layout)


def _requantize_pc_compute(i, a, o):
    m, s = np.asarray(i[1], np.int64), np.asarray(i[2], np.int64)
    if np.any(m <= 0) or np.any(m >= 2 ** 31) or np.any(s < -30) or np.any(s > 31):
        raise ArgumentError("requantize_per_channel: multipliers must be in (0, 2**31) and 31 + shift in [1, 62]")
    x = i[0]
    if x.ndim == 5 and o.layout:   # packed NCHW[x]c: channel c*x + cb
        N, Cc, H, W, cb = x.shape
        plain = x.transpose(0, 1, 4, 2, 3).reshape(N, Cc * cb, H, W)
        y = requantize_per_channel_np(plain, m, s, 1, a["rounding"], o.dtype)
        return _contig(y.reshape(N, Cc, cb, H, W).transpose(0, 1, 3, 4, 2))
    return requantize_per_channel_np(x, m, s, a["axis"], a["rounding"], o.dtype)


_register("requantize_per_channel", ("data", "multiplier", "shift"),
          (Attr("axis", "int", 1, "channel axis"), _ROUNDING_ATTR, _int_out()),
          _requantize_pc_infer, _requantize_pc_compute,
          lambda node, ins, name: topi_qnn.requantize_per_channel(
              ins[0], ins[1], ins[2], node.attrs["axis"], node.attrs["rounding"], node.type.dtype,
              packed=ins[0].ndim == 5, name=name),
          "requantize with a (multiplier, shift) per channel along axis (int32 constants [C]).")


# ---------------------------------------------------------------------- qadd / qconcatenate
def _qadd_infer(ctx, types, attrs):
    a, b = types
    for nm, t in (("lhs", a), ("rhs", b)):
        if t.dtype != "int8":
            raise ctx.dtype_error(f"{nm} must be int8, got {t.dtype}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ctx.shape_error(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    if a.layout and b.layout and a.layout != b.layout:
        raise ctx.shape_error(f"operands have different layouts ({a.layout}, {b.layout})")
    if abs(attrs["a_shift"] - attrs["b_shift"]) > _QMAX_DIFF:
        raise ctx.attr_error("b_shift", f"and a_shift differ by more than {_QMAX_DIFF} (the int64 sum could "
                                        "overflow); build the attributes with qadd_params")
    layout = a.layout if a.ndim >= b.ndim else b.layout
    return TensorType(shape, attrs["out_dtype"], layout)


def _qadd_te(node, ins, name):
    if [int(d.value) for d in ins[0].shape] != [int(d.value) for d in ins[1].shape]:
        raise GraphError(f"node {node.name!r} (qadd): broadcasting operands are not supported by the compiler")
    a = node.attrs
    return topi_qnn.qadd(ins[0], ins[1], a["a_multiplier"], a["a_shift"], a["b_multiplier"], a["b_shift"],
                         a["rounding"], node.type.dtype, name=name)


_register("qadd", ("lhs", "rhs"),
          (Attr("a_multiplier", "int", REQUIRED, "Q31 multiplier of lhs (s_lhs / s_out)", check=_mult_check),
           Attr("a_shift", "int", REQUIRED, "shift of lhs", check=_shift_check),
           Attr("b_multiplier", "int", REQUIRED, "Q31 multiplier of rhs (s_rhs / s_out)", check=_mult_check),
           Attr("b_shift", "int", REQUIRED, "shift of rhs", check=_shift_check),
           _ROUNDING_ATTR, _int_out(choices=("int8",))),
          _qadd_infer,
          lambda i, a, o: qadd_np(i[0], i[1], a["a_multiplier"], a["a_shift"], a["b_multiplier"], a["b_shift"],
                                  a["rounding"], o.dtype),
          _qadd_te,
          "int8 + int8 with different scales: one rounding of a*sa/so + b*sb/so in int64, saturated.")


def _qconcat_infer(ctx, types, attrs):
    base = get_op("concatenate").infer(ctx, types, {"axis": attrs["axis"]})
    if base.dtype != "int8":
        raise ctx.dtype_error(f"inputs must be int8, got {base.dtype}")
    n = len(types)
    for nm in ("multipliers", "shifts"):
        if len(attrs[nm]) != n:
            raise ctx.attr_error(nm, f"has {len(attrs[nm])} values for {n} inputs")
    return TensorType(base.shape, attrs["out_dtype"], base.layout)


_register("qconcatenate", ("*data",),
          (Attr("multipliers", "ints", REQUIRED, "Q31 multiplier per input (s_i / s_out)",
                check=_ints_check(_mult_check)),
           Attr("shifts", "ints", REQUIRED, "shift per input", check=_ints_check(_shift_check)),
           Attr("axis", "int", 1, "axis to join along"),
           _ROUNDING_ATTR, _int_out(choices=("int8",))),
          _qconcat_infer,
          lambda i, a, o: qconcatenate_np(i, a["multipliers"], a["shifts"], a["axis"] % o.ndim, a["rounding"],
                                          o.dtype),
          lambda node, ins, name: topi_qnn.qconcatenate(list(ins), node.attrs["multipliers"], node.attrs["shifts"],
                                                        node.attrs["axis"], node.attrs["rounding"], node.type.dtype,
                                                        name=name),
          "concatenate of int8 tensors, each requantized to the output scale first.")
