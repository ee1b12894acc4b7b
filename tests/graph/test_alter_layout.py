"""Layout rewriting of int8 convolutions to NCHW4c / OIHW4o4i."""
import numpy as np
import pytest

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


def _int8_dense_net(features=40, rows=3):
    """An int8 classifier: dense (40 features: padded to the tensor cores' 64) + int32 bias, then float."""
    g = Graph("qfc")
    x = g.add_input("x", (rows, features), "int8")
    w = g.add_const("w", rng.integers(-128, 128, (24, features), dtype=np.int8))
    b = g.add_const("b", rng.integers(-1000, 1000, (24,), dtype=np.int32))
    d = g.add_op("dense", [x, w, b], {"out_dtype": "int32"}, name="fc")
    g.mark_output(g.add_op("cast", [d], {"dtype": "float32"}, name="f"))
    return g


@pytest.mark.parametrize("rows,template", [(40, "dense_int8_tensorcore.cuda"), (3, "dense_int8_split_k.cuda"),
                                           (16, "dense_int8_split_k.cuda")])
def test_int8_dense_takes_split_k_for_small_batches_else_the_tensor_cores(rows, template):
    g = _int8_dense_net(rows=rows)
    (fc,) = alter_layout(g, target="llvm").op_nodes("dense")
    assert not fc.attrs["gemm_int8"] and not fc.attrs["split_k"]
    a = alter_layout(g, target="cuda -arch=sm_90")
    (fc,) = a.op_nodes("dense")
    assert [t.shape for t in a.input_types("fc")[:2]] == [(rows, 64), (24, 64)]
    assert bool(fc.attrs["gemm_int8"]) == (rows > 16) and bool(fc.attrs["split_k"]) == (rows <= 16)
    x = rng.integers(-128, 128, (rows, 40), dtype=np.int8)
    want = run_reference(g, {"x": x})[0]
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], want)
    np.testing.assert_array_equal(build(a, "llvm").run({"x": x})[0], want)
    model = build(a, "cuda -arch=sm_90")
    assert any(f"[{template}]" in ln for ln in model.summary().splitlines())


# the first convs of the seed models: ResNet / DRN 7x7 s2 p3, VGG 3x3 s1 p1, Inception 3x3 s2 p0;
# and a dilated one over 5 channels
FIRST_CONVS = [(3, 16, 7, 2, 3, 1), (3, 8, 3, 1, 1, 1), (3, 32, 3, 2, 0, 1), (5, 16, 3, 1, 2, 2)]


def _first_conv_net(C, O, K, s, p, d):
    g = Graph("rgb")
    x = g.add_input("x", (2, C, 13, 14), "int8")
    w = g.add_const("w", rng.integers(-128, 128, (O, C, K, K), dtype=np.int8))
    b = g.add_const("b", rng.integers(-5000, 5000, (O,), dtype=np.int32))
    c = g.add_op("conv2d", [x, w, b], {"strides": (s, s), "padding": (p, p, p, p), "dilation": (d, d),
                                       "out_dtype": "int32"}, name="c")
    g.mark_output(g.add_op("cast", [c], {"dtype": "float32"}, name="f"))
    return g


@pytest.mark.parametrize("C,O,K,s,p,d", FIRST_CONVS)
def test_a_few_channel_conv_folds_its_kernel_width_onto_the_tensor_cores(C, O, K, s, p, d):
    g = _first_conv_net(C, O, K, s, p, d)
    a = alter_layout(g, target="cuda -arch=sm_90")
    (fold,) = a.op_nodes("fold_kernel_width")
    (conv,) = a.op_nodes("conv2d")
    assert fold.attrs == {"kernel_w": K, "stride_w": s, "dilation_w": d, "pad_left": p, "pad_right": p}
    assert a.input_types("c")[0].shape[3] == 32 and a.node(conv.inputs[1]).type.shape == (O, K, 1, 32)
    assert (conv.attrs["strides"], conv.attrs["padding"], conv.attrs["dilation"]) == ((s, 1), (p, 0, p, 0), (d, 1))
    x = rng.integers(-128, 128, (2, C, 13, 14), dtype=np.int8)
    want = run_reference(g, {"x": x})[0]
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], want)
    np.testing.assert_array_equal(build(a, "llvm").run({"x": x})[0], want)
    model = build(a, "cuda -arch=sm_90")
    assert "[conv2d_NHWC_int8_tensorcore.cuda]" in model.summary()


def test_without_tensor_cores_the_first_conv_stays_on_dp4a():
    a = alter_layout(_first_conv_net(3, 16, 7, 2, 3, 1), target="cuda -arch=sm_75")
    assert not a.op_nodes("fold_kernel_width")
    assert {n.attrs["data_layout"] for n in a.op_nodes("conv2d")} == {"NCHW4c"}


def _offset_conv_net():
    """DCN's offset conv: 18 output channels (2 x 3 x 3 taps), requantized per channel, dequantized
    and read in NCHW; beside it a residual block whose 20-channel conv output meets an add."""
    g = Graph("offsets")
    x = g.add_input("x", (2, 32, 6, 6), "int8")
    w = g.add_const("w", rng.integers(-128, 128, (18, 32, 3, 3), dtype=np.int8))
    b = g.add_const("b", rng.integers(-5000, 5000, (18,), dtype=np.int32))
    c = g.add_op("conv2d", [x, w, b], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="offset")
    m = g.add_const("m", rng.integers(2 ** 29, 2 ** 30, (18,), dtype=np.int32))
    s = g.add_const("s", np.full((18,), 14, np.int32))
    q = g.add_op("requantize_per_channel", [c, m, s], {"out_dtype": "int8"}, name="q")
    g.mark_output(g.add_op("cast", [q], {"dtype": "float32"}, name="f"))
    w2 = g.add_const("w2", rng.integers(-128, 128, (20, 32, 1, 1), dtype=np.int8))
    c2 = g.add_op("conv2d", [x, w2], {"out_dtype": "int32"}, name="c20")
    q2 = g.add_op("requantize", [c2], {"multiplier": 1 << 30, "shift": -12}, name="q20")
    w3 = g.add_const("w3", rng.integers(-128, 128, (20, 20, 3, 3), dtype=np.int8))
    c3 = g.add_op("conv2d", [g.add_op("relu", [q2], name="r20"), w3], {"padding": (1, 1, 1, 1),
                                                                        "out_dtype": "int32"}, name="c20b")
    q3 = g.add_op("requantize", [c3], {"multiplier": 1 << 30, "shift": -12}, name="q20b")
    g.mark_output(g.add_op("add", [q3, q2], name="res"))
    return g


