"""What the quantized converters share: per-import state (DequantizeLinear outputs, fused
anchors, int8 twins of uint8 tensors), quantization parameters read from the model, and the
integer building blocks (int8 twins, requantize with zero points, quantize / dequantize, int8
anchors). See :mod:`.quant` for the semantics."""
from __future__ import annotations

import numpy as np

from ...errors import GraphError
from ...graph.quantize.ops import multiplier_shift, requantize_np
from .importer import clean_name

_ACT_DTYPES = ("int8", "uint8")
_INT32 = (-2 ** 31, 2 ** 31 - 1)


class _DQ:
    """What a ``DequantizeLinear`` output came from: ``src`` (ONNX name), constant ``q`` (or
    None for a graph tensor), ``scale`` (float32 array), ``zp`` (array) and ``axis``."""

    def __init__(self, src, q, scale, zp, axis):
        self.src, self.q, self.scale, self.zp, self.axis = src, q, scale, zp, axis


class _State:
    """Per-import bookkeeping: consumers of every ONNX value, the DequantizeLinear outputs, the
    QDQ anchors' int8 results and the int8 twins of uint8 tensors."""

    def __init__(self, imp):
        self.consumers: dict[str, list] = {}
        for proto in imp.model.graph.node:
            for i in proto.input:
                if i:
                    self.consumers.setdefault(i, []).append(proto)
        self.dq: dict[str, _DQ] = {}
        self.fused: dict[str, str] = {}   # QDQ anchor output -> its requantized int8 node
        self.twin: dict[str, str] = {}    # uint8 ONNX value -> int8 graph node holding q - 128


def _state(imp) -> _State:
    st = getattr(imp, "_qstate", None)
    if st is None:
        st = imp._qstate = _State(imp)
    return st


# ====================================================================== quantization parameters
def _scale(imp, node, idx, what):
    s = np.asarray(imp.const(node, node.input(idx), what), np.float32)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise node.error(f"input {what} ({node.input(idx)!r}) must hold positive finite scales, got {s}")
    return s


def _zero_point(imp, node, idx, what, default_dtype="uint8"):
    if node.input(idx):
        return np.asarray(imp.const(node, node.input(idx), what))
    return np.zeros((), default_dtype)


def _act_zero_point(node, tensor, zp, dtype) -> int:
    """The zero point of 8-bit activation ``tensor`` on its int8 twin (uint8: ``zp - 128``);
    GraphError for other dtypes and per-axis zero points."""
    dtype = np.dtype(dtype).name
    zp = np.asarray(zp)
    if dtype not in _ACT_DTYPES:
        shown = zp.reshape(-1)[0] if zp.size == 1 else zp.reshape(-1).tolist()
        raise node.error(f"tensor {tensor!r} is quantized as {dtype} with zero point {shown}; minitvm's quantized "
                         "ops take 8-bit activations only (int8 or uint8, any zero point)")
    if zp.size != 1:
        raise node.error(f"tensor {tensor!r}: per-axis zero points of an activation are not supported "
                         f"({zp.size} zero points)")
    z = int(zp.reshape(()))
    lo, hi = (0, 255) if dtype == "uint8" else (-128, 127)
    if not lo <= z <= hi:
        raise node.error(f"tensor {tensor!r}: zero point {z} is out of the {dtype} range")
    return z - 128 if dtype == "uint8" else z


def _per_tensor(node, scale, tensor):
    if scale.size != 1:
        raise node.error(f"tensor {tensor!r}: per-axis quantization of an activation is not supported "
                         f"({scale.size} scales)")
    return float(scale.reshape(()))


def _bcast(arr, ndim, axis):
    arr = np.asarray(arr)
    if arr.size == 1:
        return arr.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = arr.size
    return arr.reshape(shape)


def _weight_params(node, q, scale, zp, axis, ch_axis, n_out, what):
    """Check an 8-bit weight's quantization (per tensor or per output channel on ``ch_axis``);
    returns its scales and zero points, one per output channel."""
    if q.dtype not in (np.int8, np.uint8):
        raise node.error(f"weight {what!r} must be int8 or uint8 to run in integers, got {q.dtype}")
    zp = np.asarray(zp)
    for nm, v in (("scales", scale), ("zero points", zp)):
        if v.size != 1 and (v.size != n_out or axis % q.ndim != ch_axis % q.ndim):
            raise node.error(f"weight {what!r}: {nm} must be per tensor or per output channel (axis {ch_axis}), "
                             f"got {v.size} on axis {axis}")
    return (np.broadcast_to(scale.astype(np.float64).reshape(-1), (n_out,)),
            np.broadcast_to(zp.astype(np.int64).reshape(-1), (n_out,)))


