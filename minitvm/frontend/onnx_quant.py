"""Pre-quantized ONNX models (onnxruntime's ``quantize_static``) onto minitvm's int8 ops.

Imported by :mod:`minitvm.frontend.onnx`, which it extends: ``from_onnx`` of a quantized model
needs nothing else. Two formats:

* **QDQ** -- ``QuantizeLinear`` / ``DequantizeLinear`` around float ops. The anchors
  ``DQ(x) -> Conv | Gemm | MatMul -> Q`` (``x`` an int8 activation; weight ``DQ`` of an int8
  initializer, per tensor or per output channel; optional bias ``DQ`` of an int32 initializer
  with scale ``s_x * s_w``; the anchor's only consumer a ``QuantizeLinear``) become
  ``conv2d`` / ``dense`` (int8 x int8 -> int32, int32 bias) + ``requantize[_per_channel]`` with
  ``multiplier_shift(s_x * s_w[c] / s_y)``. Everything else runs in float between a
  ``dequantize`` and a ``quantize`` (ONNX ``QuantizeLinear`` is exactly our ``quantize``: a
  float32 division, round half to even, saturate). ``DequantizeLinear`` of a constant is
  folded (any zero point, any axis).
* **QOperator** -- ``QLinearConv``, ``QLinearMatMul``, ``QuantizeLinear``, ``DequantizeLinear``
  and the com.microsoft ``QGemm``, ``QLinearAdd`` (-> ``qadd``), ``QLinearConcat``
  (-> ``qconcatenate``), ``QLinearGlobalAveragePool`` (float between dequantize / quantize).

Activations must be symmetric int8 (zero point 0), as minitvm's quantized ops are: a graph
(non-constant) tensor quantized with another zero point or to uint8 raises ``GraphError``
naming the node, the tensor and the zero point. Weights must be int8 with zero point 0 to run
in int8 (a ``DQ`` weight with another zero point folds to float and the layer runs in float).

Integer results equal onnxruntime's up to the requantize rounding: onnxruntime rescales the
int32 accumulator with a float32 multiply and rounds half to even, minitvm with a Q31
fixed-point multiplier rounding half away from zero; they can differ by one step at
near-ties.
"""
from __future__ import annotations

import numpy as np

from ..errors import GraphError
from ..graph import quantize as _quantize_ops  # noqa: F401  (registers quantize, requantize, qadd ...)
from ..graph.quantize.ops import multiplier_shift, qadd_params
from . import onnx as _onnx

__all__ = ["QUANT_OPS"]

#: op types handled here (com.microsoft ones included)
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd",
             "QLinearConcat", "QLinearGlobalAveragePool")

_FLOAT_CONV = _onnx._CONVERTERS["Conv"]
_FLOAT_GEMM = _onnx._CONVERTERS["Gemm"]
_FLOAT_MATMUL = _onnx._CONVERTERS["MatMul"]
_BIAS_RTOL = 1e-5


class _DQ:
    """What a ``DequantizeLinear`` output came from: ``src`` (ONNX name), constant ``q`` (or
    None for a graph tensor), ``scale`` (float32 array), ``zp`` (array) and ``axis``."""

    def __init__(self, src, q, scale, zp, axis):
        self.src, self.q, self.scale, self.zp, self.axis = src, q, scale, zp, axis


class _State:
    """Per-import bookkeeping: consumers of every ONNX value and the DequantizeLinear outputs."""

    def __init__(self, imp):
        self.consumers: dict[str, list] = {}
        for proto in imp.model.graph.node:
            for i in proto.input:
                if i:
                    self.consumers.setdefault(i, []).append(proto)
        self.dq: dict[str, _DQ] = {}
        self.fused: dict[str, str] = {}   # QDQ anchor output -> its requantized int8 node


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


def _require_symmetric(node, tensor, zp, dtype):
    """Raise a GraphError unless ``tensor`` (a graph activation) is int8 with zero point 0."""
    zp = np.asarray(zp)
    if np.any(zp != 0) or np.dtype(dtype).name != "int8":
        shown = zp.reshape(-1)[0] if zp.size == 1 else zp.reshape(-1).tolist()
        raise node.error(
            f"tensor {tensor!r} is quantized as {np.dtype(dtype).name} with zero point {shown}; minitvm's "
            "quantized ops take symmetric int8 activations only (zero point 0): quantize the model with "
            "activation_type=QuantType.QInt8 and extra_options={'ActivationSymmetric': True}")


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


