"""The graph IR: construction, queries, mutation, printing."""
import numpy as np
import pytest

from minitvm.errors import GraphError, ShapeError
from minitvm.graph import Graph, TensorType, run_reference


def small_graph():
    g = Graph("small")
    x = g.add_input("data", (1, 3, 8, 8))
    w = g.add_const("w", np.ones((4, 3, 3, 3), "float32"))
    c = g.add_op("conv2d", [x, w], {"strides": 2, "padding": 1}, name="conv1")
    r = g.add_op("relu", [c])
    g.mark_output(r)
    return g


def test_tensor_type_normalizes_and_prints():
    t = TensorType([1, np.int64(3)], np.float32)
    assert t.shape == (1, 3) and t.dtype == "float32" and t.layout == ""
    assert str(t) == "float32[1,3]"
    assert str(TensorType((1, 2, 3, 4, 4), "int8", "NCHW4c")) == "int8[1,2,3,4,4]@NCHW4c"
    assert t.size == 3 and t.nbytes == 12 and t.ndim == 2
    with pytest.raises(ShapeError):
        TensorType((1, -2), "float32")


def test_build_and_query():
    g = small_graph()
    assert g.inputs == ["data"] and g.outputs == ["relu"]
    assert g.node("conv1").type == TensorType((1, 4, 4, 4), "float32")
    assert g.node("conv1").attrs["strides"] == (2, 2)
    assert g.node("conv1").attrs["padding"] == (1, 1, 1, 1)
    assert g.node("conv1").attrs["groups"] == 1  # defaults are filled in
    assert g.topo_order() == ["data", "w", "conv1", "relu"]
    assert g.consumers("conv1") == ["relu"]
    assert g.input_types("conv1") == [g.node("data").type, g.node("w").type]
    e = g.nx_graph.edges["conv1", "relu"]
    assert e["type"] == g.node("conv1").type and e["index"] == 0 and e["positions"] == (0,)
    assert g.nx_graph.edges["w", "conv1"]["index"] == 1
    assert g.params().keys() == {"w"} and g.num_params() == 108
    assert g.macs() == 1 * 4 * 4 * 4 * 3 * 9
    assert [n.name for n in g.op_nodes()] == ["conv1", "relu"]
    assert [n.name for n in g.op_nodes("relu")] == ["relu"]
    assert "conv1" in g and len(g) == 4


def test_auto_names_and_duplicates():
    g = Graph()
    x = g.add_input("x", (2, 2))
    assert g.add_op("relu", [x]) == "relu"
    assert g.add_op("relu", [x]) == "relu_1"
    with pytest.raises(GraphError, match="already exists"):
        g.add_op("relu", [x], name="relu")
    with pytest.raises(GraphError, match="already exists"):
        g.add_const("x", np.zeros(2))
    with pytest.raises(GraphError, match="not a node"):
        g.add_op("relu", ["nope"], name="r")
    with pytest.raises(GraphError, match="unknown op 'rellu'; did you mean 'relu'"):
        g.add_op("rellu", [x])
    with pytest.raises(GraphError, match="no node named"):
        g.node("missing")


def test_same_input_twice_uses_one_edge_with_two_positions():
    g = Graph()
    x = g.add_input("x", (3,))
    a = g.add_op("add", [x, x], name="a")
    assert g.nx_graph.edges[x, a]["positions"] == (0, 1)
    g.mark_output(a)
    assert run_reference(g, {"x": np.arange(3, dtype="float32")})[0].tolist() == [0, 2, 4]


def test_topo_order_after_rewiring_is_topological():
    g = small_graph()
    # a node added later that an earlier node is rewired to read
    s = g.add_op("sigmoid", ["data"], name="sig")
    g.set_inputs("conv1", [s, "w"])
    order = g.topo_order()
    assert order.index("sig") < order.index("conv1")


def test_replace_all_uses_and_remove():
    g = small_graph()
    c2 = g.add_op("conv2d", ["data", "w"], {"strides": 2, "padding": 1}, name="conv2")
    g.replace_all_uses("conv1", c2)
    assert g.node("relu").inputs == ["conv2"]
    assert g.consumers("conv1") == []
    g.remove("conv1")
    assert "conv1" not in g
    with pytest.raises(GraphError, match="still read by"):
        g.remove("conv2")
    # outputs follow replacements
    s = g.add_op("sigmoid", ["conv2"], name="s")
    g.replace_all_uses("relu", s)
    assert g.outputs == ["s"]
    with pytest.raises(GraphError, match="graph output"):
        g.remove("s")


