"""Layout rewriting of int8 convolutions to NCHW4c / OIHW4o4i."""
import numpy as np

from minitvm.graph import Graph
from minitvm.graph import quantize  # noqa: F401  (registers the quantized ops)
from minitvm.graph.build import build
from minitvm.graph.passes.alter_layout import alter_layout
from minitvm.graph.reference import run_reference

rng = np.random.default_rng(8)


def _int8_net(C=8):
    g = Graph("q")
    x = g.add_input("x", (2, C, 10, 10), "int8")
    w1 = g.add_const("w1", rng.integers(-8, 8, (16, C, 3, 3), dtype=np.int8))
    w2 = g.add_const("w2", rng.integers(-8, 8, (16, 16, 3, 3), dtype=np.int8))
    c1 = g.add_op("conv2d", [x, w1], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c1")
    q1 = g.add_op("cast", [c1], {"dtype": "int8"}, name="q1")
    r1 = g.add_op("relu", [q1], name="r1")
    c2 = g.add_op("conv2d", [r1, w2], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c2")
    q2 = g.add_op("cast", [c2], {"dtype": "int8"}, name="q2")
    a = g.add_op("add", [q2, r1], name="res")
    p = g.add_op("max_pool2d", [a], {"pool_size": (2, 2), "strides": (2, 2)}, name="pool")
    f = g.add_op("cast", [p], {"dtype": "float32"}, name="f")
    gp = g.add_op("global_avg_pool2d", [f], name="gap")
    g.mark_output(gp)
    return g


def test_transforms_only_at_the_boundaries_and_results_unchanged():
    g = _int8_net()
    a = alter_layout(g)
    transforms = [n for n in a.op_nodes("layout_transform")]
    assert len(transforms) == 2, [(n.name, n.attrs) for n in transforms]
    assert {n.attrs["dst_layout"] for n in transforms} == {"NCHW4c", "NCHW"}
    assert all(n.attrs["kernel_layout"] == "OIHW4o4i" for n in a.op_nodes("conv2d"))
    weights = [a.node(n.inputs[1]) for n in a.op_nodes("conv2d")]
    assert all(w.is_const and w.type.layout == "OIHW4o4i" for w in weights)   # packed once, at build time
    x = rng.integers(-128, 128, (2, 8, 10, 10), dtype=np.int8)
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], run_reference(g, {"x": x})[0])


def test_packed_int8_graph_compiles_bit_exact_on_cpu():
    g = _int8_net()
    x = rng.integers(-128, 128, (2, 8, 10, 10), dtype=np.int8)
    got = build(alter_layout(g), "llvm").run({"x": x})[0]
    np.testing.assert_allclose(got, run_reference(g, {"x": x})[0], rtol=1e-6)


def test_channels_not_divisible_by_4_are_padded():
    g = _int8_net(C=6)
    a = alter_layout(g)
    x = rng.integers(-128, 128, (2, 6, 10, 10), dtype=np.int8)
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], run_reference(g, {"x": x})[0])


# ---------------------------------------------------------------- the int8 tensor-core layout
def _tc_net(groups=1):
    """Two int8 convs (32 channels: the tensor cores' k-step), a per-channel requantize, a residual
    add, a max pool, then float."""
    g = Graph("qtc")
    x = g.add_input("x", (1, 32, 9, 9), "int8")
    w1 = g.add_const("w1", rng.integers(-8, 8, (32, 32 // groups, 3, 3), dtype=np.int8))
    w2 = g.add_const("w2", rng.integers(-8, 8, (32, 32, 1, 1), dtype=np.int8))
    c1 = g.add_op("conv2d", [x, w1], {"padding": (1, 1, 1, 1), "out_dtype": "int32", "groups": groups}, name="c1")
    m = g.add_const("m", rng.integers(2**29, 2**30, (32,), dtype=np.int32))
    s = g.add_const("s", np.full((32,), 3, np.int32))
    q1 = g.add_op("requantize_per_channel", [c1, m, s], {"out_dtype": "int8"}, name="q1")
    r1 = g.add_op("relu", [q1], name="r1")
    c2 = g.add_op("conv2d", [r1, w2], {"out_dtype": "int32"}, name="c2")
    q2 = g.add_op("cast", [c2], {"dtype": "int8"}, name="q2")
    a = g.add_op("add", [q2, r1], name="res")
    p = g.add_op("max_pool2d", [a], {"pool_size": (2, 2), "strides": (2, 2)}, name="pool")
    g.mark_output(g.add_op("cast", [p], {"dtype": "float32"}, name="f"))
    return g


def test_int8_convs_take_the_tensor_core_layout_where_the_target_has_tensor_cores():
    g = _tc_net()
    for target, layout in (("cuda -arch=sm_90", "NHWC"), ("cuda -arch=sm_80", "NHWC"),
                           ("cuda -arch=sm_75", "NCHW4c"), ("llvm -mattr=-avx2,-avx512f,-avxvnni,-avx512vnni", "NCHW4c"),
                           (None, "NCHW4c")):
        a = alter_layout(g, target=target)
        assert {n.attrs["data_layout"] for n in a.op_nodes("conv2d")} == {layout}, target
    a = alter_layout(g, target="cuda -arch=sm_90")
    assert all(n.attrs["kernel_layout"] == "OHWI" for n in a.op_nodes("conv2d"))
    assert [n.attrs["axis"] for n in a.op_nodes("requantize_per_channel")] == [3]
    assert a.node("pool").type.layout == "NHWC"          # the max pool follows the layout
    assert {n.attrs["dst_layout"] for n in a.op_nodes("layout_transform")} == {"NHWC", "NCHW"}
    x = rng.integers(-128, 128, (1, 32, 9, 9), dtype=np.int8)
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], run_reference(g, {"x": x})[0])


def test_a_grouped_conv_keeps_the_dp4a_layout_beside_tensor_core_convs():
    g = _tc_net(groups=4)
    a = alter_layout(g, target="cuda -arch=sm_90")
    layouts = {n.name: n.attrs["data_layout"] for n in a.op_nodes("conv2d")}
    assert layouts == {"c1": "NCHW4c", "c2": "NHWC"}
    x = rng.integers(-128, 128, (1, 32, 9, 9), dtype=np.int8)
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], run_reference(g, {"x": x})[0])


