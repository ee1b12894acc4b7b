"""Pre-quantized ONNX models (onnxruntime's ``quantize_static``) onto minitvm's int8 ops.

Its :data:`CONVERTERS` are merged last by :mod:`.load`: they replace the float Conv, Gemm and
MatMul converters (falling back to them outside a QDQ anchor) and wrap the pass-through ops. Two formats:

* **QDQ** -- ``QuantizeLinear`` / ``DequantizeLinear`` around float ops. The anchors
  ``DQ(x) -> Conv | Gemm | MatMul -> Q`` (``x`` an 8-bit activation; weight ``DQ`` of an 8-bit
  initializer, per tensor or per output channel; optional bias ``DQ`` of an int32 initializer
  with scale ``s_x * s_w``; the anchor's only consumer a ``QuantizeLinear``) run in integers
  (below). Everything else runs in float between a ``DequantizeLinear`` and a
  ``QuantizeLinear``, which are exact (ONNX ``QuantizeLinear`` is a float32 division, round
  half to even, add the zero point, saturate). ``DequantizeLinear`` of a constant is folded
  (any zero point, any axis).
* **QOperator** -- ``QLinearConv``, ``QLinearMatMul``, ``QuantizeLinear``, ``DequantizeLinear``
  (also their com.microsoft versions) and the com.microsoft ``QGemm``, ``QLinearAdd``,
  ``QLinearMul``, ``QLinearConcat``, ``QLinearGlobalAveragePool``, ``QLinearAveragePool``,
  ``QLinearSigmoid``, ``QLinearLeakyRelu``, ``QLinearSoftmax`` (the last five in float between
  dequantize and quantize); ``MaxPool``,
  ``GlobalMaxPool``, ``Flatten``, ``Reshape``, ``Transpose``, ``Squeeze``, ``Unsqueeze``,
  ``Identity``, ``Concat`` on quantized tensors work on the integers as ONNX says.

Activations are int8 or uint8, per tensor, with any zero point (``quantize_static``'s defaults:
asymmetric). Inside the graph an 8-bit tensor is held as int8: a uint8 tensor ``q`` (zero
point ``z``) by its *int8 twin* ``q - 128`` (zero point ``z - 128``, same scale: exact); uint8
is produced only where an ONNX consumer or graph output needs it (``cast``/``add`` of 128).
With the twin's zero point ``z_x`` and int8 weights with zero point 0, a conv / dense computes
``sum((x - z_x) * w) = sum(x * w) - z_x * sum(w)``: the second term (``sum(w)`` over each output
channel's window) is folded into the int32 bias, and a padded conv pads ``x`` explicitly with
``z_x`` (``pad`` op; real value 0) and runs unpadded. The int32 accumulator is requantized
(``requantize[_per_channel]``, ``multiplier_shift(s_x * s_w[c] / s_y)``) to int32, then the
output zero point is added and the result saturated to int8 (``add``, ``clip``, ``cast``: exact,
fused into the conv's kernel); with zero points 0 it is the plain int8 ``requantize``. Weights
with a non-zero zero point or uint8 weights run exactly in int32 instead: ``(x - z_x)`` and
``(w - z_w)`` as int32 tensors (a 4x wider conv / dense). ``QLinearAdd`` (``qadd`` when every
zero point is 0) rescales each operand to ``2**e`` times the output scale (``requantize`` to
int32, ``e`` up to 16), adds them and the folded zero points in int32, and rounds once with a
final ``requantize`` (off by a few ``2**-16`` of an output step before that rounding);
``QLinearConcat`` (``qconcatenate`` when every zero point is 0) rescales each input with its
zero points exactly, then concatenates. ``QLinearMul`` multiplies the centred operands in int32
and rounds once with a ``requantize`` of the product.

Unsupported, with a ``GraphError`` naming the node and the tensor: activations other than
int8 / uint8 (int16, 4-bit, float8 ...), per-axis scales or zero points on an activation,
blocked quantization, ``QGemm`` with ``transA``, ``QLinearMatMul`` of a non-constant B (or an N-D one
quantized per axis).

Integer results equal onnxruntime's up to the requantize rounding: onnxruntime rescales the
int32 accumulator with a float32 multiply and rounds half to even, minitvm with a Q31
fixed-point multiplier rounding half away from zero; they can differ by one step at
near-ties.
"""
from __future__ import annotations

