"""int8 convolutions on LLVM targets with AVX2 / VNNI take the x86 dot-product template's layouts
(NCHW[x]c data, OIHW[L]o4i weights, NCHW[L]c output; depthwise NCHW[b]c / OIHW[b]o) and compute the
reference's bits."""
import numpy as np
import pytest

from minitvm.graph import Graph
from minitvm.graph import quantize  # noqa: F401  (registers the quantized ops)
from minitvm.graph.build import build
from minitvm.graph.passes.alter_layout import alter_layout
from minitvm.graph.reference import run_reference
from minitvm.runtime.cpu_features import cpu_features
from minitvm.target import Target

rng = np.random.default_rng()
HOST = cpu_features()
# -mattr, the host feature the lowering needs, the kernel layout the pass should pick
TARGETS = {
    "vnni512": ("+avx512f,+avx512bw,+avx512vnni", "avx512vnni", "OIHW16o4i"),
    "vnni256": ("-avx512vnni", "avxvnni", "OIHW8o4i"),
    "avx2": ("-avxvnni,-avx512vnni", "avx2", "OIHW8o2i"),
    "generic": ("-avx2,-avx512f,-avxvnni,-avx512vnni", None, "OIHW4o4i"),
}
# the data layouts of the two convs: 6 channels padded to the dot product's depth (4, or 2 for AVX2's
# dot_i16), then the first conv's output as it is
DATA = {"vnni512": {"NCHW4c", "NCHW16c"}, "vnni256": {"NCHW4c", "NCHW8c"}, "avx2": {"NCHW2c", "NCHW8c"},
        "generic": {"NCHW4c"}}


def _depthwise_net(C=48):
    """An int8 depthwise conv (stride 2, padded) with a bias and per-channel requantize, then a 1x1 conv."""
    g = Graph("qdw")
    x = g.add_input("x", (1, C, 9, 9), "int8")
    w = g.add_const("w", rng.integers(-128, 128, (C, 1, 3, 3), dtype=np.int8))
    b = g.add_const("b", rng.integers(-5000, 5000, (C,), dtype=np.int32))
    d = g.add_op("conv2d", [x, w, b], {"strides": (2, 2), "padding": (1, 1, 1, 1), "groups": C, "out_dtype": "int32"},
                 name="dw")
    m = g.add_const("m", rng.integers(2**29, 2**30, (C,), dtype=np.int32))
    s = g.add_const("s", np.full((C,), 12, np.int32))
    q = g.add_op("requantize_per_channel", [d, m, s], {"out_dtype": "int8"}, name="q")
    w2 = g.add_const("w2", rng.integers(-128, 128, (16, C, 1, 1), dtype=np.int8))
    g.mark_output(g.add_op("conv2d", [q, w2], {"out_dtype": "int32"}, name="pw"))
    return g


@pytest.mark.parametrize("path", ["vnni512", "avx2"])
def test_int8_depthwise_packed_and_bit_exact(path):
    target = _target(path)
    g = _depthwise_net()
    a = alter_layout(g, target=target)
    dw = a.node("dw")
    assert dw.attrs["data_layout"] == "NCHW16c" and dw.attrs["kernel_layout"] == "OIHW16o"
    model = build(a, target)
    assert "depthwise_conv2d_NCHWc.x86" in model.summary()
    x = rng.integers(-128, 128, (1, 48, 9, 9), dtype=np.int8)
    x.reshape(-1)[::5] = -128
    np.testing.assert_array_equal(model.run({"x": x})[0], run_reference(g, {"x": x})[0])


