"""Pre-quantized CNN structures (onnxruntime's ``quantize_static``, QDQ and QOperator, per-channel
weights) within one int8 step of onnxruntime at the output (issue 16 item 5): ResNet basic blocks
and bottlenecks with residual adds, MobileNetV2 inverted residuals with depthwise convs and ReLU6.
The full torchvision models cannot run in CI (no torch there), so their structure is built here
with onnx.helper, folded batch norms included. onnxruntime is run as written (``ORT_DISABLE_ALL``)
and with its default optimizations (``ORT_ENABLE_ALL``: DQ -> Conv -> Q fused into QLinearConv
...); for the latter the weights are 7-bit (``reduce_range``), since onnxruntime's fused int8
kernels saturate pairs of products on x86 CPUs without VNNI (see ``_u8s8_exact`` in
``test_onnx_quant.py``)."""
import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as oh  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from minitvm.frontend.onnx import from_onnx  # noqa: E402
from minitvm.graph.build import build  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)
SHAPE = (1, 3, 16, 16)


class _Net:
    """Builds a float CNN with onnx.helper: convs with folded batch norms (bias), activations, adds."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, base):
        self.k += 1
        return f"{base}{self.k}"

    def conv(self, x, cin, cout, k=3, stride=1, groups=1, act="relu"):
        n = self.name("conv")
        w = self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / (cin // groups * k * k))
        self.inits += [nh.from_array(w.astype(np.float32), n + "_w"),
                       nh.from_array((self.rng.standard_normal(cout) * 0.1).astype(np.float32), n + "_b")]
        self.nodes.append(oh.make_node("Conv", [x, n + "_w", n + "_b"], [n], pads=[k // 2] * 4, strides=[stride] * 2,
                                       group=groups, name=n))
        if act == "relu":
            self.nodes.append(oh.make_node("Relu", [n], [n + "_relu"], name=n + "_relu"))
            return n + "_relu"
        if act == "relu6":
            self.nodes.append(oh.make_node("Clip", [n, "zero", "six"], [n + "_relu6"], name=n + "_relu6"))
            return n + "_relu6"
        return n

    def add(self, a, b, relu):
        n = self.name("add")
        self.nodes.append(oh.make_node("Add", [a, b], [n], name=n))
        if relu:
            self.nodes.append(oh.make_node("Relu", [n], [n + "_relu"], name=n + "_relu"))
            return n + "_relu"
        return n

    def model(self, x, c):
        self.nodes += [oh.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
                       oh.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
                       oh.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1, name="fc")]
        self.inits += [nh.from_array((self.rng.standard_normal((10, c)) * 0.2).astype(np.float32), "fc_w"),
                       nh.from_array(np.zeros(10, np.float32), "fc_b"),
                       nh.from_array(np.array(0.0, np.float32), "zero"), nh.from_array(np.array(6.0, np.float32), "six")]
        g = oh.make_graph(self.nodes, "net", [oh.make_tensor_value_info("x", TP.FLOAT, SHAPE)],
                          [oh.make_tensor_value_info("y", TP.FLOAT, [1, 10])], self.inits)
        return oh.make_model(g, ir_version=10, opset_imports=[oh.make_opsetid("", 17)])


def resnet_basic_blocks():
    """ResNet-18's structure: stem conv + max pool, a basic block, a strided one with a 1x1 downsample."""
    n = _Net(1)
    x = n.conv("x", 3, 8)
    n.nodes.append(oh.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4, name="mp"))
    x = "pool"
    for cin, cout, stride in ((8, 8, 1), (8, 16, 2)):
        y = n.conv(n.conv(x, cin, cout, stride=stride), cout, cout, act=None)
        shortcut = x if stride == 1 else n.conv(x, cin, cout, k=1, stride=stride, act=None)
        x = n.add(y, shortcut, relu=True)
    return n.model(x, 16)


def resnet_bottlenecks():
    """ResNet-50's bottleneck: 1x1 reduce, 3x3, 1x1 expand (no activation), residual add, relu."""
    n = _Net(2)
    x = n.conv("x", 3, 16)
    for stride in (1, 2):
        y = n.conv(n.conv(n.conv(x, 16, 4, k=1), 4, 4, stride=stride), 4, 16, k=1, act=None)
        x = n.add(y, x if stride == 1 else n.conv(x, 16, 16, k=1, stride=2, act=None), relu=True)
    return n.model(x, 16)


def inverted_residuals():
    """MobileNetV2's inverted residual: 1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 project (linear),
    the residual add without activation; then a strided block without residual."""
    n = _Net(3)
    x = n.conv("x", 3, 8, stride=1, act="relu6")
    for stride in (1, 2):
        y = n.conv(x, 8, 24, k=1, act="relu6")
        y = n.conv(y, 24, 24, stride=stride, groups=24, act="relu6")
        y = n.conv(y, 24, 8, k=1, act=None)
        x = n.add(y, x, relu=False) if stride == 1 else y
    return n.model(x, 8)


MODELS = {"basic_blocks": resnet_basic_blocks, "bottlenecks": resnet_bottlenecks,
          "inverted_residuals": inverted_residuals}


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, n=8):
        rng = np.random.default_rng(4)
        self.data = iter([{"x": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


def quantized(tmp_path, make, fmt, activations, reduce_range):
    src, dst = tmp_path / "float.onnx", tmp_path / "quant.onnx"
    onnx.save(make(), src)
    act = quantization.QuantType.QInt8 if activations == "int8" else quantization.QuantType.QUInt8
    quantization.quantize_static(str(src), str(dst), _Reader(), per_channel=True, reduce_range=reduce_range,
                                 quant_format=getattr(quantization.QuantFormat, fmt), activation_type=act,
                                 weight_type=quantization.QuantType.QInt8)
    return onnx.load(dst)


def output_step(model):
    """The scale of the DequantizeLinear producing the float output."""
    node = [n for n in model.graph.node if "y" in n.output][0]
    inits = {t.name: nh.to_array(t) for t in model.graph.initializer}
    return float(inits[node.input[1]])


def session(model, level):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("optimized,activations", [(False, "int8"), (True, "int8"), (True, "uint8")],
                         ids=["as_written", "fused", "fused_uint8"])
@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("name", list(MODELS))
def test_within_one_int8_step_of_onnxruntime(tmp_path, name, fmt, optimized, activations):
    model = quantized(tmp_path, MODELS[name], fmt, activations, reduce_range=optimized)
    graph, _ = from_onnx(model)
    convs = [graph.node(n) for n in graph.topo_order() if graph.node(n).op == "conv2d"]
    assert convs and all(c.attrs["out_dtype"] == "int32" for c in convs)   # every conv runs in int8 (depthwise too)
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess, compiled, step = session(model, level), build(graph, "llvm"), output_step(model)
    rng = np.random.default_rng(6)
    for _ in range(4):
        x = (rng.standard_normal(SHAPE) * 1.2).astype(np.float32)
        want = sess.run(None, {"x": x})[0]
        got = compiled.run({"x": x})[0]
        assert np.abs(got.astype(np.float64) - want).max() <= step * (1 + 1e-3)