import numpy as np

from ...errors import GraphError, MiniTVMError
from ...graph.quantize.ops import multiplier_shift, qadd_params
from . import float_ops
from .attrs import _graph_dtype, _onnx_dtype
from .float_ops import conv_attrs
from .importer import OnnxNode
from .quant_blocks import (_ACT_DTYPES, _DQ, _act_zero_point, _anchor, _anchor_acc, _bcast, _dequantize, _emit, _i32,
                           _int8, _int_bias, _out_suffix, _per_tensor, _quantize, _requantize, _requantize_zp,
                           _rescale_np, _scale, _state, _weight_params, _zero_point, dequantize_any,
                           quantize_any)
from .registry import ConverterTable

__all__ = ["CONVERTERS", "QUANT_OPS"]

#: the quantized converters (merged after the float ones)
CONVERTERS = ConverterTable()

# their converters fold constants themselves (a DequantizeLinear of a weight is remembered for its anchor)
CONVERTERS.sees_constants |= {"QuantizeLinear", "DequantizeLinear"}

#: op types handled here (com.microsoft ones included)
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd",
             "QLinearMul", "QLinearConcat", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSigmoid",
             "QLinearLeakyRelu", "QLinearSoftmax")

_FLOAT_CONV = float_ops.CONVERTERS.converters["Conv"]
_FLOAT_GEMM = float_ops.CONVERTERS.converters["Gemm"]
_FLOAT_MATMUL = float_ops.CONVERTERS.converters["MatMul"]
_ADD_BITS = 16   # QLinearAdd: operands rescaled to 2**16 times the output scale (fewer when that overflows)
_BIAS_RTOL = 1e-5

# ====================================================================== QuantizeLinear / DequantizeLinear
def _q_params(imp, node):
    """(scale, zero point) of a QuantizeLinear; the zero point's dtype is the output's."""
    scale = _scale(imp, node, 1, "y_scale")
    zp = _zero_point(imp, node, 2, "y_zero_point")
    if "output_dtype" in node.attrs and not node.input(2):
        zp = np.zeros((), _onnx_dtype(node.get("output_dtype")))
    return scale, zp


@CONVERTERS.converter("QuantizeLinear")
def _quantize_linear(imp, node):
    """ONNX QuantizeLinear: ``saturate(rint(x / scale) + zp)``; a graph tensor is quantized onto
    its int8 twin (``quantize``; with a zero point: ``quantize`` to int32, add, saturate)."""
    x = node.input(0)
    scale, zp = _q_params(imp, node)
    axis = int(node.get("axis", 1))
    if imp.is_const(node, x):
        v = np.asarray(imp.const(node, x, "x"), np.float32)
        s, z = _bcast(scale, v.ndim, axis), _bcast(zp, v.ndim, axis).astype(np.float64)
        info = np.iinfo(zp.dtype)
        return np.clip(np.rint(v / s) + z, info.min, info.max).astype(zp.dtype)
    dtype = zp.dtype.name
    if node.get("block_size", 0) or scale.size > 1 or zp.size > 1 or dtype not in _ACT_DTYPES:
        if dtype not in ("int8", "uint8", "int16", "uint16", "int32", "uint32"):
            raise node.error(f"output type {dtype} is not supported (integers)")
        xs, _ = imp.type(node, x)
        return quantize_any(imp, node, imp.tensor(node, x), xs, scale, zp, axis, int(node.get("block_size", 0)))
    s = _per_tensor(node, scale, x)
    z = _act_zero_point(node, x, zp, dtype)
    y8 = _state(imp).fused.get(x)
    if y8 is None:
        y8 = _quantize(imp, node, imp.tensor(node, x), s, z, _out_suffix(dtype))
    return _emit(imp, node, y8, dtype)


