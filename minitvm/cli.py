"""The ``minitvm`` command."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

from .errors import MiniTVMError
from .models import _is_quantized, _load_model, _pick_target, quantize_for_target  # noqa: F401


def demo(args) -> int:
    """Compile, check and time a matrix product on the GPU (CUDA) or the CPU (LLVM)."""
    from . import nd, te
    from .driver import build
    from .topi import cpu, cuda
    from .topi.nn import matmul

    target = _pick_target(args.target)
    n = args.size
    A = te.placeholder((n, n), "float32", "A")
    B = te.placeholder((n, n), "float32", "B")
    C = matmul(A, B)
    s = (cuda if target.kind == "cuda" else cpu).schedule_matmul(C)
    t0 = time.perf_counter()
    mod = build(s, [A, B, C], target=target)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    dev = nd.cuda(0) if target.kind == "cuda" else nd.cpu(0)
    ta, tb = nd.array(a, dev), nd.array(b, dev)
    tc = nd.array(np.full((n, n), np.nan, np.float32), dev)
    mod(ta, tb, tc)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.linalg.norm(tc.numpy() - ref) / np.linalg.norm(ref))
    t = mod.time_evaluator(mod.entry_name, number=args.number, repeat=3)(ta, tb, tc).median
    print(f"minitvm {target.kind}: float32 matmul {n}x{n}x{n}")
    print(f"  build     {build_s * 1e3:8.1f} ms (lower + codegen + compile)")
    print(f"  run       {t * 1e3:8.3f} ms   {2 * n ** 3 / t / 1e9:8.1f} GFLOP/s")
    print(f"  rel. error vs float64 numpy: {err:.2e}")
    return 0 if err < 1e-4 else 1


def _prepare(graph, dtype: str, rng, n_images: int, first_conv=None, target=None):
    """The graph to compile for ``target``: a pre-quantized model gets its int8 layers laid out
    for the int8 templates; a float one is quantized first when ``dtype`` is int8."""
    from .graph.passes.alter_layout import alter_layout
    if _is_quantized(graph):
        print("pre-quantized model: its int8 layers run as they are, laid out for the int8 templates")
        return alter_layout(graph, target=target)
    if dtype == "int8":
        return quantize_for_target(graph, rng, n_images, first_conv, target=target)
    return graph


def info(args) -> int:
    """Print a model's graph summary: ops, MACs, parameters."""
    if args.model is None:
        from .graph import zoo
        print("zoo models: " + ", ".join(zoo.list_models()))
        return 0
    graph = _load_model(args.model, args.batch, args.image_size)
    print(graph.summary())
    return 0


