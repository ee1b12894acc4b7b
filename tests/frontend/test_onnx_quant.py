"""Importing onnxruntime-quantized ONNX models (QDQ and QOperator) onto minitvm's int8 ops."""
import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from minitvm.errors import GraphError  # noqa: E402
from minitvm.frontend.onnx import from_onnx  # noqa: E402
from minitvm.graph.build import build  # noqa: E402
from minitvm.graph.reference import run_reference  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)   # quantize_static's "consider pre-processing" warnings


def _init(rng, name, shape, s):
    return nh.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)


def _cnn():
    """conv-relu-(conv | conv 1x1)-add-relu-maxpool-concat-globalpool-flatten-gemm."""
    rng = np.random.default_rng(0)
    inits = [_init(rng, "w1", (8, 3, 3, 3), 0.3), _init(rng, "b1", (8,), 0.1), _init(rng, "w2", (8, 8, 3, 3), 0.2),
             _init(rng, "b2", (8,), 0.1), _init(rng, "w3", (8, 8, 1, 1), 0.3), _init(rng, "w4", (4, 8, 2, 2), 0.3),
             _init(rng, "fw", (10, 12), 0.3), _init(rng, "fb", (10,), 0.1)]
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             oh.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             oh.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             oh.make_node("Conv", ["r1", "w3"], ["c3"], name="conv3"),
             oh.make_node("Add", ["c2", "c3"], ["a"], name="add"),
             oh.make_node("Relu", ["a"], ["r2"], name="relu2"),
             oh.make_node("MaxPool", ["r2"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             oh.make_node("Conv", ["r2", "w4"], ["c4"], strides=[2, 2], name="conv4"),
             oh.make_node("Concat", ["mp", "c4"], ["cat"], axis=1, name="cat"),
             oh.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
             oh.make_node("Flatten", ["gap"], ["fl"], name="flat"),
             oh.make_node("Gemm", ["fl", "fw", "fb"], ["y"], transB=1, name="fc")]
    g = oh.make_graph(nodes, "cnn", [oh.make_tensor_value_info("x", TP.FLOAT, [2, 3, 8, 8])],
                      [oh.make_tensor_value_info("y", TP.FLOAT, [2, 10])], inits)
    return oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17)]), (2, 3, 8, 8)


def _mlp():
    """matmul-add(bias)-relu-matmul."""
    rng = np.random.default_rng(1)
    inits = [_init(rng, "w1", (16, 12), 0.3), _init(rng, "b1", (12,), 0.1), _init(rng, "w2", (12, 5), 0.3)]
    nodes = [oh.make_node("MatMul", ["x", "w1"], ["m1"], name="mm1"),
             oh.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
             oh.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             oh.make_node("MatMul", ["r1", "w2"], ["y"], name="mm2")]
    g = oh.make_graph(nodes, "mlp", [oh.make_tensor_value_info("x", TP.FLOAT, [4, 16])],
                      [oh.make_tensor_value_info("y", TP.FLOAT, [4, 5])], inits)
    return oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17)]), (4, 16)


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, shape, n=4, seed=7):
        rng = np.random.default_rng(seed)
        self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


#: quantize_static keyword arguments per activation / weight scheme
MODES = {
    "symmetric": lambda q: dict(activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}),
    "default": lambda q: {},    # quantize_static's defaults: asymmetric activations (int8 or uint8 by version)
    "uint8": lambda q: dict(activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8),
    "uint8_weights": lambda q: dict(activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QUInt8),
    "int8_asym_weights": lambda q: dict(activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
                                        extra_options={"WeightSymmetric": False}),
    "int16": lambda q: dict(activation_type=q.QuantType.QInt16, weight_type=q.QuantType.QInt8),
}


def _quantize(tmp_path, model_fn, fmt, per_channel, mode="symmetric", reduce_range=False, seed=7):
    model, shape = model_fn()
    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    onnx.save(model, src)
    quantization.quantize_static(str(src), str(dst), _Reader(shape, seed=seed), per_channel=per_channel,
                                 reduce_range=reduce_range, quant_format=getattr(quantization.QuantFormat, fmt),
                                 **MODES[mode](quantization))
    return onnx.load(dst), shape