def _requantize(imp, node, acc, factors, suffix="_requantize"):
    """``requantize`` (one factor) or ``requantize_per_channel`` (axis 1) of int32 ``acc``."""
    factors = np.asarray(factors, np.float64).reshape(-1)
    ms = [multiplier_shift(f) for f in factors]
    if len(set(ms)) == 1:
        m, s = ms[0]
        return imp.add(node, "requantize", [acc], {"multiplier": m, "shift": s}, suffix=suffix)
    mult = imp.new_const(f"{node.name}.rq_multiplier", np.asarray([m for m, _ in ms], np.int32))
    shift = imp.new_const(f"{node.name}.rq_shift", np.asarray([s for _, s in ms], np.int32))
    return imp.add(node, "requantize_per_channel", [acc, mult, shift], {"axis": 1}, suffix=suffix)


def _int_weight(node, q, scale, zp, axis, ch_axis, n_out, what):
    """Check an int8 weight's quantization: zero point 0, per tensor or per channel on ``ch_axis``."""
    if q.dtype != np.int8:
        raise node.error(f"weight {what!r} must be int8 to run in int8, got {q.dtype}")
    if np.any(np.asarray(zp) != 0):
        raise node.error(f"weight {what!r} has a non-zero zero point; only symmetric int8 weights are supported")
    if scale.size != 1 and (scale.size != n_out or axis % q.ndim != ch_axis % q.ndim):
        raise node.error(f"weight {what!r}: scales must be per tensor or per output channel (axis {ch_axis}), "
                         f"got {scale.size} on axis {axis}")
    return np.broadcast_to(scale.astype(np.float64).reshape(-1), (n_out,))


def _int_bias(node, b, what):
    """An int32 bias (scale s_x * s_w[c] by the QOperator spec), flattened."""
    if b.dtype != np.int32:
        raise node.error(f"bias {what!r} must be int32, got {b.dtype}")
    return b.reshape(-1)


# ====================================================================== QuantizeLinear / DequantizeLinear
@_onnx._converter("QuantizeLinear")
def _quantize_linear(imp, node):
    """ONNX QuantizeLinear: ``saturate(rint(x / scale) + zp)``; a graph tensor becomes ``quantize``."""
    x = node.input(0)
    scale = _scale(imp, node, 1, "y_scale")
    zp = _zero_point(imp, node, 2, "y_zero_point")
    if "output_dtype" in node.attrs and not node.input(2):
        zp = np.zeros((), _onnx._onnx_dtype(node.get("output_dtype")))
    axis = int(node.get("axis", 1))
    if imp.is_const(node, x):
        v = np.asarray(imp.const(node, x, "x"), np.float32)
        s, z = _bcast(scale, v.ndim, axis), _bcast(zp, v.ndim, axis).astype(np.float64)
        info = np.iinfo(zp.dtype)
        return np.clip(np.rint(v / s) + z, info.min, info.max).astype(zp.dtype)
    if node.get("block_size", 0):
        raise node.error("blocked quantization is not supported", "block_size")
    s = _per_tensor(node, scale, x)
    _require_symmetric(node, x, zp, zp.dtype)
    fused = _state(imp).fused.get(x)
    if fused is not None:
        return fused
    return imp.add(node, "quantize", [imp.tensor(node, x)], {"scale": s, "out_dtype": "int8"})


@_onnx._converter("DequantizeLinear")
def _dequantize_linear(imp, node):
    """ONNX DequantizeLinear: constants fold to float32; a graph int8 tensor becomes ``dequantize``."""
    x = node.input(0)
    scale = _scale(imp, node, 1, "x_scale")
    axis = int(node.get("axis", 1))
    st = _state(imp)
    if imp.is_const(node, x):
        q = imp.const(node, x, "x")
        zp = _zero_point(imp, node, 2, "x_zero_point", q.dtype)
        st.dq[node.outputs[0]] = _DQ(x, q, scale, zp, axis)
        s, z = _bcast(scale, q.ndim, axis), _bcast(zp, q.ndim, axis)
        return ((q.astype(np.int64) - z.astype(np.int64)).astype(np.float32) * s).astype(np.float32)
    if node.get("block_size", 0):
        raise node.error("blocked quantization is not supported", "block_size")
    _, dtype = imp.type(node, x)
    zp = _zero_point(imp, node, 2, "x_zero_point", dtype)
    s = _per_tensor(node, scale, x)
    _require_symmetric(node, x, zp, dtype)
    st.dq[node.outputs[0]] = _DQ(x, None, scale, zp, axis)
    return imp.add(node, "dequantize", [imp.tensor(node, x)], {"scale": s})


