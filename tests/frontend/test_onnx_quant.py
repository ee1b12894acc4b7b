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
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]), (2, 3, 8, 8)


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
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]), (4, 16)


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, shape, n=4, seed=7):
        rng = np.random.default_rng(seed)
        self.data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


def _quantize(tmp_path, model_fn, fmt, per_channel, symmetric=True, reduce_range=False):
    model, shape = model_fn()
    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    onnx.save(model, src)
    kw = {}
    if symmetric == "uint8":
        kw = dict(activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8)
    elif symmetric:
        kw = dict(activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8,
                  extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    quantization.quantize_static(str(src), str(dst), _Reader(shape), per_channel=per_channel,
                                 reduce_range=reduce_range, quant_format=getattr(quantization.QuantFormat, fmt),
                                 **kw)
    return onnx.load(dst), shape


def _ort(model, x, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


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


def test_uint8_activations_raise_naming_node_tensor_and_zero_point(tmp_path):
    model, _ = _quantize(tmp_path, _cnn, "QDQ", False, symmetric="uint8")
    with pytest.raises(GraphError, match=r"ONNX node 'x_QuantizeLinear' \(QuantizeLinear\): tensor 'x' is "
                                         r"quantized as uint8 with zero point \d+.*symmetric int8"):
        from_onnx(model)


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_asymmetric_int8_activations_raise(tmp_path, fmt):
    model, _ = _quantize(tmp_path, _mlp, fmt, False, symmetric=False)   # ORT's defaults: asymmetric
    with pytest.raises(GraphError, match=r"tensor 'x' is quantized as u?int8 with zero point -?[1-9]\d*"):
        from_onnx(model)


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
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    graph, _ = from_onnx(model)
    x = np.ones((2, 2), np.float32)
    want = _ort(model, x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    np.testing.assert_array_equal(run_reference(graph, {"x": x})[0], want)