def _session(model, level=None):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL if level is None else level
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ort(model, x, level):
    return _session(model, level).run(None, {"x": x})[0]


def _out_scale(model):
    """Scale of the final DequantizeLinear (the int8 step of the float output)."""
    node = [n for n in model.graph.node if n.output[0] == "y"][0]
    assert node.op_type == "DequantizeLinear"
    inits = {t.name: nh.to_array(t) for t in model.graph.initializer}
    return float(inits[node.input[1]])


def _lsb(a, b, scale):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() / scale)


MODELS = {"cnn": _cnn, "mlp": _mlp}


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_quantized_model_matches_onnxruntime(tmp_path, name, fmt, per_channel):
    model, shape = _quantize(tmp_path, MODELS[name], fmt, per_channel)
    graph, params = from_onnx(model)
    ops = {graph.node(n).op for n in graph.topo_order() if graph.node(n).kind == "op"}
    assert {"conv2d" if name == "cnn" else "dense", "quantize", "dequantize"} <= ops
    assert ops & {"requantize", "requantize_per_channel"}
    anchors = [graph.node(n) for n in graph.topo_order() if graph.node(n).op in ("conv2d", "dense")]
    assert anchors and all(a.attrs["out_dtype"] == "int32" for a in anchors)   # every anchor runs in int8
    scale = _out_scale(model)
    compiled = build(graph, "llvm")
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        # ORT_ENABLE_BASIC runs the QDQ graph as written (float ops between Q/DQ) and the QOperator
        # kernels as they are: the model's semantics
        want = _ort(model, x, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
        (ref,) = run_reference(graph, {"x": x})
        (got,) = compiled.run({"x": x})
        assert ref.dtype == np.float32 and ref.shape == want.shape
        assert _lsb(ref, want, scale) <= 1.0 + 1e-3
        assert _lsb(got, want, scale) <= 1.0 + 1e-3
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_matches_fully_optimized_onnxruntime_with_reduced_range_weights(tmp_path, fmt):
    """With ORT's graph optimizations on, QDQ groups run as fused int8 kernels; on x86 without VNNI
    those saturate int16 pair sums of full-range int8 weights, so compare with 7-bit weights."""
    model, shape = _quantize(tmp_path, _cnn, fmt, True, reduce_range=True)
    graph, _ = from_onnx(model)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    want = _ort(model, x, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    (ref,) = run_reference(graph, {"x": x})
    assert _lsb(ref, want, _out_scale(model)) <= 1.0 + 1e-3


def test_qdq_anchor_is_lowered_to_int8_conv_and_requantize(tmp_path):
    model, _ = _quantize(tmp_path, _cnn, "QDQ", True)
    graph, _ = from_onnx(model)
    conv1 = graph.node("conv1")
    assert conv1.op == "conv2d" and conv1.type.dtype == "int32"
    assert [graph.node(i).type.dtype for i in conv1.inputs] == ["int8", "int8", "int32"]
    (rq,) = graph.consumers("conv1")
    assert graph.node(rq).op == "requantize_per_channel" and graph.node(rq).type.dtype == "int8"


def test_constant_quantize_dequantize_fold():
    """Q/DQ of constants fold at import (any zero point, per axis)."""
    w = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    nodes = [oh.make_node("QuantizeLinear", ["w", "s", "zp"], ["wq"], axis=0),
             oh.make_node("DequantizeLinear", ["wq", "s", "zp"], ["wd"], axis=0),
             oh.make_node("Add", ["x", "wd"], ["y"])]
    inits = [nh.from_array(w, "w"), nh.from_array(np.array([0.1, 0.3], np.float32), "s"),
             nh.from_array(np.array([3, -2], np.int8), "zp")]
    g = oh.make_graph(nodes, "c", [oh.make_tensor_value_info("x", TP.FLOAT, [2, 2])],
                      [oh.make_tensor_value_info("y", TP.FLOAT, [2, 2])], inits)
    model = oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17)])
    graph, _ = from_onnx(model)
    x = np.ones((2, 2), np.float32)
    want = _ort(model, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    np.testing.assert_array_equal(run_reference(graph, {"x": x})[0], want)


# ---------------------------------------------------------------------- asymmetric / uint8 activations
def _zero_points(model):
    """{dtype name: zero points} of the model's activation (scalar) zero points."""
    inits = {t.name: nh.to_array(t) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        names = {"QuantizeLinear": [2], "DequantizeLinear": [2], "QLinearConv": [2, 7], "QLinearMatMul": [2, 7],
                 "QGemm": [2, 8], "QLinearAdd": [2, 5, 7]}.get(n.op_type, [])
        for i in names:
            if i < len(n.input) and n.input[i] in inits and inits[n.input[i]].size == 1:
                z = inits[n.input[i]]
                out.setdefault(z.dtype.name, set()).add(int(z))
    return out


def _inputs(shape, seed, n=3):
    """Fresh inputs, shifted and wider than the calibration data (some saturate)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * 1.5 + 0.3).astype(np.float32) for _ in range(n)]


def _three_ways(model, graph, shape, seed, n=3):
    """(onnxruntime, reference executor, compiled LLVM) outputs for each of ``n`` fresh inputs."""
    compiled = build(graph, "llvm")
    sess = _session(model)
    for x in _inputs(shape, seed, n):
        yield sess.run(None, {"x": x}), run_reference(graph, {"x": x}), compiled.run({"x": x})


def _check_against_ort(model, graph, shape, seed):
    scale = _out_scale(model)
    compiled = build(graph, "llvm")
    for x in _inputs(shape, seed):
        want = _ort(model, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        (ref,) = run_reference(graph, {"x": x})
        (got,) = compiled.run({"x": x})
        assert ref.dtype == np.float32 and ref.shape == want.shape
        assert _lsb(ref, want, scale) <= 1.0 + 1e-3
        np.testing.assert_array_equal(got, ref)


def _u8s8_exact(fmt, mode):
    """reduce_range (7-bit weights) where onnxruntime's own uint8 x int8 kernels would be inexact.

    On x86 CPUs without VNNI, onnxruntime's QLinearConv / QLinearMatMul multiply uint8 by int8 with
    vpmaddubsw, which saturates a pair of products at 32767 (onnxruntime documents reduce_range for
    these machines), so its answers then depend on the host CPU. 7-bit weights keep every pair exact."""
    return fmt == "QOperator" and mode == "uint8"


def _anchors(graph):
    return [graph.node(n) for n in graph.topo_order() if graph.node(n).op in ("conv2d", "dense")]


@pytest.mark.parametrize("mode", ["default", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_asymmetric_activations_match_onnxruntime(tmp_path, name, fmt, per_channel, mode):
    """quantize_static's default (asymmetric) and uint8 activations run on int8 anchors."""
    model, shape = _quantize(tmp_path, MODELS[name], fmt, per_channel, mode,
                             reduce_range=_u8s8_exact(fmt, mode), seed=21)
    zps = _zero_points(model)
    assert any(z != 0 for v in zps.values() for z in v)                       # really asymmetric
    if mode == "uint8":
        assert "uint8" in zps
    graph, _ = from_onnx(model)
    anchors = _anchors(graph)
    assert anchors and all(a.attrs["out_dtype"] == "int32" for a in anchors)
    assert all(graph.node(a.inputs[0]).type.dtype == "int8" and graph.node(a.inputs[1]).type.dtype == "int8"
               for a in anchors)                                               # int8 x int8, zero points folded
    _check_against_ort(model, graph, shape, seed=31)


@pytest.mark.parametrize("mode", ["uint8_weights", "int8_asym_weights"])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_asymmetric_weights_run_exactly_in_int32(tmp_path, fmt, mode):
    model, shape = _quantize(tmp_path, _cnn, fmt, False, mode, seed=22)
    graph, _ = from_onnx(model)
    anchors = _anchors(graph)
    assert anchors and all(a.attrs["out_dtype"] == "int32" for a in anchors)
    assert all(graph.node(a.inputs[1]).type.dtype == "int32" for a in anchors)
    _check_against_ort(model, graph, shape, seed=32)


def test_padded_conv_reads_input_padded_with_its_zero_point(tmp_path):
    model, _ = _quantize(tmp_path, _cnn, "QDQ", True, "uint8", seed=23)
    inits = {t.name: nh.to_array(t) for t in model.graph.initializer}
    qx = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x"][0]
    z = int(inits[qx.input[2]])
    assert inits[qx.input[2]].dtype == np.uint8 and z != 128
    graph, _ = from_onnx(model)
    conv1 = graph.node("conv1")
    assert conv1.attrs["padding"] == (0, 0, 0, 0)
    pad = graph.node(conv1.inputs[0])
    assert pad.op == "pad" and pad.type.dtype == "int8" and pad.attrs["value"] == z - 128
    assert pad.attrs["pad_width"] == ((0, 0), (0, 0), (1, 1), (1, 1))


def test_qoperator_uint8_intermediate_values_equal_onnxruntime(tmp_path):
    """Every integer tensor of a uint8 QOperator model (made graph outputs) within one step of onnxruntime's,
    with onnxruntime's dtype."""
    model, shape = _quantize(tmp_path, _cnn, "QOperator", True, "uint8", reduce_range=True, seed=24)
    outs = [o.name for o in model.graph.output]
    for n in model.graph.node:
        for o in n.output:
            if o not in outs:
                model.graph.output.append(onnx.ValueInfoProto(name=o))
                outs.append(o)
    graph, _ = from_onnx(model)
    sess = _session(model)
    compiled = build(graph, "llvm")
    n_int = 0
    for x in _inputs(shape, 34, n=2):
        want = sess.run(outs, {"x": x})
        ref = run_reference(graph, {"x": x})
        got = compiled.run({"x": x})
        for name, w, r, g in zip(outs, want, ref, got):
            assert r.dtype == w.dtype and r.shape == w.shape, name
            np.testing.assert_array_equal(g, r)
            if w.dtype.kind in "iu":
                n_int += 1
                assert np.abs(r.astype(np.int64) - w.astype(np.int64)).max() <= 1, name
    assert n_int >= 2 * 8


def _uint8_qoperator_model():
    """Hand-made QOperator model on uint8 tensors: QuantizeLinear -> QLinearConv (padded) -> MaxPool
    -> Flatten/Reshape round trip -> QLinearConv 1x1 -> QLinearAdd with a constant; uint8 outputs.
    Weights are 7-bit, so onnxruntime's uint8 x int8 kernels are exact on every CPU (see _u8s8_exact)."""
    rng = np.random.default_rng(40)
    f32, u8, i8 = np.float32, np.uint8, np.int8

    def c(name, v, dt):
        return nh.from_array(np.asarray(v, dt), name)

    inits = [c("xs", 0.03, f32), c("xz", 100, u8), c("w1", rng.integers(-64, 64, (4, 3, 3, 3)), i8),
             c("w1s", [0.01, 0.02, 0.015, 0.012], f32), c("w1z", [0, 0, 0, 0], i8),
             c("y1s", 0.05, f32), c("y1z", 7, u8), c("b1", rng.integers(-500, 500, (4,)), np.int32),
             c("w2", rng.integers(-64, 64, (4, 4, 1, 1)), i8), c("w2s", 0.02, f32), c("w2z", 0, i8),
             c("y2s", 0.04, f32), c("y2z", 200, u8), c("k", rng.integers(0, 256, (4, 1, 1)), u8),
             c("ks", 0.03, f32), c("kz", 30, u8), c("ys", 0.06, f32), c("yz", 90, u8),
             c("flat_shape", [1, 36], np.int64), c("back_shape", [1, 4, 3, 3], np.int64)]
    nodes = [oh.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             oh.make_node("QLinearConv", ["xq", "xs", "xz", "w1", "w1s", "w1z", "y1s", "y1z", "b1"], ["y1"],
                          pads=[1, 1, 1, 1], name="qconv1"),
             oh.make_node("MaxPool", ["y1"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             oh.make_node("Reshape", ["mp", "flat_shape"], ["flat"], name="flatten"),
             oh.make_node("Reshape", ["flat", "back_shape"], ["back"], name="unflatten"),
             oh.make_node("QLinearConv", ["back", "y1s", "y1z", "w2", "w2s", "w2z", "y2s", "y2z"], ["y2"],
                          name="qconv2"),
             oh.make_node("QLinearAdd", ["y2", "y2s", "y2z", "k", "ks", "kz", "ys", "yz"], ["y"],
                          domain="com.microsoft", name="qadd")]
    g = oh.make_graph(nodes, "u8", [oh.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 6])],
                      [oh.make_tensor_value_info("y", TP.UINT8, [1, 4, 3, 3]),
                       oh.make_tensor_value_info("mp", TP.UINT8, [1, 4, 3, 3])], inits)
    return oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("com.microsoft", 1)])