# ====================================================================== QDQ anchors
def _sole_quantize(imp, node):
    """The QuantizeLinear that is the only consumer of ``node``'s output, with its scale; or None."""
    out = node.outputs[0]
    users = _state(imp).consumers.get(out, [])
    if out in imp.graph_outputs or len(users) != 1 or users[0].op_type != "QuantizeLinear":
        return None
    q = _onnx._Node(users[0])
    if not imp.has(q.input(1)) or not imp.is_const(q, q.input(1)):
        return None
    if q.input(2) and (not imp.has(q.input(2)) or not imp.is_const(q, q.input(2))):
        return None
    scale = np.asarray(imp.value(q, q.input(1)), np.float32)
    zp = np.asarray(imp.value(q, q.input(2))) if q.input(2) else np.zeros((), np.uint8)
    if scale.size != 1 or zp.dtype != np.int8 or np.any(zp != 0):
        return None   # falls back to float; the QuantizeLinear raises for the zero point
    return float(scale.reshape(()))


def _qdq_inputs(imp, node, x_name, w_name, b_name, ch_axis_of_w, n_out_axis):
    """Match ``DQ(int8 activation)``, ``DQ(int8 weight)``, ``DQ(int32 bias)``; None if not a QDQ anchor."""
    st = _state(imp)
    dx, dw = st.dq.get(x_name), st.dq.get(w_name)
    if dx is None or dw is None or dx.q is not None or dw.q is None:
        return None
    if dw.q.dtype != np.int8 or np.any(np.asarray(dw.zp) != 0):
        return None
    n_out = dw.q.shape[n_out_axis]
    if dw.scale.size != 1 and (dw.scale.size != n_out or dw.axis % dw.q.ndim != ch_axis_of_w):
        return None
    s_x = float(dx.scale.reshape(()))
    s_w = np.broadcast_to(dw.scale.astype(np.float64).reshape(-1), (n_out,))
    bias = None
    if b_name:
        db = st.dq.get(b_name)
        if db is None or db.q is None or db.q.dtype != np.int32 or np.any(np.asarray(db.zp) != 0) \
                or db.q.size != n_out:
            return None
        s_b = np.broadcast_to(db.scale.astype(np.float64).reshape(-1), (n_out,))
        if not np.allclose(s_b, (np.float32(s_x) * s_w.astype(np.float32)).astype(np.float64), rtol=_BIAS_RTOL,
                           atol=0):
            return None
        bias = db.q.reshape(-1)
    s_out = _sole_quantize(imp, node)
    if s_out is None:
        return None
    return dx, dw, s_x, s_w, bias, s_out


def _fuse(imp, node, y):
    _state(imp).fused[node.outputs[0]] = y
    return y


def _qdq_conv(imp, node):
    """Conv: int8 conv2d + requantize when it is a QDQ anchor, else the float converter."""
    m = _qdq_inputs(imp, node, node.input(0), node.input(1), node.input(2), 0, 0)
    if m is None:
        return _FLOAT_CONV(imp, node)
    dx, dw, s_x, s_w, bias, s_out = m
    xs, _ = imp.type(node, dx.src)
    attrs = _onnx._conv_attrs(node, xs, dw.q.shape)
    attrs["out_dtype"] = "int32"
    ins = [imp.tensor(node, dx.src), imp.tensor(node, dw.src)]
    if bias is not None:
        ins.append(imp.new_const(f"{node.input(2)}_int32", bias))
    acc = imp.add(node, "conv2d", ins, attrs)
    return _fuse(imp, node, _requantize(imp, node, acc, s_x * s_w / s_out))


def _dense_q(imp, node, x, w, bias, factors):
    ins = [x, imp.new_const(f"{node.name}.weight_int8", np.ascontiguousarray(w))]
    if bias is not None:
        ins.append(imp.new_const(f"{node.name}.bias_int32", bias))
    acc = imp.add(node, "dense", ins, {"out_dtype": "int32"})
    return _requantize(imp, node, acc, factors)


def _qdq_gemm(imp, node):
    """Gemm (alpha = beta = 1, transA = 0): int8 dense + requantize as a QDQ anchor, else float."""
    if float(node.get("alpha", 1.0)) != 1.0 or float(node.get("beta", 1.0)) != 1.0 or int(node.get("transA", 0)):
        return _FLOAT_GEMM(imp, node)
    tb = int(node.get("transB", 0))
    m = _qdq_inputs(imp, node, node.input(0), node.input(1), node.input(2), 0 if tb else 1, 0 if tb else 1)
    if m is None or len(imp.type(node, m[0].src)[0]) != 2:
        return _FLOAT_GEMM(imp, node)
    dx, dw, s_x, s_w, bias, s_out = m
    w = dw.q if tb else dw.q.T
    return _fuse(imp, node, _dense_q(imp, node, imp.tensor(node, dx.src), w, bias, s_x * s_w / s_out))


