"""annotate: which nodes run int8, scale roots, statistics nodes, quantize points."""
import numpy as np

from minitvm.graph import Graph, run_reference
from minitvm.graph.quantize import annotate, calibrate, qconfig, realize

from quant_helpers import build_small_graph


def test_first_conv_skipped_by_default(small_graph):
    ann = annotate(small_graph)
    assert "conv0" in ann.skipped and "conv0" not in ann.int8
    assert "fc" in ann.skipped  # skip_dense_layer
    assert ann.anchors == ["conv1", "conv2"]
    assert {"relu0", "pool0"}.isdisjoint(ann.int8)  # the float conv's chain stays float
    assert {"conv1", "relu1", "conv2", "add", "relu2"} <= ann.int8
    assert {"gap", "flat", "fc"}.isdisjoint(ann.int8)
    assert ann.quantize_points == ["pool0"]  # read by conv1 and by the residual add
    assert ann.roots["relu1"] == "conv1" and ann.roots["relu2"] == "add"
    assert ann.stat_node["conv1"] == "relu1" and ann.stat_node["add"] == "relu2"
    assert ann.stat_node["conv2"] == "conv2"  # its consumer is the add, not a relu
    assert "skip" in ann.summary()


def test_nothing_skipped():
    g = build_small_graph()
    with qconfig(skip_conv_layers=[], skip_dense_layer=False):
        ann = annotate(g)
    assert ann.anchors == ["conv0", "conv1", "conv2", "fc"]
    assert ann.quantize_points == ["data", "flat"]
    assert {"relu0", "pool0"} <= ann.int8


def test_skip_other_layers_and_config_argument():
    g = build_small_graph()
    ann = annotate(g, qconfig(skip_conv_layers=[1]))
    assert ann.anchors == ["conv0", "conv2"] and "conv1" in ann.skipped
    assert "relu1" not in ann.int8 and ann.quantize_points == ["data", "relu1"]


def test_batch_norm_folded_first():
    g = build_small_graph(with_bn=True)
    ann = annotate(g)
    assert not ann.graph.op_nodes("batch_norm")
    assert ann.anchors == ["conv1", "conv2"]
    assert len(g.op_nodes("batch_norm")) == 3  # the caller's graph is untouched


def test_concat_group():
    g = build_small_graph(concat=True)
    with qconfig(skip_conv_layers=[]):
        ann = annotate(g)
    assert "cat" in ann.int8
    # relu2 also feeds conv3, so add cannot take the concat's scale: no group
    assert "cat" not in ann.concat_groups


def _inception_like():
    rng = np.random.default_rng(0)
    g = Graph("incept")
    x = g.add_input("data", (1, 4, 8, 8))
    outs = []
    for i, k in enumerate((1, 3)):
        w = g.add_const(f"b{i}.weight", (rng.standard_normal((4, 4, k, k)) * 0.3).astype("float32"))
        y = g.add_op("conv2d", [x, w], {"padding": k // 2}, name=f"b{i}")
        outs.append(g.add_op("relu", [y], name=f"b{i}_relu"))
    c = g.add_op("concatenate", outs, name="cat")
    g.mark_output(g.add_op("global_avg_pool2d", [c], name="gap"))
    return g


def test_concat_inputs_take_the_concat_scale():
    g = _inception_like()
    data = [{"data": np.random.default_rng(1).standard_normal((1, 4, 8, 8)).astype("float32")}]
    with qconfig(skip_conv_layers=[], calibrate_mode="max"):
        ann = annotate(g)
        assert ann.concat_groups == {"cat": ["b0", "b1"]}
        cal = calibrate(ann, data)
        assert cal.scales["b0"] == cal.scales["b1"] == cal.scales["cat"]
        q = realize(cal)
    assert q.node("cat").op == "concatenate" and q.node("cat").type.dtype == "int8"
    ref, out = run_reference(g, data[0])[0], run_reference(q, data[0])[0]
    assert np.abs(ref - out).max() < 2 * cal.scales["cat"]


def _dcn_graph():
    """conv -> relu -> (offset conv) -> deformable conv -> batch norm -> relu, float."""
    rng = np.random.default_rng(4)
    g = Graph("dcn")
    x = g.add_input("data", (2, 8, 9, 9))
    c = g.add_op("conv2d", [x, g.add_const("w0", rng.standard_normal((16, 8, 3, 3)).astype("float32"))],
                 {"padding": (1, 1, 1, 1)}, name="conv0")
    r = g.add_op("relu", [c], name="relu0")
    off = g.add_op("conv2d", [r, g.add_const("wo", (rng.standard_normal((18, 16, 3, 3)) * 0.01).astype("float32"))],
                   {"padding": (1, 1, 1, 1)}, name="offset")
    d = g.add_op("deformable_conv2d", [r, off, g.add_const("wd", rng.standard_normal((16, 16, 3, 3)).astype("float32"))],
                 {"padding": (1, 1, 1, 1)}, name="dcn")
    bn = [g.add_const(f"bn{i}", v.astype("float32")) for i, v in
          enumerate((rng.uniform(0.5, 2, 16), rng.standard_normal(16), rng.standard_normal(16), rng.uniform(0.5, 2, 16)))]
    b = g.add_op("batch_norm", [d] + bn, {"epsilon": 1e-5}, name="bn")
    g.mark_output(g.add_op("relu", [b], name="relu1"))
    return g


def test_a_deformable_conv_is_an_int8_anchor_with_float_offsets_and_its_batch_norm_folded():
    from minitvm.graph.quantize import quantize_graph
    g = _dcn_graph()
    with qconfig(skip_conv_layers=[]):
        ann = annotate(g)
    assert ann.anchors == ["conv0", "offset", "dcn"]
    assert not ann.graph.op_nodes("batch_norm") and len(ann.graph.node("dcn").inputs) == 4   # + folded bias
    rng = np.random.default_rng(5)
    data = [{"data": rng.standard_normal((2, 8, 9, 9)).astype("float32")} for _ in range(2)]
    with qconfig(skip_conv_layers=[], calibrate_mode="max"):
        q = quantize_graph(g, data)
    (d,) = q.op_nodes("deformable_conv2d")
    assert [q.node(i).type.dtype for i in d.inputs] == ["int8", "float32", "int8", "int32"]
    want = run_reference(g, data[0])[0]
    got = run_reference(q, data[0])[0]
    assert np.linalg.norm(got - want) <= 0.05 * np.linalg.norm(want)
