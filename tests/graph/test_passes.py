"""Graph passes, each alone on a small graph and on a zoo model (results preserved)."""
import numpy as np
import pytest

from minitvm.graph import Graph, get_model, run_reference
from minitvm.graph.passes import dead_code_elimination, fold_constant, sequential, simplify_inference

RNG = np.random.default_rng(3)


def rand(*shape):
    return RNG.standard_normal(shape).astype("float32")


def assert_close_rel(a, b, tol=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)
    assert err <= tol, f"relative error {err:.2e} > {tol}"


def add_bn(g, x, c, name):
    ins = [x] + [g.add_const(f"{name}.{p}", v) for p, v in (
        ("gamma", RNG.uniform(0.5, 1.5, c).astype("float32")), ("beta", rand(c)),
        ("mean", rand(c)), ("var", RNG.uniform(0.5, 1.5, c).astype("float32")))]
    return g.add_op("batch_norm", ins, {"epsilon": 1e-3}, name=name)


def conv_bn_graph(extra_consumer=False, bias=False):
    g = Graph("convbn")
    x = g.add_input("x", (2, 3, 8, 8))
    ins = [x, g.add_const("w", rand(4, 3, 3, 3))] + ([g.add_const("b", rand(4))] if bias else [])
    c = g.add_op("conv2d", ins, {"padding": 1}, name="conv")
    y = g.add_op("relu", [add_bn(g, c, 4, "bn")], name="relu")
    if extra_consumer:
        y = g.add_op("add", [y, c], name="res")
    g.mark_output(y)
    return g


@pytest.mark.parametrize("bias", [False, True])
def test_simplify_inference_folds_bn_into_conv(bias):
    g = conv_bn_graph(bias=bias)
    x = rand(2, 3, 8, 8)
    ref = run_reference(g, {"x": x})[0]
    s = simplify_inference(g)
    assert [n.op for n in s.op_nodes()] == ["conv2d", "relu"]
    conv = s.node("conv")
    assert len(conv.inputs) == 3 and s.node("relu").inputs == ["conv"]
    assert not any(k.startswith("bn.") for k in s.params())  # the statistics are gone
    assert "w" not in s and (not bias or "b" not in s)
    assert_close_rel(run_reference(s, {"x": x})[0], ref)
    assert [n.op for n in g.op_nodes()] == ["conv2d", "batch_norm", "relu"]  # input untouched


def test_simplify_inference_scale_shift_when_conv_is_shared():
    g = conv_bn_graph(extra_consumer=True)
    x = rand(2, 3, 8, 8)
    ref = run_reference(g, {"x": x})[0]
    s = simplify_inference(g)
    ops = [n.op for n in s.op_nodes()]
    assert "batch_norm" not in ops and ops.count("mul") == 1 and ops.count("add") == 2
    mul = s.op_nodes("mul")[0]
    assert s.node(mul.inputs[1]).type.shape == (4, 1, 1)
    assert s.node("conv").inputs == ["x", "w"]
    assert_close_rel(run_reference(s, {"x": x})[0], ref)


def test_simplify_inference_bn_on_input_and_dense():
    g = Graph()
    x = g.add_input("x", (3, 5))
    b = add_bn(g, x, 5, "bn0")  # no producer op: scale + shift
    d = g.add_op("dense", [b, g.add_const("w", rand(6, 5))], name="fc")
    y = add_bn(g, d, 6, "bn1")  # folded into the dense
    g.mark_output(y)
    xv = rand(3, 5)
    ref = run_reference(g, {"x": xv})[0]
    s = simplify_inference(g)
    assert [n.op for n in s.op_nodes()] == ["mul", "add", "dense"]
    assert s.outputs == ["fc"]
    assert_close_rel(run_reference(s, {"x": xv})[0], ref)


def test_simplify_inference_keeps_bn_with_runtime_statistics():
    g = Graph()
    x = g.add_input("x", (1, 2, 3, 3))
    m = g.add_input("mean", (2,))
    c = [g.add_const(n, np.ones(2, "float32")) for n in ("g", "b", "v")]
    g.mark_output(g.add_op("batch_norm", [x, c[0], c[1], m, c[2]]))
    assert [n.op for n in simplify_inference(g).op_nodes()] == ["batch_norm"]


