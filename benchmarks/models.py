"""Whole seed models on the GPU: minitvm int8 / fp32 against PyTorch on the same graph and weights.

For each model and batch: minitvm (CUDA-graph replay) ms per image, and PyTorch running the very
same float graph and weights (``torch_graph.GraphModule``: one torch op per graph node) in fp32
eager and in fp16 channels-last replayed from a CUDA graph, all in the same run. The torch
interpreter's fp32 output is checked against minitvm's fp32 output where both are built.

    PYTHONPATH=. python3 benchmarks/models.py [--models all|resnet50,vgg19,...] [--batches 1,16]
        [--dtypes int8,float32] [--jobs 8] [--profile 8] [--json out.json] [--torch-compile]
    python3 benchmarks/models.py --plot out.json [--png figure1.png]     # the chart (matplotlib)

``--jobs N`` builds the models in N processes first (each saves a ``.mtvm`` artifact; the
timing process only loads them), so a cold kernel cache costs one model's build, not twelve.
``--profile N`` prints each model's N slowest kernels (``CompiledModel.profile``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

SEED_MODELS = ("resnet50", "vgg19", "inception_v3", "drn_c_26", "resnext50_32x4d", "dcn_resnet101")
LABELS = {"resnet50": "ResNet-50", "vgg19": "VGG-19", "inception_v3": "Inception V3", "drn_c_26": "DRN-C-26",
          "resnext50_32x4d": "ResNeXt-50", "dcn_resnet101": "DCN-ResNet-101"}


def _graph(name, batch, dtype, recipe=None):
    from minitvm.graph import zoo
    from minitvm.models import quantize_for_target
    fgraph, _ = zoo.get_model(name, batch=batch)
    if dtype == "int8":
        return fgraph, quantize_for_target(fgraph, np.random.default_rng(0), 0, target="cuda", **(recipe or {}))
    return fgraph, fgraph


def _build_job(job):
    """Build one (model, batch, dtype) and save it; ``(key, path or None, build seconds, error)``."""
    name, batch, dtype, recipe, tuning_log, folder = job
    key = f"{name}-b{batch}-{dtype}"
    try:
        import contextlib
        from minitvm.graph.build import build
        _, graph = _graph(name, batch, dtype, recipe)
        ctx = contextlib.nullcontext()
        if tuning_log:
            from minitvm.autotune import ApplyHistoryBest
            ctx = ApplyHistoryBest(tuning_log)
        t0 = time.perf_counter()
        with ctx:
            model = build(graph, "cuda")
        seconds = time.perf_counter() - t0
        return key, model.save(os.path.join(folder, key + ".mtvm")), seconds, None
    except Exception as e:   # reported in the table, the other models go on
        return key, None, 0.0, f"{type(e).__name__}: {e}"


def torch_peer(fgraph, x, fp32_check=None):
    """(fp32 eager s, fp16 channels-last CUDA-graph s, max relative error vs ``fp32_check``) of the
    float graph run in PyTorch with its own weights, per batch."""
    try:
        import torch
        from peaks import torch_time
        from torch_graph import GraphModule
    except ImportError:
        return None, None, None
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    net = GraphModule(fgraph).cuda().eval()
    xt = torch.from_numpy(x).cuda()
    with torch.no_grad():
        (y,) = net(xt)
        err = None
        if fp32_check is not None:
            ref = fp32_check.astype(np.float64)
            err = float(np.abs(y.double().cpu().numpy() - ref).max() / max(np.abs(ref).max(), 1e-30))
        t32 = torch_time(lambda: net(xt), number=10, graph=False)
        net16 = net.half().to(memory_format=torch.channels_last)
        x16 = xt.half().to(memory_format=torch.channels_last)
        t16 = torch_time(lambda: net16(x16), number=10, graph=True)
    return t32, t16, err


def torch_compiled(fgraph, x):
    """torch.compile(mode="max-autotune") fp16 channels-last seconds per batch, or None."""
    try:
        import torch
        from peaks import torch_time
        from torch_graph import GraphModule
        net = GraphModule(fgraph).cuda().eval().half().to(memory_format=torch.channels_last)
        x16 = torch.from_numpy(x).cuda().half().to(memory_format=torch.channels_last)
        fn = torch.compile(net, mode="max-autotune")
        with torch.no_grad():
            fn(x16)
            return torch_time(lambda: fn(x16), number=10, graph=False)
    except Exception as e:   # a peer that fails to compile is reported, not fatal
        print(f"  torch.compile failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
        return None


def measure(args, built):
    """Rows of measurements, one per (model, batch, dtype), in the order asked."""
    import minitvm
    from minitvm.graph.build import build
    from minitvm.graph.profile import format_profile
    rows = []
    for name in args.models:
        for batch in args.batches:
            fgraph, _ = _graph(name, batch, "float32")
            shape = tuple(fgraph.node("data").type.shape)
            x = np.random.default_rng(0).standard_normal(shape).astype("float32")
            outs, results = {}, []
            for dtype in args.dtypes:
                key = f"{name}-b{batch}-{dtype}"
                path, build_s, error = built.get(key, (None, 0.0, None))
                model = None
                if path:
                    try:
                        model = minitvm.load(path)
                    except Exception as e:
                        print(f"  {key}: artifact did not load ({type(e).__name__}: {e}); building here", flush=True)
                if model is None and error is None:
                    _, graph = _graph(name, batch, dtype, args.recipe)
                    t0 = time.perf_counter()
                    model = build(graph, "cuda")
                    build_s = time.perf_counter() - t0
                if model is None:
                    print(f"{key}: FAILED {error}", flush=True)
                    results.append(dict(model=name, batch=batch, dtype=dtype, error=error))
                    continue
                (outs[dtype],) = model.run({"data": x})
                t = model.benchmark(number=10, repeat=5).median
                row = dict(model=name, batch=batch, dtype=dtype, ms_per_image=t * 1e3 / batch,
                           tops=2 * fgraph.macs() / t / 1e12, build_s=build_s, kernels=len(model.steps))
                if args.profile:
                    prof = model.profile()
                    row["kernel_sum_ms"] = sum(p.seconds for p in prof) * 1e3
                    print(f"--- {key}: replay {t * 1e3:.3f} ms, kernels alone {row['kernel_sum_ms']:.3f} ms")
                    print("\n".join(format_profile(prof, t).splitlines()[:args.profile + 1]), flush=True)
                results.append(row)
                print(f"{key}: {row['ms_per_image']:.3f} ms/image, build {build_s:.1f} s", flush=True)
            t32, t16, err = torch_peer(fgraph, x, outs.get("float32"))
            tc = torch_compiled(fgraph, x) if args.torch_compile else None
            for r in results:
                r.update(torch_fp32_ms=t32 and t32 * 1e3 / batch, torch_fp16_graph_ms=t16 and t16 * 1e3 / batch,
                         torch_compile_fp16_ms=tc and tc * 1e3 / batch, torch_fp32_rel_err=err)
            rows.extend(results)
    return rows


def format_rows(rows, device):
    """The results table (markdown)."""
    f = (lambda v: f"{v:.3f}" if v else "n/a")
    lines = [f"whole models on {device}, ms per image (CUDA-graph replay; PyTorch on the same graph and weights)", "",
             "| model | batch | dtype | minitvm | TOPS | torch fp32 eager | torch fp16 graph | torch.compile fp16 "
             "| vs torch fp16 | build s | kernels |", "| --- " * 11 + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {LABELS.get(r['model'], r['model'])} | {r['batch']} | {r['dtype']} | failed: "
                         f"{r['error'][:80]} |" + " |" * 7)
            continue
        ratio = f"{r['torch_fp16_graph_ms'] / r['ms_per_image']:.2f}x" if r.get("torch_fp16_graph_ms") else "n/a"
        lines.append(f"| {LABELS.get(r['model'], r['model'])} | {r['batch']} | {r['dtype']} | {r['ms_per_image']:.3f} "
                     f"| {r['tops']:.1f} | {f(r.get('torch_fp32_ms'))} | {f(r.get('torch_fp16_graph_ms'))} "
                     f"| {f(r.get('torch_compile_fp16_ms'))} | {ratio} | {r['build_s']:.1f} | {r['kernels']} |")
    errs = [r["torch_fp32_rel_err"] for r in rows if r.get("torch_fp32_rel_err") is not None]
    if errs:
        lines.append(f"\ntorch interpreter fp32 vs minitvm fp32: max relative error {max(errs):.2e}")
    return "\n".join(lines)


def plot(path, png):
    """A bar chart in the manner of the seed's Figure 1: ms per image per model and framework,
    one panel per batch size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = json.load(open(path))
    rows = [r for r in data["rows"] if "error" not in r]
    batches = sorted({r["batch"] for r in rows})
    series = [("minitvm int8", lambda r: r["ms_per_image"] if r["dtype"] == "int8" else None),
              ("minitvm fp32", lambda r: r["ms_per_image"] if r["dtype"] == "float32" else None),
              ("PyTorch fp32 eager", lambda r: r.get("torch_fp32_ms")),
              ("PyTorch fp16 + CUDA graph", lambda r: r.get("torch_fp16_graph_ms"))]
    fig, axes = plt.subplots(1, len(batches), figsize=(7 * len(batches), 4.5), squeeze=False)
    for ax, b in zip(axes[0], batches):
        models = [m for m in SEED_MODELS if any(r["model"] == m and r["batch"] == b for r in rows)]
        width = 0.8 / len(series)
        for i, (label, get) in enumerate(series):
            vals = []
            for m in models:
                got = [get(r) for r in rows if r["model"] == m and r["batch"] == b and get(r)]
                vals.append(got[0] if got else 0.0)
            if any(vals):
                ax.bar(np.arange(len(models)) + i * width, vals, width, label=label)
        ax.set_xticks(np.arange(len(models)) + 0.4 - width / 2)
        ax.set_xticklabels([LABELS[m] for m in models], rotation=20)
        ax.set_ylabel("ms per image")
        ax.set_yscale("log")
        ax.set_title(f"batch {b} ({data['device']}, {data['date']})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    print(f"wrote {png}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="all", help="comma-separated zoo names, or all six seed models")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--dtypes", default="int8", help="int8, float32 or both")
    p.add_argument("--tuning-log", default=None, help="apply the best configs of this log")
    p.add_argument("--float-first-conv", action="store_true", help="int8 rows keep the first conv float")
    p.add_argument("--float-dense", action="store_true", help="int8 rows keep the dense layers float")
    p.add_argument("--jobs", type=int, default=0, help="build in this many processes first")
    p.add_argument("--profile", type=int, default=0, help="print each model's N slowest kernels")
    p.add_argument("--torch-compile", action="store_true", help="also time torch.compile(max-autotune) fp16")
    p.add_argument("--artifacts", default=None, help="folder of the built .mtvm files (default: a temporary one); "
                   "a later run with the same folder loads what is there instead of building")
    p.add_argument("--build-only", action="store_true", help="build (with --jobs) into --artifacts and stop")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--plot", default=None, help="draw the chart of this JSON file and exit")
    p.add_argument("--png", default="figure1.png")
    args = p.parse_args()
    if args.plot:
        return plot(args.plot, args.png)
    from minitvm.runtime import cuda
    if cuda.device_count() == 0:
        print("no CUDA device here:", cuda.unavailable_reason())
        sys.exit(2)
    args.models = list(SEED_MODELS) if args.models == "all" else args.models.split(",")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.dtypes = args.dtypes.split(",")
    args.recipe = {k: False for k, flag in (("first_conv", args.float_first_conv), ("dense", args.float_dense)) if flag}
    folder = args.artifacts or tempfile.mkdtemp(prefix="minitvm-models-")
    os.makedirs(folder, exist_ok=True)
    keys = [(m, b, d) for m in args.models for b in args.batches for d in args.dtypes]
    built = {f"{m}-b{b}-{d}": (os.path.join(folder, f"{m}-b{b}-{d}.mtvm"), 0.0, None) for m, b, d in keys
             if os.path.exists(os.path.join(folder, f"{m}-b{b}-{d}.mtvm"))}
    if args.jobs:
        jobs = [(m, b, d, args.recipe, args.tuning_log, folder) for m, b, d in keys
                if f"{m}-b{b}-{d}" not in built]
        t0 = time.perf_counter()
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for key, path, seconds, error in pool.map(_build_job, jobs):
                built[key] = (path, seconds, error)
                print(f"built {key} in {seconds:.1f} s" + (f" FAILED {error}" if error else ""), flush=True)
        print(f"parallel builds: {time.perf_counter() - t0:.1f} s", flush=True)
        with open(os.path.join(folder, "build_seconds.json"), "w") as fh:
            json.dump({k: v[1] for k, v in built.items()}, fh)
    if args.build_only:
        return
    seconds = os.path.join(folder, "build_seconds.json")
    if os.path.exists(seconds):
        for k, s in json.load(open(seconds)).items():
            if k in built:
                built[k] = (built[k][0], s, built[k][2])
    rows = measure(args, built)
    device = cuda.device_name(0)
    print()
    print(format_rows(rows, device))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": device, "date": time.strftime("%Y-%m-%d"), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
