"""int8 graphs on the GPU: the same bits as on the CPU."""
import numpy as np
import pytest

from minitvm.cli import quantize_for_target
from minitvm.graph import Graph, zoo
from minitvm.graph.build import build
from minitvm.graph.passes.alter_layout import alter_layout
from minitvm.runtime import cuda

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

rng = np.random.default_rng(12)


def test_int8_conv_chain_gpu_equals_cpu_bit_for_bit():
    import minitvm.graph.quantize  # noqa: F401  (registers requantize)
    g = Graph("q")
    x = g.add_input("x", (2, 16, 14, 14), "int8")
    h = x
    for k, (cin, cout) in enumerate(((16, 32), (32, 32), (32, 64))):
        w = g.add_const(f"w{k}", rng.integers(-127, 128, (cout, cin, 3, 3), dtype=np.int8))
        c = g.add_op("conv2d", [h, w], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name=f"c{k}")
        r = g.add_op("requantize", [c], {"multiplier": 1518500250, "shift": 9}, name=f"rq{k}")
        h = g.add_op("relu", [r], name=f"relu{k}")
    g.mark_output(h)
    packed = alter_layout(g)
    xv = rng.integers(-128, 128, (2, 16, 14, 14), dtype=np.int8)
    gpu = build(packed, "cuda").run({"x": xv})[0]
    cpu = build(packed, "llvm").run({"x": xv})[0]
    assert gpu.dtype == np.int8
    np.testing.assert_array_equal(gpu, cpu)


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("resnet50", 64)])
def test_all_int8_zoo_model_gpu_equals_cpu_bit_for_bit(name, size):
    """Every conv and dense in int8: GPU and CPU agree exactly from the quantized input on."""
    from minitvm.graph.quantize import qconfig, quantize_graph
    graph, _ = zoo.get_model(name, batch=2, image_size=size)
    inp = graph.topo_order()[0]
    shape = tuple(graph.node(inp).type.shape)
    calib = [{inp: np.random.default_rng(k).standard_normal(shape).astype("float32")} for k in range(2)]
    with qconfig(calibrate_mode="max", skip_conv_layers=[], skip_dense_layer=False):
        q = alter_layout(quantize_graph(graph, calib))
    x = rng.standard_normal(shape).astype("float32")
    model = build(q, "cuda")
    assert "__dp4a" in model.module.get_source()
    gpu = model.run({inp: x})[0]
    cpu = build(q, "llvm").run({inp: x})[0]
    np.testing.assert_array_equal(gpu, cpu)


def test_quantized_zoo_model_gpu_close_to_cpu():
    """The default recipe keeps the first conv and the classifier in float; their float sums
    differ in order between CPU and GPU, so a value on a rounding edge of the next quantize can
    move by one step: the outputs agree closely, not bit for bit."""
    graph, _ = zoo.get_model("resnet50", batch=1, image_size=64)
    q = quantize_for_target(graph, np.random.default_rng(0), 2)
    inp = q.topo_order()[0]
    x = rng.standard_normal(tuple(q.node(inp).type.shape)).astype("float32")
    gpu = build(q, "cuda").run({inp: x})[0]
    cpu = build(q, "llvm").run({inp: x})[0]
    assert np.linalg.norm(gpu - cpu) <= 0.02 * np.linalg.norm(cpu)
    assert np.argmax(gpu) == np.argmax(cpu)


@pytest.mark.parametrize("name,size,batch", [("resnet50", 64, 2), ("vgg19", 32, 16), ("drn_c_26", 64, 1)])
def test_tensor_core_recipe_gpu_equals_cpu_bit_for_bit(name, size, batch):
    """The recipe of GPUs with int8 tensor cores: the first conv folded onto them, the dense layers
    split-K (batches up to 16): every layer int8, so GPU and CPU agree exactly."""
    graph, _ = zoo.get_model(name, batch=batch, image_size=size)
    q = quantize_for_target(graph, np.random.default_rng(0), 2, target="cuda")
    inp = q.topo_order()[0]
    x = rng.standard_normal(tuple(q.node(inp).type.shape)).astype("float32")
    model = build(q, "cuda")
    summary = model.summary()
    assert "fold_kernel_width" in summary and "[dense_int8_split_k.cuda]" in summary
    np.testing.assert_array_equal(model.run({inp: x})[0], build(q, "llvm").run({inp: x})[0])