def _net(C=6, O=32):
    """int8 convs (full-range weights), per-channel requantize, relu, a residual add, a pad, a max pool."""
    g = Graph("qx86")
    x = g.add_input("x", (1, C, 11, 11), "int8")
    w1 = g.add_const("w1", rng.integers(-128, 128, (O, C, 3, 3), dtype=np.int8))
    w2 = g.add_const("w2", rng.integers(-128, 128, (O, O, 1, 1), dtype=np.int8))
    b1 = g.add_const("b1", rng.integers(-5000, 5000, (O,), dtype=np.int32))
    c1 = g.add_op("conv2d", [x, w1, b1], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c1")
    m = g.add_const("m", rng.integers(2**29, 2**30, (O,), dtype=np.int32))
    s = g.add_const("s", np.full((O,), 14, np.int32))
    r1 = g.add_op("relu", [g.add_op("requantize_per_channel", [c1, m, s], {"out_dtype": "int8"}, name="q1")],
                  name="r1")
    c2 = g.add_op("conv2d", [r1, w2], {"strides": (2, 2), "out_dtype": "int32"}, name="c2")
    q2 = g.add_op("requantize_per_channel", [c2, m, s], {"out_dtype": "int8"}, name="q2")
    p1 = g.add_op("max_pool2d", [r1], {"pool_size": (2, 2), "strides": (2, 2)}, name="p1")
    a = g.add_op("add", [q2, g.add_op("pad", [p1], {"pad_width": ((0, 0), (0, 0), (0, 1), (0, 1))}, name="pd")],
                 name="res")
    g.mark_output(g.add_op("cast", [a], {"dtype": "float32"}, name="f"))
    return g


def _target(path):
    mattr, need, _ = TARGETS[path]
    if need is not None and need not in HOST:
        pytest.skip(f"the host CPU has no {need}, which the {path} lowering needs")
    return Target(f"llvm -mattr={mattr}" if mattr else "llvm")


@pytest.mark.parametrize("path", list(TARGETS))
def test_layouts_follow_the_target_features(path):
    mattr, _, kernel = TARGETS[path]
    a = alter_layout(_net(), target=Target(f"llvm -mattr={mattr}" if mattr else "llvm"))
    assert {n.attrs["kernel_layout"] for n in a.op_nodes("conv2d")} == {kernel}
    assert {n.attrs["data_layout"] for n in a.op_nodes("conv2d")} == DATA[path]
    assert not a.op_nodes("layout_transform") or path == "generic" or all(
        a.node(n.inputs[0]).is_input or n.name in a.outputs or n.attrs["dst_layout"] == "NCHW"
        for n in a.op_nodes("layout_transform"))   # x86: transforms only at the edges


@pytest.mark.parametrize("path", list(TARGETS))
def test_int8_graph_bit_exact_and_on_the_x86_template(path):
    target = _target(path)
    g = _net()
    model = build(alter_layout(g, target=target), target)
    x = rng.integers(-128, 128, (1, 6, 11, 11), dtype=np.int8)
    x.reshape(-1)[::3] = -128
    x.reshape(-1)[1::3] = 127
    np.testing.assert_array_equal(model.run({"x": x})[0], run_reference(g, {"x": x})[0])
    assert ("conv2d_NCHWc_int8.x86" in model.summary()) == (path != "generic")


def test_output_channels_not_a_multiple_of_the_lanes_keep_dp4a():
    a = alter_layout(_net(O=12), target=Target("llvm -mattr=-avxvnni,-avx512vnni"))
    assert {n.attrs["kernel_layout"] for n in a.op_nodes("conv2d")} == {"OIHW4o4i"}


def _dense_net(dtype, with_bias):
    g = Graph("fc")
    if dtype == "int8":
        x = g.add_input("x", (2, 40), "int8")
        w = g.add_const("w", rng.integers(-128, 128, (24, 40), dtype=np.int8))
        ins = [x, w] + ([g.add_const("b", rng.integers(-9000, 9000, (24,), dtype=np.int32))] if with_bias else [])
        d = g.add_op("dense", ins, {"out_dtype": "int32"}, name="fc")
    else:
        x = g.add_input("x", (2, 40), "float32")
        w = g.add_const("w", rng.standard_normal((24, 40)).astype(np.float32))
        ins = [x, w] + ([g.add_const("b", rng.standard_normal(24).astype(np.float32))] if with_bias else [])
        d = g.add_op("dense", ins, name="fc")
    g.mark_output(g.add_op("relu", [d], name="r"))
    return g


@pytest.mark.parametrize("with_bias", [True, False])
def test_int8_dense_on_the_dot_product_bit_exact(with_bias):
    target = _target("vnni512") if "avx512vnni" in HOST else _target("avx2")
    g = _dense_net("int8", with_bias)
    a = alter_layout(g, target=target)
    assert a.node("fc").attrs["weight_layout"] == "OI8o4i"     # 24 units: blocks of 8 even with 16 lanes
    assert a.input_types("fc")[0].dtype == "uint8"        # offset by graph ops, corrected in the bias
    model = build(a, target)
    assert "dense_int8.x86" in model.summary()
    x = rng.integers(-128, 128, (2, 40), dtype=np.int8)
    x[0] = -128
    np.testing.assert_array_equal(model.run({"x": x})[0], run_reference(g, {"x": x})[0])


def test_float_dense_packs_its_weight_and_int8_stays_on_dp4a_elsewhere():
    g = _dense_net("float32", True)
    a = alter_layout(g, target=Target("llvm -mattr=+avx2,+fma,-avx512f"))
    assert a.node("fc").attrs["weight_layout"] == "OI8o"
    x = rng.standard_normal((2, 40)).astype(np.float32)
    if "avx2" in HOST:
        model = build(a, "llvm -mattr=-avx512f")
        assert "dense_packed.x86" in model.summary()
        np.testing.assert_allclose(model.run({"x": x})[0], run_reference(g, {"x": x})[0], rtol=1e-5, atol=1e-5)
    generic = alter_layout(_dense_net("int8", True), target=Target("llvm -mattr=" + TARGETS["generic"][0]))
    assert generic.node("fc").attrs.get("weight_layout", "OI") == "OI"


def _after(op, attrs, C=16, O=32):
    """conv -> requantize -> ``op`` -> a padded 3x3 conv: what the second conv's data is."""
    g = Graph("nonneg")
    x = g.add_input("x", (1, C, 10, 10), "int8")
    w1 = g.add_const("w1", rng.integers(-128, 128, (C, C, 1, 1), dtype=np.int8))
    w2 = g.add_const("w2", rng.integers(-128, 128, (O, C, 3, 3), dtype=np.int8))
    m = g.add_const("m", rng.integers(2**29, 2**30, (C,), dtype=np.int32))
    s = g.add_const("s", np.full((C,), 12, np.int32))
    c1 = g.add_op("conv2d", [x, w1], {"out_dtype": "int32"}, name="c1")
    q1 = g.add_op("requantize_per_channel", [c1, m, s], {"out_dtype": "int8"}, name="q1")
    a = g.add_op(op, [q1], attrs, name="act")
    g.mark_output(g.add_op("conv2d", [a, w2], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c2"))
    return g


@pytest.mark.parametrize("op, attrs, unsigned", [("relu", {}, True), ("clip", {"min": 0.0, "max": 100.0}, True),
                                                 ("clip", {"min": -5.0, "max": 100.0}, False)])
def test_data_that_is_never_negative_enters_as_uint8(op, attrs, unsigned):
    """After a relu or a clip at 0, the conv reads its int8 data as uint8 (the same bits), with the
    cast fused into the producer: no +128 shift, no correction; padding stays exact."""
    target = _target("vnni512")
    g = _after(op, attrs)
    a = alter_layout(g, target=target)
    (c2,) = [n for n in a.op_nodes("conv2d") if n.inputs[1].startswith("w2")]
    data = a.node(c2.inputs[0])
    assert (data.op == "cast" and data.type.dtype == "uint8") is unsigned
    model = build(a, target)
    x = rng.integers(-128, 128, (1, 16, 10, 10), dtype=np.int8)
    np.testing.assert_array_equal(model.run({"x": x})[0], run_reference(g, {"x": x})[0])
    if unsigned:
        assert f"{op} -> cast" in model.summary()         # one kernel writes the uint8