@CONVERTERS.converter("DequantizeLinear")
def _dequantize_linear(imp, node):
    """ONNX DequantizeLinear: constants fold to float32; a graph 8-bit tensor becomes
    ``dequantize`` (after ``cast`` and ``sub`` of the zero point when it is not 0)."""
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
    xs, dtype = imp.type(node, x)
    zp = _zero_point(imp, node, 2, "x_zero_point", dtype)
    if node.get("block_size", 0) or scale.size > 1 or zp.size > 1 or dtype not in _ACT_DTYPES:
        out_dtype = _graph_dtype(node, node.get("output_dtype"), "output_dtype") if node.get("output_dtype") \
            else imp.type(node, node.input(1))[1]
        return dequantize_any(imp, node, imp.tensor(node, x), xs, scale, zp, axis, int(node.get("block_size", 0)),
                              out_dtype)
    s = _per_tensor(node, scale, x)
    z = _act_zero_point(node, x, zp, dtype)
    st.dq[node.outputs[0]] = _DQ(x, None, scale, zp, axis)
    if dtype == "uint8" and x not in st.twin:   # no twin to read: dequantize the uint8 tensor itself
        return _dequantize(imp, node, imp.tensor(node, x), z + 128, s)
    return _dequantize(imp, node, _int8(imp, node, x), z, s)


# ====================================================================== QDQ anchors
def _sole_quantize(imp, node):
    """The QuantizeLinear that is the only consumer of ``node``'s output: (scale, twin zero point,
    dtype); or None."""
    out = node.outputs[0]
    users = _state(imp).consumers.get(out, [])
    if out in imp.graph_outputs or len(users) != 1 or users[0].op_type != "QuantizeLinear":
        return None
    q = OnnxNode(users[0])
    if not imp.has(q.input(1)) or not imp.is_const(q, q.input(1)):
        return None
    if q.input(2) and (not imp.has(q.input(2)) or not imp.is_const(q, q.input(2))):
        return None
    if q.get("block_size", 0):
        return None
    scale, zp = _q_params(imp, q)
    if scale.size != 1 or zp.size != 1 or zp.dtype.name not in _ACT_DTYPES:
        return None   # falls back to float; the QuantizeLinear raises for what it cannot do
    return float(scale.reshape(())), _act_zero_point(q, out, zp, zp.dtype), zp.dtype.name


def _qdq_inputs(imp, node, x_name, w_name, b_name, ch_axis_of_w, n_out_axis):
    """Match ``DQ(8-bit activation)``, ``DQ(8-bit weight)``, ``DQ(int32 bias)`` and the sole
    ``Q`` after the anchor; None if it is not a QDQ anchor."""
    st = _state(imp)
    dx, dw = st.dq.get(x_name), st.dq.get(w_name)
    if dx is None or dw is None or dx.q is not None or dw.q is None:
        return None
    n_out = dw.q.shape[n_out_axis]
    try:    # an 8-bit weight quantized per tensor or per output channel, else not a QDQ anchor
        s_w, z_w = _weight_params(node, dw.q, dw.scale, dw.zp, dw.axis, ch_axis_of_w, n_out, w_name)
    except GraphError:
        return None
    s_x = float(dx.scale.reshape(()))
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
    out = _sole_quantize(imp, node)
    if out is None:
        return None
    _, x_dtype = imp.type(node, dx.src)
    z_x = _act_zero_point(node, dx.src, dx.zp, x_dtype)
    return dx, dw, s_x, z_x, s_w, z_w, bias, out


def _fuse(imp, node, y):
    _state(imp).fused[node.outputs[0]] = y
    return y


def _qdq_conv(imp, node):
    """Conv: integer conv2d + requantize when it is a QDQ anchor, else the float converter."""
    m = _qdq_inputs(imp, node, node.input(0), node.input(1), node.input(2), 0, 0)
    if m is None:
        return _FLOAT_CONV(imp, node)
    dx, dw, s_x, z_x, s_w, z_w, bias, (s_out, z_out, _) = m
    xs, _ = imp.type(node, dx.src)
    attrs = conv_attrs(node, xs, dw.q.shape)
    y = _anchor(imp, node, "conv2d", dx.src, z_x, dw.q, z_w, bias, attrs, s_x * s_w / s_out, z_out, "",
                "_requantize", w_name=dw.src)
    return _fuse(imp, node, y)