def test_output_channels_off_the_8_column_tiles_are_padded_and_cropped():
    g = _offset_conv_net()
    a = alter_layout(g, target="cuda -arch=sm_90")
    convs = {n.name: n for n in a.op_nodes("conv2d")}
    assert all(n.attrs["data_layout"] == "NHWC" for n in convs.values())
    assert a.node("offset").type.shape == (2, 6, 6, 24) and a.node("c20").type.shape == (2, 6, 6, 24)
    assert a.input_types("c20b")[1].shape == (24, 3, 3, 32)          # 20 input channels padded like the data
    x = rng.integers(-128, 128, (2, 32, 6, 6), dtype=np.int8)
    want = run_reference(g, {"x": x})
    assert [o.shape for o in want] == [(2, 18, 6, 6), (2, 20, 6, 6)]
    for got in (run_reference(a, {"x": x}), build(a, "llvm").run({"x": x})):
        for w_, g_ in zip(want, got):
            np.testing.assert_array_equal(g_, w_)


def _int8_dcn_net():
    """An int8 deformable conv whose offsets an int8 conv computes (18 channels, dequantized)."""
    g = Graph("dcn")
    x = g.add_input("x", (2, 32, 7, 6), "int8")
    wo = g.add_const("wo", rng.integers(-128, 128, (18, 32, 3, 3), dtype=np.int8))
    oc = g.add_op("conv2d", [x, wo], {"strides": (2, 2), "padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="oc")
    off = g.add_op("dequantize", [g.add_op("requantize", [oc], {"multiplier": 1 << 30, "shift": -14}, name="oq")],
                   {"scale": 0.05}, name="off")
    w = g.add_const("w", rng.integers(-128, 128, (16, 32, 3, 3), dtype=np.int8))
    b = g.add_const("b", rng.integers(-1000, 1000, (16,), dtype=np.int32))
    d = g.add_op("deformable_conv2d", [x, off, w, b], {"strides": (2, 2), "padding": (1, 1, 1, 1),
                                                       "out_dtype": "int32"}, name="dcn")
    g.mark_output(g.add_op("requantize", [d], {"multiplier": 1 << 30, "shift": -12}, name="q"))
    return g


def test_an_int8_deformable_conv_samples_into_channels_for_the_tensor_cores():
    g = _int8_dcn_net()
    a = alter_layout(g, target="cuda -arch=sm_90")
    (sample,) = a.op_nodes("deformable_sample")
    assert sample.type.shape == (2, 4, 3, 288) and not a.op_nodes("deformable_conv2d")
    assert a.node("dcn").attrs["data_layout"] == "NHWC" and a.input_types("dcn")[1].shape == (16, 1, 1, 288)
    assert a.input_types(sample.name)[1].shape == (2, 18, 4, 3)         # offsets cropped from 24 channels, NCHW
    x = rng.integers(-128, 128, (2, 32, 7, 6), dtype=np.int8)
    want = run_reference(g, {"x": x})[0]
    np.testing.assert_array_equal(run_reference(a, {"x": x})[0], want)
    np.testing.assert_array_equal(build(a, "llvm").run({"x": x})[0], want)
    summary = build(a, "cuda -arch=sm_90").summary()
    assert "deformable_sample" in summary and "deformable_conv2d_nchw" not in summary


@pytest.mark.parametrize("pool", ["global_avg_pool2d", "global_max_pool2d"])
def test_a_global_pool_after_a_tensor_core_conv_reads_nhwc(pool):
    g = Graph("gp")
    x = g.add_input("x", (2, 32, 5, 6), "int8")
    w = g.add_const("w", rng.integers(-128, 128, (20, 32, 3, 3), dtype=np.int8))
    c = g.add_op("conv2d", [x, w], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c")
    q = g.add_op("requantize", [c], {"multiplier": 1 << 30, "shift": -12}, name="q")
    f = g.add_op("dequantize", [q], {"scale": 0.1}, name="f")
    g.mark_output(g.add_op("flatten", [g.add_op(pool, [f], name="gp")], name="flat"))
    a = alter_layout(g, target="cuda -arch=sm_90")
    assert a.node("gp").type.shape == (2, 1, 1, 24) and a.node("gp").type.layout == "NHWC"   # 20 channels, padded
    xv = rng.integers(-128, 128, (2, 32, 5, 6), dtype=np.int8)
    want = run_reference(g, {"x": xv})[0]
    assert want.shape == (2, 20)
    tol = 1e-6 * np.abs(want).max()                  # float sums in another order
    np.testing.assert_allclose(run_reference(a, {"x": xv})[0], want, atol=tol)
    np.testing.assert_allclose(build(a, "llvm").run({"x": xv})[0], want, atol=tol)
    assert "[global_pool.cuda]" in build(a, "cuda -arch=sm_90").summary()
