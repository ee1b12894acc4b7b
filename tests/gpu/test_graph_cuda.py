"""Whole models compiled for CUDA agree with the same models compiled for the CPU."""
import numpy as np
import pytest

from minitvm.graph import zoo
from minitvm.graph.build import build
from minitvm.graph.reference import run_reference
from minitvm.runtime import cuda

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]


@pytest.mark.parametrize("name,size,batch", [("resnet18", 64, 2), ("resnet50", 64, 1), ("vgg19", 32, 1),
                                             ("inception_v3", 75, 1), ("resnext50_32x4d", 64, 1),
                                             ("drn_c_26", 64, 1), ("dcn_resnet101", 64, 1)])
def test_zoo_model_fp32_cuda_matches_cpu(name, size, batch):
    graph, _ = zoo.get_model(name, batch=batch, image_size=size)
    x = np.random.default_rng(0).standard_normal(tuple(graph.node(graph.topo_order()[0]).type.shape))
    x = x.astype("float32")
    inp = graph.topo_order()[0]
    gpu = build(graph, "cuda").run({inp: x})[0]
    cpu = build(graph, "llvm").run({inp: x})[0]
    ref = run_reference(graph, {inp: x})[0]
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 1e-4
    assert np.linalg.norm(gpu - ref) / np.linalg.norm(ref) < 1e-4


def test_cuda_graph_replay_is_repeatable_and_takes_new_inputs():
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    model = build(graph, "cuda")
    inp = model.input_names[0]
    rng = np.random.default_rng(1)
    x1, x2 = (rng.standard_normal((1, 3, 32, 32)).astype("float32") for _ in range(2))
    a = model.run({inp: x1})[0]
    b = model.run({inp: x2})[0]
    a2 = model.run({inp: x1})[0]
    np.testing.assert_array_equal(a, a2)
    assert not np.allclose(a, b)
    assert model.peak_bytes > 0