def _qdq_gemm(imp, node):
    """Gemm (alpha = beta = 1, transA = 0): integer dense + requantize as a QDQ anchor, else float."""
    if float(node.get("alpha", 1.0)) != 1.0 or float(node.get("beta", 1.0)) != 1.0 or int(node.get("transA", 0)):
        return _FLOAT_GEMM(imp, node)
    tb = int(node.get("transB", 0))
    m = _qdq_inputs(imp, node, node.input(0), node.input(1), node.input(2), 0 if tb else 1, 0 if tb else 1)
    if m is None or len(imp.type(node, m[0].src)[0]) != 2:
        return _FLOAT_GEMM(imp, node)
    dx, dw, s_x, z_x, s_w, z_w, bias, (s_out, z_out, _) = m
    w = np.ascontiguousarray(dw.q if tb else dw.q.T)
    return _fuse(imp, node, _anchor(imp, node, "dense", dx.src, z_x, w, z_w, bias, {}, s_x * s_w / s_out, z_out,
                                    "", "_requantize"))


def _qdq_matmul(imp, node):
    """MatMul of a 2-D 8-bit activation by a constant 8-bit [K, N]: integer dense + requantize,
    else float."""
    m = _qdq_inputs(imp, node, node.input(0), node.input(1), "", 1, 1)
    if m is None or len(imp.type(node, m[0].src)[0]) != 2 or m[1].q.ndim != 2:
        return _FLOAT_MATMUL(imp, node)
    dx, dw, s_x, z_x, s_w, z_w, _, (s_out, z_out, _) = m
    w = np.ascontiguousarray(dw.q.T)
    return _fuse(imp, node, _anchor(imp, node, "dense", dx.src, z_x, w, z_w, None, {}, s_x * s_w / s_out, z_out,
                                    "", "_requantize"))


CONVERTERS.converter("Conv")(_qdq_conv)
CONVERTERS.converter("Gemm")(_qdq_gemm)
CONVERTERS.converter("MatMul")(_qdq_matmul)


# ====================================================================== ops that move 8-bit values
_PASS_THROUGH = ("MaxPool", "GlobalMaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity",
                 "Dropout", "Concat")


def _pass_through(base):
    """``base`` (an op that only moves, selects or takes maxima of values), also run on the int8
    twins when every graph input is a uint8 tensor with one: the result's twin (order and
    differences are kept by the shift), so QLinear consumers need no conversion."""
    def convert(imp, node):
        out = base(imp, node)
        st = _state(imp)
        ins = [i for i in node.inputs if i and not imp.is_const(node, i)]
        if not ins or any(i not in st.twin or imp.type(node, i)[1] != "uint8" for i in ins):
            return out
        saved, name = {i: imp.env[i] for i in ins}, node.name
        try:
            imp.env.update({i: st.twin[i] for i in ins})
            node.name = f"{name}.int8"
            twin = base(imp, node)
        except MiniTVMError:
            return out
        finally:
            imp.env.update(saved)
            node.name = name
        twin = twin[0] if isinstance(twin, (list, tuple)) else twin
        if isinstance(twin, str) and imp.g.node(twin).type.dtype == "int8":
            st.twin[node.outputs[0]] = twin
        return out
    convert.__doc__ = base.__doc__
    return convert


for _name in _PASS_THROUGH:
    CONVERTERS.converter(_name)(_pass_through(float_ops.CONVERTERS.converters[_name]))


# ====================================================================== QOperator
def _q_input(imp, node, idx, s_idx, zp_idx, what):
    """An 8-bit activation input of a QLinear op: (ONNX name, scale, twin zero point)."""
    name = node.input(idx)
    scale = _scale(imp, node, s_idx, f"{what}_scale")
    _, dtype = imp.type(node, name)
    zp = _zero_point(imp, node, zp_idx, f"{what}_zero_point", dtype)
    return name, _per_tensor(node, scale, name), _act_zero_point(node, name, zp, dtype)


