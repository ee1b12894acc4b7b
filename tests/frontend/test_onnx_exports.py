"""The ops real exports use (issue 16 item 2), each in the pattern an exporter writes it, compiled
for llvm and checked against onnxruntime within 1e-4: LayerNormalization (ViT, ConvNeXt), Gelu
and its Erf spelling, ShuffleNetV2's channel shuffle and split, batched attention MatMuls, Pad
edge / reflect, LRN and Sum (the model zoo's classic CNNs), Resize / Upsample, and shape inputs
computed by a shape subgraph."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from minitvm.frontend import from_onnx  # noqa: E402
from minitvm.graph.build import build  # noqa: E402

RNG = np.random.default_rng(16)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


def const(name, value, dtype=np.float32):
    return nh.from_array(np.asarray(value, dtype), name)


def model(nodes, inputs, outputs, inits=(), opset=17):
    graph = h.make_graph(nodes, "export", [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in inputs],
                         [h.make_tensor_value_info(n, TP.FLOAT, None) for n in outputs], list(inits))
    return h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", opset)])


def check(m, feeds, rtol=1e-4, atol=1e-5):
    """Compiled minitvm (llvm) against onnxruntime on ``feeds``; returns the graph."""
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    graph, _ = from_onnx(m)
    got = build(graph, "llvm").run(feeds)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    return graph


@pytest.mark.parametrize("axis", [-1, -2, 1])
def test_layer_normalization_as_vit_and_convnext_export_it(axis):
    shape = (2, 5, 8, 6)
    norm = shape[axis:] if axis < 0 else shape[axis:]
    m = model([h.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=axis, epsilon=1e-6)],
              [("x", shape)], ["y"], [const("g", rand(*norm)), const("b", rand(*norm))])
    check(m, {"x": rand(*shape) * 3 + 1})


def test_gelu_and_the_erf_spelling_of_older_opsets():
    x = rand(4, 33) * 3
    check(model([h.make_node("Gelu", ["x"], ["y"])], [("x", [4, 33])], ["y"], opset=20), {"x": x})
    check(model([h.make_node("Gelu", ["x"], ["y"], approximate="tanh")], [("x", [4, 33])], ["y"], opset=20), {"x": x})
    erf = [h.make_node("Div", ["x", "sqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
           h.make_node("Add", ["e", "one"], ["p"]), h.make_node("Mul", ["x", "p"], ["m"]),
           h.make_node("Mul", ["m", "half"], ["y"])]
    check(model(erf, [("x", [4, 33])], ["y"], [const("sqrt2", 2 ** 0.5), const("one", 1.0), const("half", 0.5)]),
          {"x": x})


def test_shufflenet_channel_split_and_shuffle():
    """torchvision's ShuffleNetV2 block: x.chunk(2, dim=1) (Split or Slice), a conv branch, Concat, then
    channel_shuffle: Reshape [N, 2, C/2, H, W], Transpose, Reshape."""
    n, c, hw = 1, 8, 5
    nodes = [h.make_node("Split", ["x", "halves"], ["a", "b"], axis=1),
             h.make_node("Conv", ["b", "w"], ["bc"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["bc"], ["br"]),
             h.make_node("Slice", ["x", "s0", "s1", "ax1"], ["a2"]), h.make_node("Add", ["a", "a2"], ["a3"]),
             h.make_node("Concat", ["a3", "br"], ["cat"], axis=1),
             h.make_node("Reshape", ["cat", "grouped"], ["r"]), h.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             h.make_node("Reshape", ["t", "flat"], ["y"])]
    inits = [const("halves", [4, 4], np.int64), const("w", rand(4, 4, 3, 3)), const("s0", [0], np.int64),
             const("s1", [4], np.int64), const("ax1", [1], np.int64), const("grouped", [n, 2, c // 2, hw, hw], np.int64),
             const("flat", [n, c, hw, hw], np.int64)]
    graph = check(model(nodes, [("x", [n, c, hw, hw])], ["y"], inits), {"x": rand(n, c, hw, hw)})
    assert {"strided_slice", "transpose"} <= {graph.node(k).op for k in graph.topo_order() if graph.node(k).is_op}


def test_attention_with_batched_matmuls():
    """A ViT attention head block: q, k, v projections, Reshape/Transpose to heads, q @ k^T (batched),
    Softmax, @ v, back to tokens."""
    b, t, d, heads = 2, 7, 12, 3
    hd = d // heads
    nodes = []
    for name in "qkv":
        nodes += [h.make_node("MatMul", ["x", f"w{name}"], [f"{name}0"]),
                  h.make_node("Reshape", [f"{name}0", "split_heads"], [f"{name}1"]),
                  h.make_node("Transpose", [f"{name}1"], [name], perm=[0, 2, 1, 3])]
    nodes += [h.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), h.make_node("MatMul", ["q", "kt"], ["s"]),
              h.make_node("Mul", ["s", "scale"], ["ss"]), h.make_node("Softmax", ["ss"], ["p"], axis=-1),
              h.make_node("MatMul", ["p", "v"], ["o"]), h.make_node("Transpose", ["o"], ["o1"], perm=[0, 2, 1, 3]),
              h.make_node("Reshape", ["o1", "merge_heads"], ["y"])]
    inits = [const(f"w{n}", rand(d, d)) for n in "qkv"] + [
        const("split_heads", [b, t, heads, hd], np.int64), const("merge_heads", [b, t, d], np.int64),
        const("scale", hd ** -0.5)]
    graph = check(model(nodes, [("x", [b, t, d])], ["y"], inits), {"x": rand(b, t, d)})
    assert any(graph.node(k).op == "matmul" and graph.node(k).type.ndim == 4 for k in graph.topo_order()
               if graph.node(k).is_op)


@pytest.mark.parametrize("mode", ["edge", "reflect", "constant"])
def test_pad_modes(mode):
    m = model([h.make_node("Pad", ["x", "pads"], ["y"], mode=mode)], [("x", [1, 2, 5, 6])], ["y"],
              [const("pads", [0, 0, 2, 1, 0, 0, 1, 3], np.int64)])
    check(m, {"x": rand(1, 2, 5, 6)})


def test_lrn_and_sum_as_the_classic_model_zoo_cnns():
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c"], ["r"]),
             h.make_node("LRN", ["r"], ["n"], size=5, alpha=1e-4, beta=0.75, bias=1.0),
             h.make_node("Sum", ["n", "r", "c"], ["y"])]
    check(model(nodes, [("x", [1, 3, 8, 8])], ["y"], [const("w", rand(7, 3, 3, 3))], opset=8),
          {"x": rand(1, 3, 8, 8)})


@pytest.mark.parametrize("mode,ctm", [("nearest", "asymmetric"), ("linear", "half_pixel"),
                                      ("linear", "align_corners"), ("cubic", "half_pixel")])
def test_resize(mode, ctm):
    m = model([h.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=ctm,
                           nearest_mode="floor")],
              [("x", [1, 2, 5, 4])], ["y"], [const("scales", [1, 1, 2, 1.5])], opset=13)
    check(m, {"x": rand(1, 2, 5, 4)})


def test_upsample_of_opset_9():
    m = model([h.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")], [("x", [1, 2, 3, 4])], ["y"],
              [const("scales", [1, 1, 2, 2])], opset=9)
    check(m, {"x": rand(1, 2, 3, 4)})


def test_shape_inputs_computed_by_a_shape_subgraph_fold():
    """Reshape and Expand whose shape inputs come from Shape / Gather / Concat / ConstantOfShape / Range."""
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "ax0"], ["nu"]), h.make_node("Concat", ["nu", "m1"], ["target"], axis=0),
             h.make_node("Reshape", ["x", "target"], ["flat"]),
             h.make_node("Shape", ["flat"], ["fs"]), h.make_node("ConstantOfShape", ["fs"], ["ones"],
                                                                  value=nh.from_array(np.array([2.0], np.float32))),
             h.make_node("Range", ["r0", "r1", "r2"], ["idx"]), h.make_node("Cast", ["idx"], ["idxf"], to=TP.FLOAT),
             h.make_node("Mul", ["flat", "ones"], ["f2"]), h.make_node("Add", ["f2", "idxf"], ["y"])]
    inits = [const("i0", 0, np.int64), const("ax0", [0], np.int64), const("m1", [-1], np.int64),
             const("r0", 0, np.int64), const("r1", 12, np.int64), const("r2", 1, np.int64)]
    graph = check(model(nodes, [("x", [2, 3, 4])], ["y"], inits), {"x": rand(2, 3, 4)})
    assert sorted(graph.node(k).op for k in graph.topo_order() if graph.node(k).is_op) == ["add", "mul", "reshape"]