def test_uint8_qoperator_graph_keeps_int8_inside_and_uint8_outputs():
    model = _uint8_qoperator_model()
    graph, _ = from_onnx(model)
    assert [graph.node(o).type.dtype for o in graph.outputs] == ["uint8", "uint8"]
    assert graph.outputs[0] == "y"
    # the integer ops read int8 twins made where the values are made: no uint8 -> int8 conversion
    assert not [n for n in graph.topo_order() if n.endswith(".minus128")]
    for a in _anchors(graph):
        assert graph.node(a.inputs[0]).type.dtype == "int8"
    pools = [graph.node(n) for n in graph.topo_order() if graph.node(n).op == "max_pool2d"]
    assert "int8" in [graph.node(p.inputs[0]).type.dtype for p in pools]   # max pool on the twin
    for want, ref, got in _three_ways(model, graph, (1, 3, 6, 6), 41):
        for w, r, g in zip(want, ref, got):
            assert r.dtype == np.uint8
            np.testing.assert_array_equal(g, r)
            assert np.abs(r.astype(np.int64) - w.astype(np.int64)).max() <= 1


def _elementwise_qoperator_model(dtype):
    """QuantizeLinear -> QLinearSigmoid -> QLinearMul (by the quantized input: graph x graph) ->
    QLinearMul by a per-channel constant (broadcast) -> QLinearLeakyRelu -> QLinearAveragePool
    (3x3, stride 2, padded, pads not counted), all com.microsoft, 8-bit ``dtype`` outputs."""
    rng = np.random.default_rng(50)
    f32, q = np.float32, (np.uint8 if dtype == "uint8" else np.int8)
    z = (lambda v: v + 128) if dtype == "uint8" else (lambda v: v)

    def c(name, v, dt):
        return nh.from_array(np.asarray(v, dt), name)

    inits = [c("xs", 0.04, f32), c("xz", z(-9), q), c("ss", 1 / 255, f32), c("sz", z(-128), q),
             c("ms", 0.02, f32), c("mz", z(5), q), c("k", rng.integers(-120, 120, (1, 4, 1, 1)) + z(0), q),
             c("ks", 0.03, f32), c("kz", z(3), q), c("m2s", 0.015, f32), c("m2z", z(-4), q),
             c("ls", 0.012, f32), c("lz", z(20), q), c("ps", 0.01, f32), c("pz", z(-2), q)]
    ms = dict(domain="com.microsoft")
    nodes = [oh.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             oh.make_node("QLinearSigmoid", ["xq", "xs", "xz", "ss", "sz"], ["sig"], name="qsigmoid", **ms),
             oh.make_node("QLinearMul", ["sig", "ss", "sz", "xq", "xs", "xz", "ms", "mz"], ["m1"], name="qmul", **ms),
             oh.make_node("QLinearMul", ["m1", "ms", "mz", "k", "ks", "kz", "m2s", "m2z"], ["m2"], name="qmul_k", **ms),
             oh.make_node("QLinearLeakyRelu", ["m2", "m2s", "m2z", "ls", "lz"], ["lr"], alpha=0.1, name="qleaky",
                          **ms),
             oh.make_node("QLinearAveragePool", ["lr", "ls", "lz", "ps", "pz"], ["y"], kernel_shape=[3, 3],
                          strides=[2, 2], pads=[1, 1, 1, 1], name="qavgpool", **ms),
             oh.make_node("QLinearMul", ["xq", "xs", "xz", "k", "ks", "kz", "m2s", "m2z"], ["xk"], name="qmul_x",
                          **ms)]
    elem = TP.UINT8 if dtype == "uint8" else TP.INT8
    g = oh.make_graph(nodes, "elementwise", [oh.make_tensor_value_info("x", TP.FLOAT, [2, 4, 7, 7])],
                      [oh.make_tensor_value_info("y", elem, [2, 4, 4, 4]),
                       oh.make_tensor_value_info("m2", elem, [2, 4, 7, 7]),
                       oh.make_tensor_value_info("xk", elem, [2, 4, 7, 7])], inits)
    return oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_qlinear_mul_sigmoid_leaky_relu_avg_pool_match_onnxruntime(dtype):
    """Within one step of onnxruntime. The integer QLinearMul of a quantized input (``xk``) is
    exact between the compiled graph and the reference; the float steps in between (sigmoid,
    average) may round one step apart at near-ties (float32 in the kernel, float64 in numpy)."""
    model = _elementwise_qoperator_model(dtype)
    graph, _ = from_onnx(model)
    ops = {graph.node(n).op for n in graph.topo_order() if graph.node(n).is_op}
    assert {"mul", "requantize", "sigmoid", "avg_pool2d"} <= ops
    for want, ref, got in _three_ways(model, graph, (2, 4, 7, 7), 51):
        np.testing.assert_array_equal(got[2], ref[2])
        for w, r, g in zip(want, ref, got):
            assert r.dtype == g.dtype == np.dtype(dtype)
            for a, b in ((g, r), (r, w)):
                d = np.abs(a.astype(np.int64) - b.astype(np.int64))
                assert d.max() <= 1 and np.mean(d == 0) > 0.95