def _q_output(imp, node, s_idx, zp_idx):
    """(scale, twin zero point, dtype) of a QLinear op's output (uint8 when it has no zero point)."""
    out = node.outputs[0]
    scale = _scale(imp, node, s_idx, "y_scale")
    zp = _zero_point(imp, node, zp_idx, "y_zero_point")
    return _per_tensor(node, scale, out), _act_zero_point(node, out, zp, zp.dtype), zp.dtype.name


def _q_weight(imp, node, idx, s_idx, zp_idx, axis, ch_axis, n_out_of):
    """A constant 8-bit weight input: (array, scales [N], zero points [N])."""
    w = imp.const(node, node.input(idx), node.input(idx))
    s, z = _weight_params(node, w, _scale(imp, node, s_idx, "w_scale"),
                          _zero_point(imp, node, zp_idx, "w_zero_point", w.dtype), axis, ch_axis,
                          n_out_of(w), node.input(idx))
    return w, s, z


@CONVERTERS.converter("QLinearConv")
def _qlinear_conv(imp, node):
    """QLinearConv -> conv2d (int8 x int8 -> int32, int32 bias; the input zero point folded in)
    + requantize[_per_channel] (+ the output zero point)."""
    x, s_x, z_x = _q_input(imp, node, 0, 1, 2, "x")
    w, s_w, z_w = _q_weight(imp, node, 3, 4, 5, 0, 0, lambda w: w.shape[0])
    s_y, z_y, dtype = _q_output(imp, node, 6, 7)
    xs, _ = imp.type(node, x)
    attrs = conv_attrs(node, xs, w.shape)
    bias = _int_bias(node, imp.const(node, node.input(8), "B"), node.input(8)) if node.input(8) else None
    y8 = _anchor(imp, node, "conv2d", x, z_x, w, z_w, bias, attrs, s_x * s_w / s_y, z_y, ".conv",
                 _out_suffix(dtype), w_name=node.input(3))
    return _emit(imp, node, y8, dtype)


@CONVERTERS.converter("QLinearMatMul")
def _qlinear_matmul(imp, node):
    """QLinearMatMul of a 2-D 8-bit activation by a constant 8-bit [K, N] -> dense + requantize."""
    a, s_a, z_a = _q_input(imp, node, 0, 1, 2, "a")
    b = imp.const(node, node.input(3), "b")
    if len(imp.type(node, a)[0]) != 2 or b.ndim != 2:
        return _qlinear_matmul_nd(imp, node, a, s_a, z_a, b)
    b, s_b, z_b = _q_weight(imp, node, 3, 4, 5, 1, 1, lambda w: w.shape[1])
    s_y, z_y, dtype = _q_output(imp, node, 6, 7)
    y8 = _anchor(imp, node, "dense", a, z_a, np.ascontiguousarray(b.T), z_b, None, {}, s_a * s_b / s_y, z_y,
                 ".dense", _out_suffix(dtype))
    return _emit(imp, node, y8, dtype)


def _qlinear_matmul_nd(imp, node, a, s_a, z_a, b):
    """QLinearMatMul of stacks of matrices (batch dims broadcast) by a constant B quantized per
    tensor: ``matmul`` of the centred operands in int32, requantized once."""
    s_b = _per_tensor(node, _scale(imp, node, 4, "b_scale"), node.input(3))
    z_b = _zero_point(imp, node, 5, "b_zero_point", b.dtype)
    if z_b.size != 1:
        raise node.error(f"B of rank {b.ndim}: per-axis zero points are not supported ({z_b.size})")
    s_y, z_y, dtype = _q_output(imp, node, 6, 7)
    x = imp.add(node, "cast", [_int8(imp, node, a)], {"dtype": "int32"}, suffix=".a_int32")
    if z_a:
        x = imp.add(node, "sub", [x, _i32(imp, f"{node.name}.a_zero_point", z_a)], suffix=".a_centered")
    w = _i32(imp, f"{node.name}.b_centered", b.astype(np.int64) - int(z_b.reshape(())))
    acc = imp.add(node, "matmul", [x, w], suffix=".matmul")
    return _emit(imp, node, _requantize_zp(imp, node, acc, [s_a * s_b / s_y], z_y, _out_suffix(dtype)), dtype)