def test_fold_constant_small():
    g = Graph()
    x = g.add_input("x", (2, 4))
    a = g.add_const("a", rand(4))
    b = g.add_const("b", rand(4))
    s = g.add_op("add", [a, b], name="s")
    r = g.add_op("relu", [s], name="r")
    y = g.add_op("mul", [x, r], name="y")
    g.mark_output(y)
    xv = rand(2, 4)
    ref = run_reference(g, {"x": xv})[0]
    f = fold_constant(g)
    assert [n.op for n in f.op_nodes()] == ["mul"]
    assert f.node("r").kind == "const" and f.node("y").inputs == ["x", "r"]
    assert "a" not in f and "s" not in f
    np.testing.assert_allclose(f.node("r").value, np.maximum(g.node("a").value + g.node("b").value, 0))
    np.testing.assert_array_equal(run_reference(f, {"x": xv})[0], ref)
    assert fold_constant(g, max_bytes=8).node("r").kind == "op"  # 16-byte results skipped


def test_fold_constant_keeps_layout_of_prepacked_weights():
    g = Graph()
    x = g.add_input("x", (1, 8, 5, 5))
    w = g.add_const("w", rand(8, 8, 3, 3))
    wp = g.add_op("layout_transform", [w], {"src_layout": "OIHW", "dst_layout": "OIHW4o4i"}, name="wp")
    c = g.add_op("conv2d", [x, wp], {"padding": 1, "kernel_layout": "OIHW4o4i"}, name="c")
    g.mark_output(c)
    xv = rand(1, 8, 5, 5)
    ref = run_reference(g, {"x": xv})[0]
    f = fold_constant(g)
    assert f.node("wp").kind == "const" and f.node("wp").type.layout == "OIHW4o4i"
    assert f.node("wp").value.shape == (2, 2, 3, 3, 4, 4)
    np.testing.assert_allclose(run_reference(f, {"x": xv})[0], ref, rtol=1e-6)


def test_dead_code_elimination_small():
    g = Graph()
    x = g.add_input("x", (2, 2))
    unused_in = g.add_input("unused", (1,))
    g.add_const("orphan", np.zeros(3))
    r = g.add_op("relu", [x], name="r")
    d = g.add_op("sigmoid", [r], name="dead1")
    g.add_op("relu", [d], name="dead2")
    g.mark_output(r)
    out = dead_code_elimination(g)
    assert set(out.topo_order()) == {"x", "unused", "r"}
    assert "dead1" in g  # input untouched
    assert unused_in not in dead_code_elimination(g, keep_inputs=False)


@pytest.fixture(scope="module")
def resnet18():
    g, _ = get_model("resnet18", batch=1, image_size=32)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
    return g, x, run_reference(g, {"data": x})[0]


def test_simplify_inference_on_resnet18(resnet18):
    g, x, ref = resnet18
    s = simplify_inference(g)
    assert not s.op_nodes("batch_norm") and len(s.op_nodes("conv2d")) == 20
    assert all(len(n.inputs) == 3 for n in s.op_nodes("conv2d"))
    assert len(s.op_nodes()) == len(g.op_nodes()) - 20
    assert s.num_params() < g.num_params()
    assert_close_rel(run_reference(s, {"data": x})[0], ref)


def test_fold_constant_on_resnet18_with_packed_weights(resnet18):
    g, x, ref = resnet18
    h = g.copy()
    for n in h.op_nodes("conv2d"):  # what a layout pass does: pack the weights, then fold
        wp = h.add_op("layout_transform", [n.inputs[1]], {"src_layout": "OIHW", "dst_layout": "OIHW4o4i"},
                      name=f"{n.name}.packed")
        h.update_op(n.name, inputs=[n.inputs[0], wp] + n.inputs[2:], attrs={"kernel_layout": "OIHW4o4i"})
    f = fold_constant(h)
    assert not f.op_nodes("layout_transform")
    assert all(f.node(n.inputs[1]).type.layout == "OIHW4o4i" for n in f.op_nodes("conv2d"))
    assert_close_rel(run_reference(f, {"data": x})[0], ref)


def test_dce_on_drn_with_dead_branch():
    g, _ = get_model("drn_c_26", batch=1, image_size=32)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
    ref = run_reference(g, {"data": x})[0]
    h = g.copy()
    w = h.add_const("probe.weight", np.ones((8, 64, 1, 1), "float32"))
    p = h.add_op("conv2d", ["layer3.1.relu", w], name="probe")
    h.add_op("global_avg_pool2d", [p], name="probe_pool")
    d = dead_code_elimination(h)
    assert "probe" not in d and "probe.weight" not in d and "probe_pool" not in d
    assert len(d) == len(g)
    assert_close_rel(run_reference(d, {"data": x})[0], ref)


def test_sequential_pipeline_on_inception():
    g, _ = get_model("inception_v3", batch=1, image_size=75)
    x = np.random.default_rng(0).standard_normal((1, 3, 75, 75)).astype("float32")
    ref = run_reference(g, {"data": x})[0]
    s = sequential(g, [simplify_inference, fold_constant, dead_code_elimination])
    assert not s.op_nodes("batch_norm")
    assert_close_rel(run_reference(s, {"data": x})[0], ref)
