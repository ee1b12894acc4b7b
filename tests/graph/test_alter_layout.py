"""Layout rewriting of int8 convolutions to NCHW4c / OIHW4o4i."""
import numpy as np

from minitvm.graph import Graph
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