@CONVERTERS.converter("QGemm")
def _qgemm(imp, node):
    """com.microsoft QGemm (alpha folded into the rescale, transA = 0) -> dense + requantize (or a
    float32 output ``cast(acc) * s_a * s_b * alpha`` when it has no y_scale)."""
    if int(node.get("transA", 0)):
        raise node.error("= 1 is not supported", "transA")
    alpha = float(node.get("alpha", 1.0))
    a, s_a, z_a = _q_input(imp, node, 0, 1, 2, "a")
    tb = int(node.get("transB", 0))
    b, s_b, z_b = _q_weight(imp, node, 3, 4, 5, 0 if tb else 1, 0 if tb else 1,
                            lambda w: w.shape[0] if tb else w.shape[1])
    w = np.ascontiguousarray(b if tb else b.T)
    bias = _int_bias(node, imp.const(node, node.input(6), "C"), node.input(6)) if node.input(6) else None
    if node.input(7):
        s_y, z_y, dtype = _q_output(imp, node, 7, 8)
        y8 = _anchor(imp, node, "dense", a, z_a, w, z_b, bias, {}, alpha * s_a * s_b / s_y, z_y, ".dense",
                     _out_suffix(dtype))
        return _emit(imp, node, y8, dtype)
    # float output: the accumulator (zero points folded in as above) times the scales
    acc = _anchor_acc(imp, node, "dense", a, z_a, w, z_b, bias, {}, ".dense")
    f = imp.add(node, "cast", [acc], {"dtype": "float32"}, suffix=".cast")
    k = imp.new_const(f"{node.name}.scale", (alpha * s_a * s_b).astype(np.float32))
    return imp.add(node, "mul", [f, k])


@CONVERTERS.converter("QLinearAdd")
def _qlinear_add(imp, node):
    """com.microsoft QLinearAdd. With every zero point 0: ``qadd`` with
    ``qadd_params(s_a / s_c, s_b / s_c)``. Otherwise, with ``f = s / s_c`` per operand and
    ``E = 2**e``: ``requantize(sum_i requantize(x_i, f_i * E) + K, 1 / E)`` where the int32
    constant ``K = rint((z_c - sum_i f_i * z_i) * E)`` (a constant operand is folded into ``K``)."""
    ops = [_q_input(imp, node, 0, 1, 2, "A"), _q_input(imp, node, 3, 4, 5, "B")]
    s_c, z_c, dtype = _q_output(imp, node, 6, 7)
    shape = tuple(np.broadcast_shapes(imp.type(node, ops[0][0])[0], imp.type(node, ops[1][0])[0]))
    graph_ops = [o for o in ops if not imp.is_const(node, o[0])]
    if not graph_ops:
        raise node.error("both operands are constants")
    suffix = _out_suffix(dtype)
    if z_c == 0 and all(z == 0 for _, _, z in ops):
        ins = []
        for name, _, _ in ops:   # the compiler's qadd takes equal shapes: expand a constant operand
            x = _int8(imp, node, name)
            if imp.is_const(node, name) and imp.type(node, name)[0] != shape:
                x = imp.new_const(f"{name}_expanded", np.broadcast_to(imp.g.node(x).value, shape))
            ins.append(x)
        y8 = imp.add(node, "qadd", ins, qadd_params(ops[0][1] / s_c, ops[1][1] / s_c), suffix=suffix)
        return _emit(imp, node, y8, dtype)
    f = [s / s_c for _, s, _ in ops]
    e = min(_ADD_BITS, int(np.floor(np.log2(2.0 ** 30 / (256.0 * (f[0] + f[1]) + 512.0)))))
    if e < 0:
        raise node.error(f"scale ratios {f[0]:g}, {f[1]:g} (input / output scale) are too large")
    big = 2.0 ** e
    k = np.full((1,), float(z_c) * big)
    terms = []
    for (name, _, z), fi, tag in zip(ops, f, ("a", "b")):
        if imp.is_const(node, name):
            q = imp.g.node(_int8(imp, node, name)).value
            k = k + fi * (q.astype(np.float64) - z) * big
            continue
        x = imp.add(node, "cast", [_int8(imp, node, name)], {"dtype": "int32"}, suffix=f".{tag}_int32")
        terms.append(_requantize(imp, node, x, [fi * big], f".{tag}_rescale", out_dtype="int32"))
        k = k - fi * z * big
    acc = terms[0] if len(terms) == 1 else imp.add(node, "add", terms, suffix=".sum")
    acc = imp.add(node, "add", [acc, _i32(imp, f"{node.name}.offset_value", np.rint(k))], suffix=".offset")
    y8 = _requantize(imp, node, acc, [1.0 / big], suffix)
    return _emit(imp, node, y8, dtype)