def test_replace_all_uses_skips_cycles():
    g = small_graph()
    # new = f(old): f itself keeps reading old
    n = g.add_op("sigmoid", ["conv1"], name="n")
    g.replace_all_uses("conv1", n)
    assert g.node("n").inputs == ["conv1"] and g.node("relu").inputs == ["n"]


def test_replace_with_other_type_reinfers_downstream():
    g = Graph()
    x = g.add_input("x", (1, 4, 6, 6))
    y = g.add_input("y", (1, 4, 2, 2))
    p = g.add_op("max_pool2d", [x], {"pool_size": 2, "strides": 2}, name="p")
    r = g.add_op("relu", [p], name="r")
    f = g.add_op("flatten", [r], name="f")
    g.replace_all_uses(p, y)
    assert g.node(r).type.shape == (1, 4, 2, 2)
    assert g.node(f).type.shape == (1, 16)
    assert g.nx_graph.edges[r, f]["type"].shape == (1, 4, 2, 2)


def test_set_attrs_reinfers_and_validates():
    g = small_graph()
    g.set_attrs("conv1", {"strides": 1})
    assert g.node("relu").type.shape == (1, 4, 8, 8)
    with pytest.raises(GraphError, match="'strides'"):
        g.set_attrs("conv1", {"strides": 0})
    assert g.node("conv1").attrs["strides"] == (1, 1)  # unchanged after a failure


def test_set_inputs_rejects_cycles():
    g = small_graph()
    with pytest.raises(GraphError, match="cycle"):
        g.set_inputs("conv1", ["relu", "w"])
    assert g.node("conv1").inputs == ["data", "w"]


def test_copy_is_independent_but_shares_arrays():
    g = small_graph()
    h = g.copy()
    h.set_attrs("conv1", {"strides": 1})
    h.add_op("relu", ["relu"], name="extra")
    assert g.node("conv1").attrs["strides"] == (2, 2)
    assert "extra" not in g
    assert h.node("w").value is g.node("w").value
    assert h.add_op("relu", ["data"]) == "relu_1"  # insertion counter continues


def test_summary_and_text():
    g = small_graph()
    s = g.summary()
    assert "conv2d x1" in s and "relu x1" in s
    assert f"{g.macs():,}" in s
    assert "108" in s  # parameters
    assert "%conv1 = conv2d(%data, %w) {strides=(2, 2), padding=(1, 1, 1, 1)} : float32[1,4,4,4]" in s
    assert "return %relu" in str(g)
    assert "%w = const : float32[4,3,3,3]" in g.text(show_consts=True)


def test_to_dot():
    dot = small_graph().to_dot()
    assert dot.startswith('digraph "small"')
    assert '"conv1" -> "relu"' in dot and '"w"' not in dot
    assert '"w" -> "conv1"' in small_graph().to_dot(show_consts=True)


def test_set_const_keeps_consumers():
    g = small_graph()
    g.set_const("conv1", np.zeros((1, 4, 4, 4), "float32"))
    assert g.node("conv1").kind == "const" and g.consumers("conv1") == ["relu"]
    assert g.consumers("data") == []
    with pytest.raises(ShapeError):
        g.set_const("conv1", np.zeros((1,), "float32"))


def test_mark_output_unknown():
    with pytest.raises(GraphError, match="no such node"):
        Graph().mark_output("x")


def test_validate_catches_stale_types():
    g = small_graph()
    g.validate()
    g.node("conv1").attrs["strides"] = (1, 1)  # mutated behind the graph's back
    with pytest.raises(GraphError, match="stored type"):
        g.validate()


def test_passes_and_zoo_graphs_validate():
    from minitvm.graph import get_model
    from minitvm.graph.passes import fold_constant, simplify_inference
    g, _ = get_model("resnet18", image_size=32, init=False)
    g.validate()
    simplify_inference(g).validate()
    fold_constant(g).validate()