@pytest.mark.parametrize("opset,axis,shape", [(13, -1, (3, 10)), (13, 1, (2, 5, 3)), (11, 1, (2, 3, 4))])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_qlinear_softmax_matches_onnxruntime(opset, axis, shape, dtype):
    q, z0 = (np.uint8, 128) if dtype == "uint8" else (np.int8, 0)
    inits = [nh.from_array(np.asarray(0.05, np.float32), "xs"), nh.from_array(np.asarray(z0 + 7, q), "xz"),
             nh.from_array(np.asarray(1 / 256, np.float32), "ys"), nh.from_array(np.asarray(z0 - 128, q), "yz")]
    nodes = [oh.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             oh.make_node("QLinearSoftmax", ["xq", "xs", "xz", "ys", "yz"], ["y"], axis=axis, opset=opset,
                          domain="com.microsoft", name="qsoftmax")]
    elem = TP.UINT8 if dtype == "uint8" else TP.INT8
    g = oh.make_graph(nodes, "sm", [oh.make_tensor_value_info("x", TP.FLOAT, list(shape))],
                      [oh.make_tensor_value_info("y", elem, list(shape))], inits)
    model = oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("com.microsoft", 1)])
    graph, _ = from_onnx(model)
    for want, ref, got in _three_ways(model, graph, shape, 53):
        assert ref[0].dtype == np.dtype(dtype) and len(np.unique(ref[0])) > 10
        for a, b in ((got[0], ref[0]), (ref[0], want[0])):
            assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= 1