def test_the_tensor_core_layout_compiles_on_the_cpu_to_the_same_bits():
    g = _tc_net()
    x = rng.integers(-128, 128, (1, 32, 9, 9), dtype=np.int8)
    want = build(alter_layout(g, target="llvm"), "llvm").run({"x": x})[0]
    got = build(alter_layout(g, target="cuda -arch=sm_90"), "llvm").run({"x": x})[0]
    np.testing.assert_array_equal(got, want)


def test_the_compiled_summary_names_the_tensor_core_template():
    model = build(alter_layout(_tc_net(), target="cuda -arch=sm_90"), "cuda -arch=sm_90")
    lines = [ln for ln in model.summary().splitlines() if "conv2d" in ln]
    assert lines and all("[conv2d_NHWC_int8_tensorcore.cuda]" in ln for ln in lines)


def test_input_channels_are_padded_to_whole_tensor_core_k_steps():
    g = Graph("q80")
    x = g.add_input("x", (1, 80, 7, 7), "int8")                       # Inception's Conv2d_4a: 80 channels
    w = g.add_const("w", rng.integers(-8, 8, (48, 80, 3, 3), dtype=np.int8))
    c = g.add_op("conv2d", [x, w], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c")
    g.mark_output(g.add_op("cast", [c], {"dtype": "float32"}, name="f"))
    a = alter_layout(g, target="cuda -arch=sm_90")
    (conv,) = a.op_nodes("conv2d")
    assert conv.attrs["data_layout"] == "NHWC" and a.input_types(conv.name)[0].shape[3] == 96
    assert a.node(conv.inputs[1]).is_const and a.node(conv.inputs[1]).type.shape == (48, 3, 3, 96)
    x_ = rng.integers(-128, 128, (1, 80, 7, 7), dtype=np.int8)
    np.testing.assert_array_equal(run_reference(a, {"x": x_})[0], run_reference(g, {"x": x_})[0])
    np.testing.assert_array_equal(build(a, "llvm").run({"x": x_})[0], run_reference(g, {"x": x_})[0])


def _int8_dense_net(features=40):
    """An int8 classifier: dense (40 features: padded to the tensor cores' 64) + int32 bias, then float."""
    g = Graph("qfc")
    x = g.add_input("x", (3, features), "int8")
    w = g.add_const("w", rng.integers(-128, 128, (24, features), dtype=np.int8))
    b = g.add_const("b", rng.integers(-1000, 1000, (24,), dtype=np.int32))
    d = g.add_op("dense", [x, w, b], {"out_dtype": "int32"}, name="fc")
    g.mark_output(g.add_op("cast", [d], {"dtype": "float32"}, name="f"))
    return g


def test_int8_dense_goes_to_the_tensor_core_gemm_with_its_features_padded():
    g = _int8_dense_net()
    (fc,) = alter_layout(g, target="llvm").op_nodes("dense")
    assert not fc.attrs["gemm_int8"]
    a = alter_layout(g, target="cuda -arch=sm_90")
    (fc,) = a.op_nodes("dense")
    assert fc.attrs["gemm_int8"] and [t.shape for t in a.input_types("fc")[:2]] == [(3, 64), (24, 64)]
    x = rng.integers(-128, 128, (3, 40), dtype=np.int8)
    want = run_reference(g, {"x": x})[0]
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], want)
    np.testing.assert_array_equal(build(a, "llvm").run({"x": x})[0], want)
    model = build(a, "cuda -arch=sm_90")
    assert any("[dense_int8_tensorcore.cuda]" in ln for ln in model.summary().splitlines())