def _int_bias(node, b, what):
    """An int32 bias (scale s_x * s_w[c] by the QOperator spec), flattened."""
    if b.dtype != np.int32:
        raise node.error(f"bias {what!r} must be int32, got {b.dtype}")
    return b.reshape(-1)


def _out_suffix(dtype):
    """Name suffix of the int8 result: the ONNX output's own name unless a uint8 conversion follows."""
    return "" if dtype == "int8" else ".int8"


# ====================================================================== integer building blocks
def _i32(imp, base, v):
    """An int32 constant; GraphError if ``v`` does not fit."""
    v = np.asarray(v, np.int64)
    if v.min(initial=0) < _INT32[0] or v.max(initial=0) > _INT32[1]:
        raise GraphError(f"constant {base!r} overflows int32")
    return imp.new_const(base, v.astype(np.int32))


def _op(imp, base, op, ins, attrs=None):
    return imp.g.add_op(op, ins, attrs or {}, name=imp.g.unique_name(clean_name(base)))


def _int8(imp, node, name):
    """The int8 graph node holding 8-bit ONNX tensor ``name``: itself (int8) or its twin
    ``q - 128`` (uint8, made once)."""
    _, dtype = imp.type(node, name)
    if dtype != "uint8":
        return imp.tensor(node, name)
    st = _state(imp)
    if name not in st.twin:
        if imp.is_const(node, name):
            q = imp.const(node, name, "input")
            st.twin[name] = imp.new_const(f"{name}_int8", (q.astype(np.int16) - 128).astype(np.int8))
        else:
            x = imp.tensor(node, name)
            c = _op(imp, f"{x}.int32", "cast", [x], {"dtype": "int32"})
            a = _op(imp, f"{x}.minus128", "add", [c, _i32(imp, f"{x}.minus128_value", -128)])
            st.twin[name] = _op(imp, f"{x}.int8", "cast", [a], {"dtype": "int8"})
    return st.twin[name]


def _emit(imp, node, y8, dtype):
    """``node``'s ONNX output from its int8 result ``y8``: itself, or ``y8 + 128`` as uint8 (with
    ``y8`` recorded as its twin)."""
    if dtype == "int8":
        return y8
    c = imp.add(node, "cast", [y8], {"dtype": "int32"}, suffix=".int32")
    a = imp.add(node, "add", [c, _i32(imp, f"{node.name}.128", 128)], suffix=".plus128")
    _state(imp).twin[node.outputs[0]] = y8
    return imp.add(node, "cast", [a], {"dtype": "uint8"})


def _saturate_zp(imp, node, r, z, suffix):
    """int8 ``saturate(r + z)`` of an int32 graph node."""
    if z:
        r = imp.add(node, "add", [r, _i32(imp, f"{node.name}.zero_point", z)], suffix=".add_zero_point")
    r = imp.add(node, "clip", [r], {"min": -128.0, "max": 127.0}, suffix=".saturate")
    return imp.add(node, "cast", [r], {"dtype": "int8"}, suffix=suffix)


def _quantize(imp, node, x, s, z, suffix):
    """int8 ``saturate(rint(x / s) + z)`` of a float graph node (ONNX QuantizeLinear on the twin)."""
    if z == 0:
        return imp.add(node, "quantize", [x], {"scale": s, "out_dtype": "int8"}, suffix=suffix)
    # clipping to +-256 steps first keeps rint(x / s) in int32 and changes no result (|z| <= 128)
    b = float(np.float32(s) * np.float32(256))
    x = imp.add(node, "clip", [x], {"min": -b, "max": b}, suffix=".clip_range")
    q = imp.add(node, "quantize", [x], {"scale": s, "out_dtype": "int32"}, suffix=".quantize")
    return _saturate_zp(imp, node, q, z, suffix)