def test_float_leaky_relu_is_exact():
    x = np.random.default_rng(52).standard_normal((2, 3, 4, 5)).astype(np.float32)
    g = oh.make_graph([oh.make_node("LeakyRelu", ["x"], ["y"], alpha=0.07, name="lrelu")], "lrelu",
                      [oh.make_tensor_value_info("x", TP.FLOAT, list(x.shape))],
                      [oh.make_tensor_value_info("y", TP.FLOAT, list(x.shape))])
    graph, _ = from_onnx(oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17)]))
    want = np.where(x >= 0, x, np.float32(0.07) * x)
    np.testing.assert_array_equal(build(graph, "llvm").run({"x": x})[0], want)
    np.testing.assert_array_equal(run_reference(graph, {"x": x})[0], want)


def test_packed_int8_layout_keeps_asymmetric_results(tmp_path):
    from minitvm.graph.passes.alter_layout import alter_layout
    model, shape = _quantize(tmp_path, _cnn, "QDQ", True, "uint8", seed=25)
    graph, _ = from_onnx(model)
    packed = alter_layout(graph)
    assert any(packed.node(n).type.layout == "NCHW4c" for n in packed.topo_order())
    # zero-point adds and zero-point padding stay packed: transforms only at the int8 region's edges
    # (into the first conv's padding, out of the max pool and the last conv into the float concat)
    transforms = [n for n in packed.topo_order() if packed.node(n).is_op and packed.node(n).op == "layout_transform"]
    assert len(transforms) == 3, transforms
    x = _inputs(shape, 35, n=1)[0]
    np.testing.assert_array_equal(build(packed, "llvm").run({"x": x})[0], run_reference(graph, {"x": x})[0])