CONVERTERS.ms_domain.update({"QGemm", "QLinearAdd"})


@CONVERTERS.converter("QLinearConcat")
def _qlinear_concat(imp, node):
    """com.microsoft QLinearConcat (Y_scale, Y_zp, then X, X_scale, X_zp per input). With every
    zero point 0: ``qconcatenate`` with ``multiplier_shift(s_i / s_y)`` per input; otherwise each
    input that differs from the output's quantization is rescaled exactly (``cast``, ``sub``,
    ``requantize``, add the zero point, saturate), then ``concatenate``."""
    s_y, z_y, dtype = _q_output(imp, node, 0, 1)
    n = (len(node.inputs) - 2) // 3
    if n < 1 or len(node.inputs) != 2 + 3 * n:
        raise node.error(f"expects Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples, got "
                         f"{len(node.inputs)} inputs")
    ins = [_q_input(imp, node, 2 + 3 * i, 3 + 3 * i, 4 + 3 * i, f"X{i}") for i in range(n)]
    axis = int(node.get("axis"))
    suffix = _out_suffix(dtype)
    if z_y == 0 and all(z == 0 for _, _, z in ins):
        ms = [multiplier_shift(s / s_y) for _, s, _ in ins]
        y8 = imp.add(node, "qconcatenate", [_int8(imp, node, x) for x, _, _ in ins],
                     {"multipliers": [m for m, _ in ms], "shifts": [s for _, s in ms], "axis": axis}, suffix=suffix)
        return _emit(imp, node, y8, dtype)
    parts = []
    for i, (name, s, z) in enumerate(ins):
        x = _int8(imp, node, name)
        if s == s_y and z == z_y:
            parts.append(x)
        elif imp.is_const(node, name):
            parts.append(imp.new_const(f"{name}_rescaled", _rescale_np(imp.g.node(x).value, z, s / s_y, z_y)))
        else:
            x = imp.add(node, "cast", [x], {"dtype": "int32"}, suffix=f".in{i}_int32")
            if z:
                x = imp.add(node, "sub", [x, _i32(imp, f"{node.name}.in{i}_zero_point", z)], suffix=f".in{i}_centered")
            parts.append(_requantize_zp(imp, node, x, [s / s_y], z_y, f".in{i}_rescaled"))
    y8 = imp.add(node, "concatenate", parts, {"axis": axis}, suffix=suffix)
    return _emit(imp, node, y8, dtype)


@CONVERTERS.converter("QLinearMul")
def _qlinear_mul(imp, node):
    """com.microsoft QLinearMul: ``saturate(round((a - z_a) * (b - z_b) * s_a * s_b / s_c) + z_c)``
    in int32 (the product of two centred 8-bit values fits in 17 bits) with one rounding, by the
    ``requantize`` of the product; a constant operand is centred at import."""
    ops = [_q_input(imp, node, 0, 1, 2, "A"), _q_input(imp, node, 3, 4, 5, "B")]
    s_c, z_c, dtype = _q_output(imp, node, 6, 7)
    if all(imp.is_const(node, name) for name, _, _ in ops):
        raise node.error("both operands are constants")
    factor = ops[0][1] * ops[1][1] / s_c
    if not factor < 2.0 ** 30:
        raise node.error(f"scale ratio {factor:g} (s_a * s_b / s_c) is too large")
    centred = []
    for (name, _, z), tag in zip(ops, ("a", "b")):
        x = _int8(imp, node, name)
        if imp.is_const(node, name):
            centred.append(_i32(imp, f"{node.name}.{tag}_centered", imp.g.node(x).value.astype(np.int64) - z))
            continue
        x = imp.add(node, "cast", [x], {"dtype": "int32"}, suffix=f".{tag}_int32")
        if z:
            x = imp.add(node, "sub", [x, _i32(imp, f"{node.name}.{tag}_zero_point", z)], suffix=f".{tag}_centered")
        centred.append(x)
    product = imp.add(node, "mul", centred, suffix=".product")
    return _emit(imp, node, _requantize_zp(imp, node, product, [factor], z_c, _out_suffix(dtype)), dtype)