def _qdq_matmul(imp, node):
    """MatMul of a 2-D int8 activation by a constant int8 [K, N]: int8 dense + requantize, else float."""
    m = _qdq_inputs(imp, node, node.input(0), node.input(1), "", 1, 1)
    if m is None or len(imp.type(node, m[0].src)[0]) != 2 or m[1].q.ndim != 2:
        return _FLOAT_MATMUL(imp, node)
    dx, dw, s_x, s_w, _, s_out = m
    return _fuse(imp, node, _dense_q(imp, node, imp.tensor(node, dx.src), dw.q.T, None, s_x * s_w / s_out))


_onnx._CONVERTERS["Conv"] = _qdq_conv
_onnx._CONVERTERS["Gemm"] = _qdq_gemm
_onnx._CONVERTERS["MatMul"] = _qdq_matmul


# ====================================================================== QOperator
def _q_activation(imp, node, idx, s_idx, zp_idx, what):
    """An int8 activation input of a QLinear op: (graph node name, scale)."""
    name = node.input(idx)
    scale = _scale(imp, node, s_idx, f"{what}_scale")
    if imp.is_const(node, name):
        q = imp.const(node, name, what)
        zp = _zero_point(imp, node, zp_idx, f"{what}_zero_point", q.dtype)
        _require_symmetric(node, name, zp, q.dtype)
        return imp.tensor(node, name), _per_tensor(node, scale, name)
    _, dtype = imp.type(node, name)
    zp = _zero_point(imp, node, zp_idx, f"{what}_zero_point", dtype)
    _require_symmetric(node, name, zp, dtype)
    return imp.tensor(node, name), _per_tensor(node, scale, name)


def _q_output(imp, node, s_idx, zp_idx):
    out = node.outputs[0]
    scale = _scale(imp, node, s_idx, "y_scale")
    zp = _zero_point(imp, node, zp_idx, "y_zero_point")
    _require_symmetric(node, out, zp, zp.dtype)
    return _per_tensor(node, scale, out)


@_onnx._converter("QLinearConv")
def _qlinear_conv(imp, node):
    """QLinearConv -> conv2d (int8 x int8 -> int32, int32 bias) + requantize[_per_channel]."""
    x, s_x = _q_activation(imp, node, 0, 1, 2, "x")
    w = imp.const(node, node.input(3), "w")
    w_scale = _scale(imp, node, 4, "w_scale")
    s_w = _int_weight(node, w, w_scale, _zero_point(imp, node, 5, "w_zero_point", w.dtype), 0, 0, w.shape[0],
                      node.input(3))
    s_y = _q_output(imp, node, 6, 7)
    xs, _ = imp.type(node, node.input(0))
    attrs = _onnx._conv_attrs(node, xs, w.shape)
    attrs["out_dtype"] = "int32"
    ins = [x, imp.tensor(node, node.input(3))]
    if node.input(8):
        ins.append(imp.new_const(node.input(8), _int_bias(node, imp.const(node, node.input(8), "B"), node.input(8))))
    acc = imp.add(node, "conv2d", ins, attrs, suffix=".conv")
    return _requantize(imp, node, acc, s_x * s_w / s_y, suffix="")


@_onnx._converter("QLinearMatMul")
def _qlinear_matmul(imp, node):
    """QLinearMatMul of a 2-D int8 activation by a constant int8 [K, N] -> dense + requantize."""
    a, s_a = _q_activation(imp, node, 0, 1, 2, "a")
    if len(imp.type(node, node.input(0))[0]) != 2:
        raise node.error("only a 2-D A is supported")
    b = imp.const(node, node.input(3), "b")
    if b.ndim != 2:
        raise node.error(f"only a 2-D constant B is supported, got shape {list(b.shape)}")
    s_b = _int_weight(node, b, _scale(imp, node, 4, "b_scale"),
                      _zero_point(imp, node, 5, "b_zero_point", b.dtype), 1, 1, b.shape[1], node.input(3))
    s_y = _q_output(imp, node, 6, 7)
    ins = [a, imp.new_const(f"{node.input(3)}_T", np.ascontiguousarray(b.T))]
    acc = imp.add(node, "dense", ins, {"out_dtype": "int32"}, suffix=".dense")
    return _requantize(imp, node, acc, s_a * s_b / s_y, suffix="")