def _dequantize(imp, node, x, z, s, suffix=""):
    """float32 ``(x - z) * s`` of an integer graph node, as ONNX DequantizeLinear computes it."""
    if z:
        x = imp.add(node, "cast", [x], {"dtype": "int32"}, suffix=".int32")
        x = imp.add(node, "sub", [x, _i32(imp, f"{node.name}.zero_point", z)], suffix=".centered")
    return imp.add(node, "dequantize", [x], {"scale": s}, suffix=suffix)


def _requantize(imp, node, acc, factors, suffix="_requantize", out_dtype="int8"):
    """``requantize`` (one factor) or ``requantize_per_channel`` (axis 1) of int32 ``acc``."""
    factors = np.asarray(factors, np.float64).reshape(-1)
    ms = [multiplier_shift(f) for f in factors]
    if len(set(ms)) == 1:
        m, s = ms[0]
        return imp.add(node, "requantize", [acc], {"multiplier": m, "shift": s, "out_dtype": out_dtype},
                       suffix=suffix)
    mult = imp.new_const(f"{node.name}.rq_multiplier", np.asarray([m for m, _ in ms], np.int32))
    shift = imp.new_const(f"{node.name}.rq_shift", np.asarray([s for _, s in ms], np.int32))
    return imp.add(node, "requantize_per_channel", [acc, mult, shift], {"axis": 1, "out_dtype": out_dtype},
                   suffix=suffix)


def _requantize_zp(imp, node, acc, factors, z, suffix):
    """int8 ``saturate(round(acc * factors[c]) + z)`` of int32 accumulators ``acc``."""
    if z == 0:
        return _requantize(imp, node, acc, factors, suffix)
    r = _requantize(imp, node, acc, factors, ".requantize", out_dtype="int32")
    return _saturate_zp(imp, node, r, z, suffix)


def _anchor_acc(imp, node, op, x_name, z_x, w, z_w, bias, attrs, acc_suffix, w_name=None):
    """The int32 result of ``op`` (conv2d: OIHW ``w``; dense: [N, K] ``w``) of 8-bit activation
    ``x_name`` (twin zero point ``z_x``) by the constant 8-bit weight ``w`` (zero points ``z_w``
    per output channel) plus the int32 ``bias``, with every zero point taken out.
    ``w_name``: the ONNX initializer holding ``w`` as is (reused when it fits)."""
    attrs = dict(attrs, out_dtype="int32")
    n_out = w.shape[0]
    b = np.zeros(n_out, np.int64) if bias is None else bias.astype(np.int64)
    x = _int8(imp, node, x_name)
    if w.dtype == np.int8 and not np.any(z_w):
        if z_x:   # sum((x - z_x) * w) = sum(x * w) - z_x * sum(w); the border is padded with z_x
            b = b - z_x * w.reshape(n_out, -1).astype(np.int64).sum(axis=1)
            if op == "conv2d" and any(attrs["padding"]):
                t, left, bottom, right = attrs["padding"]
                x = imp.add(node, "pad", [x], {"pad_width": ((0, 0), (0, 0), (t, bottom), (left, right)),
                                               "value": float(z_x)}, suffix=".pad")
                attrs["padding"] = (0, 0, 0, 0)
        wn = imp.tensor(node, w_name) if w_name else imp.new_const(f"{node.name}.weight_int8", w)
    else:         # asymmetric or uint8 weights: (x - z_x) * (w - z_w) in int32, exactly
        x = imp.add(node, "cast", [x], {"dtype": "int32"}, suffix=".int32")
        if z_x:
            x = imp.add(node, "sub", [x, _i32(imp, f"{node.name}.x_zero_point", z_x)], suffix=".centered")
        wc = w.astype(np.int64) - np.asarray(z_w, np.int64).reshape((n_out,) + (1,) * (w.ndim - 1))
        wn = imp.new_const(f"{node.name}.weight_int32", wc.astype(np.int32))
    ins = [x, wn]
    if bias is not None or np.any(b):
        if b.min() < _INT32[0] or b.max() > _INT32[1]:
            raise node.error("the bias with the input zero point folded in overflows int32")
        ins.append(imp.new_const(f"{node.name}.bias_int32", b.astype(np.int32)))
    return imp.add(node, op, ins, attrs, suffix=acc_suffix)