# ---------------------------------------------------------------------- what stays unsupported
def test_int16_activations_run_in_float_ops_within_one_step(tmp_path):
    """16-bit QDQ tensors have no int8 anchor: Quantize/DequantizeLinear run as float ops (exact), the
    anchors in float between them."""
    model, shape = _quantize(tmp_path, _mlp, "QDQ", False, "int16")
    graph, _ = from_onnx(model)
    assert not _anchors(graph) or all(a.attrs["out_dtype"] != "int32" for a in _anchors(graph))
    scale, compiled = _out_scale(model), build(graph, "llvm")
    for x in _inputs(shape, 41):
        want = _ort(model, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        assert _lsb(compiled.run({"x": x})[0], want, scale) <= 1.0 + 1e-3


def test_per_axis_and_blocked_quantization_of_a_graph_tensor_equal_onnxruntime():
    nodes = [oh.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], axis=1, name="qx"),
             oh.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], axis=1, name="dqx"),
             oh.make_node("QuantizeLinear", ["xd", "bs", "bz"], ["y"], axis=1, block_size=2, name="qb")]
    inits = [nh.from_array(np.array([0.1, 0.2, 0.05], np.float32), "s"), nh.from_array(np.array([3, 4, 250], np.uint8), "z"),
             nh.from_array(np.array([[0.1, 0.3], [0.2, 0.07]], np.float32), "bs"),
             nh.from_array(np.array([[1, -3], [0, 7]], np.int16), "bz")]
    g = oh.make_graph(nodes, "pa", [oh.make_tensor_value_info("x", TP.FLOAT, [2, 3])],
                      [oh.make_tensor_value_info("y", TP.INT16, [2, 3])], inits)
    model = oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 21)])
    graph, _ = from_onnx(model)
    compiled = build(graph, "llvm")
    for seed in range(3):
        x = (np.random.default_rng(seed).standard_normal((2, 3)) * 8).astype(np.float32)
        np.testing.assert_array_equal(compiled.run({"x": x})[0], _ort(model, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL))


