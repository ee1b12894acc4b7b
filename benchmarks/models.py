"""Whole models on the GPU: minitvm (default schedules, CUDA graph) vs PyTorch in the same run.

ms per image at batch 1 and 16 for fp32 ResNet-50 (and any zoo model given), beside PyTorch
fp32 eager and fp16 channels-last replayed from a CUDA graph; plus minitvm's whole-model
build time.

    PYTHONPATH=. python3 benchmarks/models.py [--models resnet50,resnet18] [--batches 1,16]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from peaks import torch_time  # noqa: E402

from minitvm.graph import zoo  # noqa: E402
from minitvm.graph.build import build  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402

TORCHVISION = {"resnet50": "resnet50", "resnet18": "resnet18", "resnet101": "resnet101", "vgg19": "vgg19",
               "resnext50_32x4d": "resnext50_32x4d", "inception_v3": "inception_v3"}


def torch_times(name, batch, size):
    """(fp32 eager, fp16 CUDA-graph) seconds per batch, or (None, None)."""
    try:
        import torch
        import torchvision
    except ImportError:
        return None, None
    if name not in TORCHVISION:
        return None, None
    kwargs = {"init_weights": False, "aux_logits": False} if name == "inception_v3" else {}
    net = getattr(torchvision.models, TORCHVISION[name])(**kwargs).cuda().eval()
    x = torch.randn(batch, 3, size, size, device="cuda")

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        t32 = torch_time(lambda: net(x))
        net16 = net.half().to(memory_format=torch.channels_last)
        x16 = x.half().to(memory_format=torch.channels_last)
        for _ in range(3):
            net16(x16)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                net16(x16)
        torch.cuda.current_stream().wait_stream(s)
        with torch.cuda.graph(g):
            net16(x16)
        t16 = torch_time(g.replay)
    return t32, t16


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet50")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--dtypes", default="float32,int8")
    p.add_argument("--tuning-log", default=None, help="apply the best configs of this log to int8 convs")
    p.add_argument("--int8-first-conv", action="store_true", help="int8 rows quantize the first conv too")
    args = p.parse_args()
    if cuda.device_count() == 0:
        print("no CUDA device here:", cuda.unavailable_reason())
        return
    import contextlib
    from minitvm.cli import quantize_for_target
    rows = []
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            fgraph, _ = zoo.get_model(name, batch=batch)
            size = fgraph.node(fgraph.topo_order()[0]).type.shape[-1]
            t32, t16 = torch_times(name, batch, size)
            for dtype in args.dtypes.split(","):
                graph = fgraph
                if dtype == "int8":
                    graph = quantize_for_target(fgraph, np.random.default_rng(0), 0, args.int8_first_conv,
                                                target="cuda")
                ctx = contextlib.nullcontext()
                if dtype == "int8" and args.tuning_log:
                    from minitvm.autotune import ApplyHistoryBest
                    ctx = ApplyHistoryBest(args.tuning_log)
                t0 = time.perf_counter()
                with ctx:
                    model = build(graph, "cuda")
                build_s = time.perf_counter() - t0
                x = np.random.default_rng(0).standard_normal(tuple(graph.node(model.input_names[0]).type.shape))
                model.run({model.input_names[0]: x.astype("float32")})
                t = model.benchmark(number=10, repeat=5).median
                rows.append((name, batch, dtype, t, t32, t16, build_s, len(model.steps), fgraph.macs()))
                print(f"{name} b{batch} {dtype}: {t * 1e3 / batch:.3f} ms/image, build {build_s:.1f} s", flush=True)
    from minitvm.autotune import tophub
    shipped = " or shipped (tophub)" if tophub.enabled() else ""
    print(f"\nwhole models on {cuda.device_name(0)}, ms per image (minitvm: default schedules unless a log{shipped} "
          "gives tuned ones, CUDA graph replay)")
    print(f"{'model':18s} {'bs':>3s} {'dtype':>7s} {'minitvm':>9s} {'TOPS':>7s} {'torch32':>9s} {'torch16 graph':>14s} "
          f"{'build s':>8s} {'kernels':>8s}")
    for name, b, dtype, t, t32, t16, bs, k, macs in rows:
        f = (lambda v: f"{v * 1e3 / b:9.3f}" if v else "      n/a")
        print(f"{name:18s} {b:3d} {dtype:>7s} {t * 1e3 / b:9.3f} {2 * macs / t / 1e12:7.2f} {f(t32)} {f(t16):>14s} "
              f"{bs:8.1f} {k:8d}")


if __name__ == "__main__":
    main()