def _anchor(imp, node, op, x_name, z_x, w, z_w, bias, attrs, factors, z_y, acc_suffix, suffix, w_name=None):
    """:func:`_anchor_acc` requantized by ``factors`` to int8 with zero point ``z_y``."""
    acc = _anchor_acc(imp, node, op, x_name, z_x, w, z_w, bias, attrs, acc_suffix, w_name)
    return _requantize_zp(imp, node, acc, factors, z_y, suffix)


def _rescale_np(q, z, factor, z_y):
    """int8 ``saturate(round((q - z) * factor) + z_y)`` of a constant (requantize semantics)."""
    m, s = multiplier_shift(factor)
    r = requantize_np(q.astype(np.int64) - z, m, s, out_dtype="int32").astype(np.int64)
    return np.clip(r + z_y, -128, 127).astype(np.int8)



# ====================================================================== any quantization, in float
def _broadcast_param(node, arr, x_shape, axis, block, what):
    """A scale or zero point shaped to broadcast against ``x_shape``: per tensor, per ``axis``, or
    per block of ``block`` elements along ``axis`` (the blocks' values repeated)."""
    arr = np.asarray(arr)
    if arr.size == 1 and not block:
        return arr.reshape(())
    rank = len(x_shape)
    axis %= rank
    if block:
        want = [-(-d // block) if k == axis else d for k, d in enumerate(x_shape)]
        if list(arr.shape) != want:
            raise node.error(f"{what} of shape {list(arr.shape)} does not block {list(x_shape)} by {block} on axis "
                             f"{axis} (expected {want})")
        return np.take(np.repeat(arr, block, axis=axis), np.arange(x_shape[axis]), axis=axis)
    if arr.ndim != 1 or arr.size != x_shape[axis]:
        raise node.error(f"{what} holds {arr.size} values, axis {axis} of the input has {x_shape[axis]}")
    shape = [1] * rank
    shape[axis] = arr.size
    return arr.reshape(shape)


def quantize_any(imp, node, x, xs, scale, zp, axis, block):
    """ONNX QuantizeLinear of graph tensor ``x`` in float ops, any integer output type and any
    granularity: ``saturate(rint(x / scale) + zp)`` (``/`` in ``x``'s dtype, rounding half to even)."""
    _, dtype = imp.type(node, node.input(0))
    s = imp.new_const(f"{node.name}.scale", _broadcast_param(node, scale, xs, axis, block, "y_scale").astype(dtype))
    q = imp.add(node, "round", [imp.add(node, "divide", [x, s], suffix=".scaled")], suffix=".rint")
    q = imp.add(node, "cast", [q], {"dtype": "float32"}, suffix=".f32") if dtype != "float32" else q
    if np.any(zp):
        z = _broadcast_param(node, zp, xs, axis, block, "y_zero_point").astype(np.float32)
        q = imp.add(node, "add", [q, imp.new_const(f"{node.name}.zero_point", z)], suffix=".shifted")
    info = np.iinfo(zp.dtype)
    q = imp.add(node, "clip", [q], {"min": float(info.min), "max": float(info.max)}, suffix=".saturated")
    return imp.add(node, "cast", [q], {"dtype": zp.dtype.name})


def dequantize_any(imp, node, x, xs, scale, zp, axis, block, out_dtype):
    """ONNX DequantizeLinear of graph tensor ``x`` in float ops, any integer input type and any
    granularity: ``(float32(x) - zp) * scale``, as ``out_dtype``."""
    f = imp.add(node, "cast", [x], {"dtype": "float32"}, suffix=".f32")
    if np.any(zp):
        z = _broadcast_param(node, zp, xs, axis, block, "x_zero_point").astype(np.float32)
        f = imp.add(node, "sub", [f, imp.new_const(f"{node.name}.zero_point", z)], suffix=".centered")
    s = _broadcast_param(node, scale, xs, axis, block, "x_scale").astype(np.float32)
    y = imp.add(node, "mul", [f, imp.new_const(f"{node.name}.scale", s)], suffix="" if out_dtype == "float32" else
                ".scaled")
    return y if out_dtype == "float32" else imp.add(node, "cast", [y], {"dtype": out_dtype})