@_onnx._converter("QGemm")
def _qgemm(imp, node):
    """com.microsoft QGemm (alpha folded into the rescale, transA = 0) -> dense + requantize (or a
    float32 output ``cast(acc) * s_a * s_b * alpha`` when it has no y_scale)."""
    if int(node.get("transA", 0)):
        raise node.error("= 1 is not supported", "transA")
    alpha = float(node.get("alpha", 1.0))
    a, s_a = _q_activation(imp, node, 0, 1, 2, "a")
    b = imp.const(node, node.input(3), "B")
    tb = int(node.get("transB", 0))
    n = b.shape[0] if tb else b.shape[1]
    s_b = _int_weight(node, b, _scale(imp, node, 4, "b_scale"),
                      _zero_point(imp, node, 5, "b_zero_point", b.dtype), 0 if tb else 1, 0 if tb else 1, n,
                      node.input(3))
    ins = [a, imp.new_const(f"{node.input(3)}_weight", np.ascontiguousarray(b if tb else b.T))]
    if node.input(6):
        ins.append(imp.new_const(f"{node.input(6)}_int32",
                                 _int_bias(node, imp.const(node, node.input(6), "C"), node.input(6))))
    if node.input(7):
        s_y = _q_output(imp, node, 7, 8)
        acc = imp.add(node, "dense", ins, {"out_dtype": "int32"}, suffix=".dense")
        return _requantize(imp, node, acc, alpha * s_a * s_b / s_y, suffix="")
    acc = imp.add(node, "dense", ins, {"out_dtype": "int32"}, suffix=".dense")
    f = imp.add(node, "cast", [acc], {"dtype": "float32"}, suffix=".cast")
    k = imp.new_const(f"{node.name}.scale", (alpha * s_a * s_b).astype(np.float32))
    return imp.add(node, "mul", [f, k])


@_onnx._converter("QLinearAdd")
def _qlinear_add(imp, node):
    """com.microsoft QLinearAdd -> qadd with ``qadd_params(s_a / s_c, s_b / s_c)``."""
    a, s_a = _q_activation(imp, node, 0, 1, 2, "A")
    b, s_b = _q_activation(imp, node, 3, 4, 5, "B")
    s_c = _q_output(imp, node, 6, 7)
    shape = np.broadcast_shapes(imp.type(node, node.input(0))[0], imp.type(node, node.input(3))[0])
    ins = []
    for x, idx in ((a, 0), (b, 3)):   # the compiler's qadd takes equal shapes: expand a constant operand
        if imp.is_const(node, node.input(idx)) and imp.type(node, node.input(idx))[0] != tuple(shape):
            x = imp.new_const(f"{node.input(idx)}_expanded",
                              np.broadcast_to(imp.const(node, node.input(idx), "operand"), shape))
        ins.append(x)
    return imp.add(node, "qadd", ins, qadd_params(s_a / s_c, s_b / s_c))


_onnx._MS_CONVERTERS.update({"QGemm", "QLinearAdd"})


@_onnx._converter("QLinearConcat")
def _qlinear_concat(imp, node):
    """com.microsoft QLinearConcat (Y_scale, Y_zp, then X, X_scale, X_zp per input) -> qconcatenate
    with ``multiplier_shift(s_i / s_y)`` per input."""
    s_y = _q_output(imp, node, 0, 1)
    n = (len(node.inputs) - 2) // 3
    if n < 1 or len(node.inputs) != 2 + 3 * n:
        raise node.error(f"expects Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples, got "
                         f"{len(node.inputs)} inputs")
    xs, ms, ss = [], [], []
    for i in range(n):
        x, s_x = _q_activation(imp, node, 2 + 3 * i, 3 + 3 * i, 4 + 3 * i, f"X{i}")
        m, s = multiplier_shift(s_x / s_y)
        xs.append(x)
        ms.append(m)
        ss.append(s)
    return imp.add(node, "qconcatenate", xs, {"multipliers": ms, "shifts": ss, "axis": int(node.get("axis"))})


@_onnx._converter("QLinearGlobalAveragePool")
def _qlinear_gap(imp, node):
    """com.microsoft QLinearGlobalAveragePool (NCHW) -> dequantize, float global_avg_pool2d, quantize."""
    if int(node.get("channels_last", 0)):
        raise node.error("= 1 is not supported", "channels_last")
    x, s_x = _q_activation(imp, node, 0, 1, 2, "X")
    s_y = _q_output(imp, node, 3, 4)
    f = imp.add(node, "dequantize", [x], {"scale": s_x}, suffix=".dequantize")
    p = imp.add(node, "global_avg_pool2d", [f], suffix=".pool")
    return imp.add(node, "quantize", [p], {"scale": s_y, "out_dtype": "int8"})


_onnx._MS_CONVERTERS.update({"QLinearConcat", "QLinearGlobalAveragePool"})
