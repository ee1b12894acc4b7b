"""#17 R15: a convolution never multiplies its zero padding by an infinite or NaN weight.

``guard_padded_taps`` (part of ``optimize``) marks the padded float convs whose weights are not
finite constants; their kernels select 0 for padded taps. Checked against onnxruntime, whose
optimized CPU kernels skip padded taps too.
"""
import numpy as np
import pytest

import minitvm
from minitvm.graph import Graph, run_reference
from minitvm.graph.passes import guard_padded_taps


def _weights(rng, shape=(2, 1, 3, 3)):
    w = rng.standard_normal(shape).astype("float32")
    w[0, 0, 0, 0] = np.inf
    w[1, 0, 2, 2] = np.nan
    return w


def _graph(w, padding=1, dtype="float32", const=True):
    g = Graph("conv")
    x = g.add_input("x", (1, w.shape[1], 5, 5), dtype)
    wn = g.add_const("w", w) if const else g.add_input("w", w.shape, dtype)
    g.mark_output(g.add_op("conv2d", [x, wn], {"padding": padding}, name="conv"))
    return g


@pytest.mark.parametrize("case, marked", [
    ("finite", False), ("inf", True), ("weight input", True), ("no padding", None), ("int8", None)])
def test_guard_marks_only_convs_whose_padding_meets_unknown_or_nonfinite_weights(case, marked):
    rng = np.random.default_rng(0)
    w = _weights(rng) if case != "finite" else rng.standard_normal((2, 1, 3, 3)).astype("float32")
    if case == "int8":
        g = _graph(rng.integers(-5, 5, (2, 1, 3, 3)).astype("int8"), dtype="int8")
    else:
        g = _graph(w, padding=0 if case == "no padding" else 1, const=case != "weight input")
    out = guard_padded_taps(g)
    assert out.node("conv").attrs["select_padded_taps"] is bool(marked)
    assert g.node("conv").attrs["select_padded_taps"] is False     # the argument is untouched


def _onnx_conv(w):
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, w.shape[1], 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, w.shape[0], 5, 5])],
        [numpy_helper.from_array(w, "w")])
    # IR 10: the onnxruntime for Python 3.10 (1.23) reads IR versions up to 11
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 13)])


def test_nonfinite_weights_with_padding_match_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    w = _weights(rng, (4, 2, 3, 3))
    x = rng.standard_normal((1, 2, 5, 5)).astype("float32")
    model = _onnx_conv(w)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    # onnxruntime's optimized kernel: numbers on the border where the bad tap meets padding
    assert np.isfinite(want[0, 0, 0]).all() and np.isfinite(want[0, 1, -1]).all()
    assert np.isinf(want[0, 0]).any() and np.isnan(want[0, 1]).any()
    got = minitvm.compile(model, target="llvm").run({"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)   # NaN and inf in the same places
    ref = run_reference(_graph(w), {"x": x})[0]
    np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-5)