def run(args) -> int:
    """Compile a model (with a progress display) and run it on random or given inputs."""
    from .graph.build import build
    target = _pick_target(args.target)
    graph = _load_model(args.model, args.batch, args.image_size)
    rng = np.random.default_rng(args.seed)
    graph = _prepare(graph, args.dtype, rng, args.calibration_images, args.int8_first_conv, target)
    t0 = time.perf_counter()

    def progress(done, total):
        bar = "#" * int(30 * done / total)
        print(f"\rcompiling {args.model} for {target.kind}: [{bar:30s}] {done}/{total} kernels", end="", flush=True)

    show = progress if sys.stdout.isatty() or args.progress else None
    from .autotune import ApplyHistoryBest, FallbackConfigWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FallbackConfigWarning)
        if args.tuning_log:
            with ApplyHistoryBest(args.tuning_log):
                model = build(graph, target=target, progress=show, tactics=args.tactics)
        else:
            model = build(graph, target=target, progress=show, tactics=args.tactics)
    for w in caught:
        if not issubclass(w.category, FallbackConfigWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    untuned = sum(issubclass(w.category, FallbackConfigWarning) for w in caught)
    print(f"\ncompiled in {time.perf_counter() - t0:.1f} s: {len(model.steps)} kernels")
    if untuned:
        print(f"{untuned} kernel workloads use their template's default config (none in "
              f"{args.tuning_log or 'a tuning log'}); 'minitvm tune' finds faster ones")
    inputs = {}
    for name in model.input_names:
        t = graph.node(name).type
        if args.input:
            inputs[name] = np.load(args.input).astype(t.dtype)
        else:
            inputs[name] = rng.standard_normal(tuple(t.shape)).astype(t.dtype)
    outs = model.run(inputs)
    t = model.benchmark(number=args.number, repeat=3).median
    batch = graph.node(model.input_names[0]).type.shape[0]
    print(f"latency {t * 1e3:.3f} ms per batch of {batch} ({t * 1e3 / batch:.3f} ms per image) on {target.kind}")
    if args.profile:
        from .graph.profile import format_profile
        print(format_profile(model.profile(number=args.number), replay_seconds=t))
    print(f"memory: activations {model.peak_bytes / 2**20:.1f} MiB (planned), weights {model.weight_bytes / 2**20:.1f} MiB")
    for name, o in zip(model.output_names, outs):
        top = np.argsort(o.reshape(o.shape[0], -1)[0])[::-1][:5]
        print(f"output {name}: shape {list(o.shape)}, mean {o.mean():.4g}, std {o.std():.4g}, "
              f"top-5 of image 0: {top.tolist()}")
    return 0


def tune(args) -> int:
    """Extract a model's tunable kernels and tune them on the GPU into a JSON-lines log."""
    from .autotune.measure import LocalBuilder, LocalRunner, measure_option
    from .graph.tune import extract_tasks, tune_graph
    from .runtime import cuda
    graph = _load_model(args.model, args.batch, args.image_size)
    # the kernels' shapes do not depend on the scales: no calibration needed to find them
    target = _pick_target("cuda")   # the present GPU, else sm_90: the layouts its templates read
    graph = _prepare(graph, args.dtype, np.random.default_rng(args.seed), 0, args.int8_first_conv, target)
    tasks = extract_tasks(graph, "cuda", counts=True)
    print(f"{args.model} ({args.dtype}, batch {args.batch}): {len(tasks)} tunable tasks, "
          f"{sum(n for _, n in tasks)} kernels")
    for task, n in tasks:
        print(f"  {n:3d} x {task.name}{task.args[:2]}")
    if args.list:
        return 0
    if not args.log:
        print("minitvm tune: give --log PATH to tune (or --list to only list the tasks)", file=sys.stderr)
        return 2
    missing = [path for path in args.history if not os.path.exists(path)]
    if missing:
        print(f"minitvm tune: --history {missing[0]}: no such file", file=sys.stderr)
        return 2
    timing = dict(min_repeat_ms=10.0, check_correctness=not args.no_check)
    if args.scheduler or args.gpus:   # measure on a Dask cluster's GPU workers (autotune/dask_runner.py)
        from .autotune.dask_runner import DaskBuilder, DaskRunner
        runner = DaskRunner(args.scheduler, **timing) if args.scheduler else DaskRunner.local(args.gpus, **timing)
        option = measure_option(DaskBuilder(runner.client, n_parallel=args.n_parallel), runner)
    elif cuda.device_count() == 0:
        print(f"minitvm tune: tuning times candidates on a CUDA GPU, and none is usable here "
              f"({cuda.unavailable_reason()})", file=sys.stderr)
        return 1
    else:
        option = measure_option(LocalBuilder(n_parallel=args.n_parallel), LocalRunner(**timing))
    t0 = time.perf_counter()
    with option:
        results = tune_graph(graph, args.log, "cuda", n_trial=args.trials, tuner=args.tuner, measure_option=option,
                             early_stopping=args.early_stopping, seed=args.seed, history=args.history)
    weights = {t.workload: n for t, n in tasks}
    total = sum(weights[t.workload] * c for t, c in results)
    print(f"tuned {len(results)} tasks in {time.perf_counter() - t0:.0f} s; best configs summed over the model's "
          f"kernels: {total * 1e3:.3f} ms; log: {args.log}")
    print(f"use it: minitvm run {args.model} --dtype {args.dtype} --batch {args.batch} --tuning-log {args.log}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``minitvm`` command."""
    from .autotune import TUNERS
    p = argparse.ArgumentParser(prog="minitvm", description=__doc__)
    from .graph import zoo
    from .version import __version__
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p.add_argument("--version", action="version", version=f"minitvm {__version__}")
    models_help = "zoo model name (" + ", ".join(zoo.list_models()) + ") or .onnx path"
    sub = p.add_subparsers(dest="cmd")
    d = sub.add_parser("demo", help="compile, check and time a matmul (GPU if present, else CPU)")
    d.add_argument("--target", default="auto", choices=["auto", "cuda", "llvm"])
    d.add_argument("--size", type=int, default=1024)
    d.add_argument("--number", type=int, default=10)
    r = sub.add_parser("run", help="compile a model (zoo name or .onnx file) and run it")
    r.add_argument("model", help=models_help)
    r.add_argument("--target", default="auto", choices=["auto", "cuda", "llvm"])
    r.add_argument("--batch", type=int, default=1)
    r.add_argument("--image-size", type=int, default=None)
    r.add_argument("--dtype", default="float32", choices=["float32", "int8"],
                   help="int8: quantize (max calibration on random images) and run the dp4a kernels")
    r.add_argument("--calibration-images", type=int, default=4)
    r.add_argument("--int8-first-conv", action="store_const", const=True, default=None,
                   help="quantize the first conv too (the default on GPUs with int8 tensor cores, where it "
                        "runs folded onto them; elsewhere it stays float, the usual recipe)")
    r.add_argument("--float-first-conv", action="store_const", const=False, dest="int8_first_conv",
                   help="keep the first conv float")
    r.add_argument("--tuning-log", help="JSON-lines tuning log to take the best configs from")
    r.add_argument("--input", help=".npy file with the input (default: random)")
    r.add_argument("--profile", action="store_true",
                   help="time each kernel alone and print its share of the total, TOPS or GB/s, and template")
    r.add_argument("--number", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--progress", action="store_true", help="show compile progress even when not on a terminal")
    r.add_argument("--tactics", type=int, default=0, metavar="K",
                   help="time up to K configs of each kernel nothing tuned answers, on the GPU, and build "
                        "with the fastest (cached per device under ~/.cache/minitvm/tactics; 0: off)")
    t = sub.add_parser("tune", help="tune a model's kernels (conv2d, dense) on the GPU into a log")
    t.add_argument("model", help=models_help)
    t.add_argument("--log", help="JSON-lines log to append every trial to (resumes tasks already tuned)")
    t.add_argument("--list", action="store_true", help="only list the tunable tasks (no GPU needed)")
    t.add_argument("--batch", type=int, default=1)
    t.add_argument("--image-size", type=int, default=None)
    t.add_argument("--dtype", default="float32", choices=["float32", "int8"])
    t.add_argument("--int8-first-conv", action="store_const", const=True, default=None,
                   help="as for run: tune the first conv in int8")
    t.add_argument("--float-first-conv", action="store_const", const=False, dest="int8_first_conv",
                   help="as for run: keep the first conv float")
    t.add_argument("--trials", type=int, default=200, help="trials per task (at most)")
    t.add_argument("--tuner", default="ga", choices=sorted(TUNERS))
    t.add_argument("--history", action="append", default=[], metavar="LOG",
                   help="an earlier tuning log to start the search from (repeatable; .gz too)")
    t.add_argument("--early-stopping", type=int, default=None)
    t.add_argument("--n-parallel", type=int, default=None, help="build processes (default: CPUs)")
    t.add_argument("--no-check", action="store_true", help="skip checking each candidate against numpy")
    t.add_argument("--seed", type=int, default=0)
    where = t.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="measure on a Dask cluster (tcp://host:8786): its workers with --resources GPU=1, "
                            "one per GPU; builds on the others (pip install 'minitvm[dask]')")
    where.add_argument("--gpus", type=int, metavar="N",
                       help="measure on N GPUs of this host at once (a local Dask cluster, one worker per GPU)")
    i = sub.add_parser("info", help="print a model's graph summary")
    i.add_argument("model", nargs="?", default=None, help=models_help + "; none: list the zoo models")
    i.add_argument("--batch", type=int, default=1)
    i.add_argument("--image-size", type=int, default=None)
    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 2
    _check_args(p, args)
    commands = {"run": run, "info": info, "tune": tune, "demo": demo}
    try:
        return commands[args.cmd](args)
    except BrokenPipeError:
        # the reader went away (``minitvm tune ... --list | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (MiniTVMError, OSError) as exc:
        if args.debug:
            raise
        print(f"minitvm: error: {exc}", file=sys.stderr)
        return 1


def _check_args(p, args) -> None:
    """Refuse bad arguments before any compile work (argparse's usage error: exit 2)."""
    for name, low in (("number", 1), ("batch", 1), ("image_size", 1), ("calibration_images", 0), ("trials", 1),
                      ("size", 1), ("n_parallel", 1), ("early_stopping", 1), ("tactics", 0), ("gpus", 1)):
        v = getattr(args, name, None)
        if v is not None and v < low:
            p.error(f"--{name.replace('_', '-')} must be at least {low}, got {v}")
    for name in ("input", "tuning_log"):
        path = getattr(args, name, None)
        if path and not os.path.isfile(path):
            p.error(f"--{name.replace('_', '-')} {path}: no such file")
    model = getattr(args, "model", None)
    if model and model.endswith(".onnx") and not os.path.isfile(model):
        p.error(f"model {model}: no such file")


if __name__ == "__main__":
    sys.exit(main())
