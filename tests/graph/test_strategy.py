"""Op strategies: computes and per-target schedule implementations chosen by condition and priority."""
import numpy as np
import pytest

from minitvm.errors import GraphError
from minitvm.graph import Graph, TensorType
from minitvm.graph.build import lowered_groups
from minitvm.graph.ir import Node
from minitvm.graph.lowering import lower_op
from minitvm.graph.ops import list_ops, strategy
from minitvm.graph.ops.strategy import GENERIC, register_schedule, select_implementation
from minitvm.topi.cpu import conv2d as cpu_conv2d

rng = np.random.default_rng(7)


@pytest.fixture
def scratch_strategies(monkeypatch):
    """Implementations registered in a test are dropped after it."""
    monkeypatch.setattr(strategy, "_IMPLEMENTATIONS", {k: list(v) for k, v in strategy._IMPLEMENTATIONS.items()})


def _two_convs():
    g = Graph("two_convs")
    x = g.add_input("data", (1, 4, 8, 8), "float32")
    w1 = g.add_const("w1", rng.standard_normal((4, 4, 3, 3)).astype("float32"))
    w2 = g.add_const("w2", rng.standard_normal((4, 2, 3, 3)).astype("float32"))
    c1 = g.add_op("conv2d", [x, w1], {"padding": 1}, name="plain")
    c2 = g.add_op("conv2d", [c1, w2], {"padding": 1, "groups": 2}, name="grouped")
    g.mark_output(c2)
    return g


def test_every_float_op_has_a_compute_and_quantized_ops_register_theirs():
    import minitvm.graph.quantize  # noqa: F401  (registers the quantized ops)
    for op in list_ops():
        assert callable(strategy.compute_of(Node(op, "op", TensorType((1,), "float32"), op=op)))


def test_conv2d_implementations_follow_the_int8_packed_condition():
    packed = {"data_layout": "NCHW4c"}
    int8 = [TensorType((1, 1, 8, 8, 4), "int8", "NCHW4c")]
    floats = [TensorType((1, 4, 8, 8), "float32")]
    for kind in ("cuda", "llvm"):
        assert select_implementation("conv2d", kind, packed, int8).name == f"conv2d_NCHWc_int8.{kind}"
        assert select_implementation("conv2d", kind, {"data_layout": "NCHW"}, floats).name == f"conv2d_nchw.{kind}"
    assert select_implementation("conv2d", "cuda -arch=sm_90", packed, int8).name == "conv2d_NCHWc_int8.cuda"


def test_groups_without_an_anchor_schedule_take_the_generic_implementation():
    assert select_implementation(None, "cuda", {}, []).name == "injective.cuda"
    assert select_implementation("relu", "llvm", {}, []).name == "injective.llvm"


def test_a_target_without_schedules_is_named():
    with pytest.raises(GraphError, match="no schedule for target 'metal'"):
        select_implementation("conv2d", "metal", {}, [])


def test_a_higher_priority_implementation_is_chosen_only_where_its_condition_holds(scratch_strategies):
    chosen = []

    def grouped_schedule(out):
        chosen.append(out.op.name)
        return cpu_conv2d.schedule_conv2d_nchw(out)

    register_schedule("conv2d", "llvm", grouped_schedule, "conv2d_grouped.test",
                      condition=lambda attrs, in_types: attrs["groups"] > 1, priority=20)
    g = _two_convs()
    names = {grp.group.anchor: select_implementation("conv2d", "llvm", g.node(grp.group.anchor).attrs,
                                                     g.input_types(grp.group.anchor)).name
             for grp in lowered_groups(g, "llvm")}
    assert names == {"plain": "conv2d_nchw.llvm", "grouped": "conv2d_grouped.test"}
    assert chosen == ["grouped"]
    assert select_implementation("conv2d", "cuda", {"groups": 2}, [TensorType((1, 4, 8, 8), "float32")]).name \
        == "conv2d_nchw.cuda"


def test_equal_priorities_keep_the_first_registered(scratch_strategies):
    register_schedule(GENERIC, "llvm", cpu_conv2d.schedule_conv2d_nchw, "second.test")
    assert select_implementation(None, "llvm", {}, []).name == "injective.llvm"


def test_an_implementation_name_is_registered_once(scratch_strategies):
    with pytest.raises(GraphError, match="already has an implementation 'dense.cuda'"):
        register_schedule("dense", "cuda", cpu_conv2d.schedule_conv2d_nchw, "dense.cuda")


def test_an_op_without_a_compute_is_named():
    node = Node("n1", "op", TensorType((1,), "float32"), op="no_such_op")
    with pytest.raises(GraphError, match="node 'n1': op 'no_such_op' has no compiler lowering yet"):
        lower_op(node, [])