def _through_float(imp, node, compute):
    """A com.microsoft QLinear op of one 8-bit input (X, X_scale, X_zero_point, Y_scale,
    Y_zero_point) computed in float: dequantize (exact), ``compute(float node)``, quantize (as
    ONNX QuantizeLinear)."""
    x, s_x, z_x = _q_input(imp, node, 0, 1, 2, "X")
    s_y, z_y, dtype = _q_output(imp, node, 3, 4)
    f = _dequantize(imp, node, _int8(imp, node, x), z_x, s_x, suffix=".dequantize")
    return _emit(imp, node, _quantize(imp, node, compute(f), s_y, z_y, _out_suffix(dtype)), dtype)


def _nchw_only(node):
    if int(node.get("channels_last", 0)):
        raise node.error("= 1 is not supported", "channels_last")


@CONVERTERS.converter("QLinearGlobalAveragePool")
def _qlinear_gap(imp, node):
    """com.microsoft QLinearGlobalAveragePool (NCHW) -> dequantize, float global_avg_pool2d, quantize."""
    _nchw_only(node)
    return _through_float(imp, node, lambda f: imp.add(node, "global_avg_pool2d", [f], suffix=".pool"))


@CONVERTERS.converter("QLinearAveragePool")
def _qlinear_avg_pool(imp, node):
    """com.microsoft QLinearAveragePool (NCHW; AveragePool's attributes) -> dequantize, float
    avg_pool2d, quantize."""
    _nchw_only(node)
    return _through_float(imp, node, lambda f: float_ops.pool(imp, node, "avg_pool2d", f, suffix=".pool"))


@CONVERTERS.converter("QLinearSigmoid")
def _qlinear_sigmoid(imp, node):
    """com.microsoft QLinearSigmoid -> dequantize, float sigmoid, quantize."""
    return _through_float(imp, node, lambda f: imp.add(node, "sigmoid", [f], suffix=".sigmoid"))


@CONVERTERS.converter("QLinearLeakyRelu")
def _qlinear_leaky_relu(imp, node):
    """com.microsoft QLinearLeakyRelu (``alpha``, default 0.01) -> dequantize, float leaky relu,
    quantize."""
    alpha = float(node.get("alpha", 0.01))
    return _through_float(imp, node, lambda f: float_ops.leaky_relu(imp, node, f, alpha, ".leaky_relu"))


@CONVERTERS.converter("QLinearSoftmax")
def _qlinear_softmax(imp, node):
    """com.microsoft QLinearSoftmax (``axis``; ``opset``: the Softmax semantics it stands for)
    -> dequantize, float softmax, quantize."""
    opset = node.get("opset")
    if opset is None:
        raise node.error("is required", "opset")
    return _through_float(imp, node, lambda f: float_ops.softmax(imp, node, f, int(opset), ".softmax"))


CONVERTERS.ms_domain.update({"QLinearConcat", "QLinearGlobalAveragePool", "QLinearMul", "QLinearAveragePool",
                             "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax"})
# onnxruntime's tools write com.microsoft QuantizeLinear / DequantizeLinear (same inputs and
# meaning as the standard ops, more dtypes) for 16-bit types or with UseQDQContribOps
CONVERTERS.ms_domain.update({"QuantizeLinear", "DequantizeLinear"})
