"""Compiling whole graphs: fusion, memory planning, and compiled CPU results vs the reference."""
import numpy as np
import pytest

from minitvm.errors import ShapeError
from minitvm.graph import Graph, zoo
from minitvm.graph.build import build, optimize
from minitvm.graph.passes.fuse_ops import fuse_ops
from minitvm.graph.reference import run_reference

rng = np.random.default_rng(4)


def _small_net():
    g = Graph("small")
    x = g.add_input("data", (2, 4, 8, 8), "float32")
    w1 = g.add_const("w1", rng.standard_normal((8, 4, 3, 3)).astype("float32") * 0.3)
    w2 = g.add_const("w2", rng.standard_normal((8, 8, 3, 3)).astype("float32") * 0.3)
    c1 = g.add_op("conv2d", [x, w1], {"padding": (1, 1, 1, 1)}, name="c1")
    r1 = g.add_op("relu", [c1], name="r1")
    c2 = g.add_op("conv2d", [r1, w2], {"padding": (1, 1, 1, 1)}, name="c2")
    a = g.add_op("add", [c2, r1], name="res")
    r2 = g.add_op("relu", [a], name="r2")
    p = g.add_op("global_avg_pool2d", [r2], name="gap")
    f = g.add_op("flatten", [p], name="flat")
    wd = g.add_const("wd", rng.standard_normal((10, 8)).astype("float32"))
    d = g.add_op("dense", [f, wd], name="fc")
    s = g.add_op("softmax", [d], name="prob")
    g.mark_output(s)
    return g


def test_fusion_groups_conv_with_its_epilogue():
    groups = fuse_ops(_small_net())
    assert [g.nodes for g in groups] == [["c1", "r1"], ["c2", "res", "r2"], ["gap"], ["flat"], ["fc"], ["prob"]]
    assert groups[1].anchor == "c2"


def test_fusion_keeps_values_needed_elsewhere():
    g = _small_net()
    g.mark_output("r1")
    groups = fuse_ops(g)
    assert ["c1", "r1"] in [x.nodes for x in groups]
    assert all("r1" not in x.nodes[:-1] for x in groups)


def test_resnet_blocks_fuse_conv_bn_add_relu():
    graph = optimize(zoo.get_model("resnet18", image_size=32, init=False)[0])
    groups = fuse_ops(graph)
    ops = [[graph.node(n).op for n in grp.nodes] for grp in groups]
    assert ["conv2d", "add", "relu"] in ops
    assert sum(o[0] == "conv2d" for o in ops) == len(graph.op_nodes("conv2d"))


def test_small_net_compiled_for_cpu_matches_reference_and_reuses_memory():
    g = _small_net()
    model = build(g, "llvm")
    x = rng.standard_normal((2, 4, 8, 8)).astype("float32")
    (out,) = model.run({"data": x})
    (ref,) = run_reference(g, {"data": x})
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    every_value = sum(model.types[s.output].nbytes for s in model.steps)   # (the graph as built)
    assert 0 < model.peak_bytes < every_value
    assert "kernels" in model.summary()


@pytest.mark.parametrize("name,size", [("resnet18", 32)] + [  # the others: 0.5-2 minutes each on 2 cores
    pytest.param(name, size, marks=pytest.mark.slow) for name, size in
    [("vgg19", 32), ("resnext50_32x4d", 32), ("drn_c_26", 32), ("inception_v3", 75), ("dcn_resnet101", 64)]])
def test_zoo_model_compiled_for_cpu_matches_reference(name, size):
    graph, _ = zoo.get_model(name, batch=1, image_size=size)
    inp = graph.topo_order()[0]
    x = rng.standard_normal(tuple(graph.node(inp).type.shape)).astype("float32")
    out = build(graph, "llvm").run({inp: x})[0]
    ref = run_reference(graph, {inp: x})[0]
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-4


def test_run_rejects_bad_inputs():
    model = build(_small_net(), "llvm")
    with pytest.raises(ShapeError, match="data"):
        model.run({"data": np.zeros((1, 4, 8, 8), "float32")})
    with pytest.raises(ShapeError, match="missing"):
        model.run({})
    with pytest.raises(ShapeError, match="unknown"):
        model.run({"data": np.zeros((2, 4, 8, 8), "float32"), "extra": np.zeros(1)})


def test_onnx_model_compiled_matches_onnxruntime():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    from minitvm.frontend import from_onnx
    w = rng.standard_normal((6, 3, 3, 3)).astype("float32")
    fc = rng.standard_normal((6 * 4 * 4, 5)).astype("float32")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc")])
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    g, _ = from_onnx(model)
    x = rng.standard_normal((1, 3, 8, 8)).astype("float32")
    got = build(g, "llvm").run({"x": x})[0]
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_scalar_constants_keep_their_zero_dimensions():
    g = Graph()
    x = g.add_input("x", (2, 3), "float32")
    c = g.add_const("c", np.asarray(2.5, np.float32))
    g.mark_output(g.add_op("add", [x, c], name="y"))
    m = build(g, "llvm", optimize_graph=False)
    xv = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(m.run({"x": xv})[0], xv + np.float32(2.5))


def test_profile_times_every_kernel_and_names_its_template():
    from minitvm.graph.profile import format_profile
    g, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    model = build(g, "llvm")
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype("float32")
    model.run({model.input_names[0]: x})
    rows = model.profile(number=1, repeat=1)
    assert [r.func for r in rows] == [s.func for s in model.steps]
    assert all(r.seconds > 0 for r in rows) and abs(sum(r.share for r in rows) - 1) < 1e-9
    convs = [r for r in rows if r.ops.startswith("conv2d")]
    # NCHW on CPUs without AVX2, the packed template with it (build for the host)
    assert convs and all(r.macs > 0 and r.tops > 0 for r in convs)
    assert {r.implementation for r in convs} <= {"conv2d_nchw.llvm", "conv2d_NCHWc.x86"}
    assert all(r.macs == 0 and r.gbps > 0 for r in rows if "pool" in r.ops)
    table = format_profile(rows, replay_seconds=sum(r.seconds for r in rows))
    assert convs[0].implementation in table and f"{len(rows)} kernels" in table


def test_profile_needs_inputs():
    g, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    with pytest.raises(ShapeError, match="profile: call run"):
        build(g, "llvm").profile()
