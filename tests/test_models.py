"""``minitvm.models``: the int8 recipe each target gets (which layers stay float)."""
import numpy as np
import pytest

from minitvm.graph import zoo
from minitvm.models import int8_recipe, quantize_for_target
from minitvm.target import Target


def _float_ops(graph):
    return sorted({graph.node(n).op for n in graph.topo_order() if graph.node(n).is_op
                   and graph.node(n).op in ("conv2d", "dense") and graph.input_types(n)[0].dtype == "float32"})


@pytest.fixture(scope="module")
def resnet18():
    return zoo.get_model("resnet18", batch=1, image_size=32)[0]


def test_tensor_core_targets_quantize_every_conv_and_dense(resnet18):
    assert int8_recipe(Target("cuda -arch=sm_90")) == {"skip_conv_layers": [], "skip_dense_layer": False}
    q = quantize_for_target(resnet18, np.random.default_rng(0), 0, target="cuda -arch=sm_80")
    assert _float_ops(q) == []
    assert q.op_nodes("fold_kernel_width")


@pytest.mark.parametrize("target", ["cuda -arch=sm_75", "llvm"])
def test_other_targets_keep_the_first_conv_and_the_dense_layers_float(resnet18, target):
    q = quantize_for_target(resnet18, np.random.default_rng(0), 0, target=target)
    assert _float_ops(q) == ["conv2d", "dense"]
    assert len([n for n in q.op_nodes("conv2d") if q.input_types(n.name)[0].dtype == "float32"]) == 1


def test_explicit_choices_override_the_recipe(resnet18):
    q = quantize_for_target(resnet18, np.random.default_rng(0), 0, target="cuda -arch=sm_90", first_conv=False,
                            dense=False)
    assert _float_ops(q) == ["conv2d", "dense"]
    q = quantize_for_target(resnet18, np.random.default_rng(0), 0, target="llvm", first_conv=True, dense=True)
    assert _float_ops(q) == []