def _one_ms_node(op, inputs, consts, attrs=None, in_shape=(1, 4, 4, 4)):
    """A model of QuantizeLinear (x -> xq, uint8) and one com.microsoft ``op`` node named 'n'."""
    inits = [nh.from_array(np.asarray(0.1, np.float32), "xs"), nh.from_array(np.asarray(128, np.uint8), "xz")]
    inits += [nh.from_array(np.asarray(v), k) for k, v in consts.items()]
    nodes = [oh.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
             oh.make_node(op, inputs, ["y"], name="n", domain="com.microsoft", **(attrs or {}))]
    g = oh.make_graph(nodes, "one", [oh.make_tensor_value_info("x", TP.FLOAT, list(in_shape))],
                      [oh.make_tensor_value_info("y", TP.UINT8, None)], inits)
    return oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("com.microsoft", 1)])


def test_unsupported_qlinear_variants_name_the_node():
    c = {"a": np.full((1, 4, 1, 1), 7, np.uint8), "s": np.float32(0.1), "z": np.uint8(128)}
    with pytest.raises(GraphError, match=r"ONNX node 'n' \(QLinearMul\): both operands are constants"):
        from_onnx(_one_ms_node("QLinearMul", ["a", "s", "z", "a", "s", "z", "s", "z"], c))
    with pytest.raises(GraphError, match=r"ONNX node 'n' \(QLinearMul\): scale ratio .* too large"):
        from_onnx(_one_ms_node("QLinearMul", ["xq", "xs", "xz", "a", "big", "z", "tiny", "z"],
                               dict(c, big=np.float32(1e6), tiny=np.float32(1e-6))))
    with pytest.raises(GraphError, match=r"ONNX node 'n' \(QLinearSoftmax\).*opset.*required"):
        from_onnx(_one_ms_node("QLinearSoftmax", ["xq", "xs", "xz", "xs", "xz"], {}))
    with pytest.raises(GraphError, match=r"ONNX node 'n' \(QLinearAveragePool\).*channels_last"):
        from_onnx(_one_ms_node("QLinearAveragePool", ["xq", "xs", "xz", "xs", "xz"], {},
                               {"kernel_shape": [2, 2], "channels_last": 1}))
