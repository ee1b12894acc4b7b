"""Tuning throughput on 1..N GPUs of one host through Dask (``DaskRunner``), and how far the
same config's timing differs from GPU to GPU.

For each N in ``--gpus`` (default: 1 up to every visible GPU), start a local Dask cluster with one
measuring worker per GPU and one build worker (``DaskRunner.local``), start every worker's
runner process (CUDA context) before the clock starts, then tune the same tasks: the first
``--tasks`` tunable tasks of ResNet-50 int8 at batch 16 (what ``minitvm tune resnet50 --dtype int8
--batch 16`` tunes), ``--trials`` each, the genetic tuner with a fixed seed per task, every
candidate checked against numpy, one log per N. Prints per N: trials, seconds, trials/s, the
speed-up over one GPU and its share of N (issue #20's target: at least 0.85), each worker's
trials/s and the failed trials.

Then the spread between GPUs (on the largest N): the best config of each task, built once, is
timed on every GPU worker (``DaskRunner.run_on``); per config the spread is (slowest - fastest) /
fastest of the GPUs' mean times (target: within 3%).

    PYTHONPATH=. python3 benchmarks/tune_scaling.py                      # 1..all GPUs, 4 tasks x 64 trials
    PYTHONPATH=. python3 benchmarks/tune_scaling.py --gpus 1,2,4 --tasks 8 --trials 128
    PYTHONPATH=. python3 benchmarks/tune_scaling.py --cpu-check          # checks the script without GPUs

``--cpu-check`` runs the same steps on llvm GEMM tasks with measuring workers that only declare a
GPU resource (no GPU is used); its numbers say nothing about GPUs. Results go to ``--out`` (JSON).
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minitvm import autotune  # noqa: E402
from minitvm.autotune.dask_runner import DaskRunner, visible_gpus  # noqa: E402


def resnet50_int8_tasks(n: int, batch: int = 16) -> list:
    """The first ``n`` tunable tasks of ResNet-50 int8 (as ``minitvm tune`` extracts them)."""
    import numpy as np
    from minitvm.graph.tune import extract_tasks
    from minitvm.models import _load_model, _pick_target, quantize_for_target
    graph = _load_model("resnet50", batch, None)
    graph = quantize_for_target(graph, np.random.default_rng(0), 0, target=_pick_target("cuda"))
    return extract_tasks(graph, "cuda")[:n]


def cpu_check_tasks(n: int) -> list:
    """Small llvm GEMM tasks standing in for the GPU tasks (``--cpu-check``)."""
    return [autotune.Task("matmul.cpu", (s, s, s, "float32")) for s in (32, 48, 64, 96, 128, 160)[:n]]


def tune_on(n_gpus: int, devices, tasks, trials: int, log: str, check: bool, timing: dict) -> dict:
    """Tune ``tasks`` on ``n_gpus`` measuring workers; returns the figures of this N."""
    runner = DaskRunner.local(n_gpus, devices=devices, check_correctness=check, **timing)
    with autotune.measure_option(runner=runner) as option:
        for task in tasks:   # every runner process up (CUDA contexts, input data) before the clock
            runner.prepare(task, task.target)
        t0 = time.perf_counter()
        trials_done, errors = 0, 0
        for k, task in enumerate(tasks):
            tuner = autotune.GATuner(task, seed=k)
            tuner.tune(trials, option, callbacks=[
                autotune.log_to_file(log),
                autotune.progress_bar(trials, prefix=f"{n_gpus} GPU [{k + 1}/{len(tasks)}] {task.name}",
                                      worker_rates=runner.worker_rates)])
            trials_done += tuner.trials
            errors += tuner.n_errors
        seconds = time.perf_counter() - t0
        rates, batch = runner.worker_rates(), option.builder.n_parallel
        spread = measure_spread(runner, option, tasks, log) if n_gpus > 1 else []
    return {"gpus": n_gpus, "trials": trials_done, "errors": errors, "seconds": seconds, "batch": batch,
            "trials_per_s": trials_done / seconds, "worker_trials_per_s": rates, "spread": spread}


def measure_spread(runner, option, tasks, log) -> list:
    """The best logged config of each task, built once and timed on every measuring worker."""
    best = autotune.ApplyHistoryBest(log)
    inputs = []
    for task in tasks:
        config = best.lookup(task.target, task.workload)
        if config is not None:
            inputs.append(autotune.MeasureInput(runner.prepare(task, task.target), task, config))
    builds = option.builder.build(inputs)
    per_worker = {}
    for name in sorted(w["name"] for w in runner.workers().values() if w["resources"].get(runner.resource)):
        per_worker[name] = runner.run_on(name, inputs, builds)
    out = []
    for k, inp in enumerate(inputs):
        means = {w: res[k].mean for w, res in per_worker.items() if res[k].ok}
        row = {"task": inp.task.name, "args": inp.task.args, "config": inp.config.index, "seconds": means}
        if len(means) == len(per_worker) and means:
            row["spread"] = (max(means.values()) - min(means.values())) / min(means.values())
        out.append(row)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpus", default=None, help="comma-separated GPU counts (default: 1 .. every visible GPU)")
    p.add_argument("--tasks", type=int, default=4, help="ResNet-50 int8 tasks to tune (the first ones)")
    p.add_argument("--trials", type=int, default=64, help="trials per task")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--no-check", action="store_true", help="do not check candidates against numpy")
    p.add_argument("--cpu-check", action="store_true",
                   help="run the script on llvm GEMM tasks and 2 fake GPUs (no GPU needed; numbers mean nothing)")
    p.add_argument("--out", default="tune_scaling.json")
    p.add_argument("--log-dir", default=None, help="where the per-N tuning logs go (default: a temporary folder)")
    args = p.parse_args()

    if args.cpu_check:
        devices, tasks = ["0", "1"], cpu_check_tasks(args.tasks)
        timing = {"number": 1, "repeat": 3, "timeout": 20}
    else:
        devices, tasks = visible_gpus(), resnet50_int8_tasks(args.tasks, args.batch)
        timing = {"min_repeat_ms": 10.0}
    if not devices:
        raise SystemExit("no GPU is visible here (CUDA_VISIBLE_DEVICES or the driver); --cpu-check runs without")
    counts = [int(x) for x in args.gpus.split(",")] if args.gpus else list(range(1, len(devices) + 1))
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="tune-scaling-")
    print(f"{len(tasks)} tasks x {args.trials} trials on {counts} GPUs of {devices}; logs in {log_dir}")

    rows = []
    for n in counts:
        log = os.path.join(log_dir, f"gpus{n}.log")
        if os.path.exists(log):
            os.remove(log)
        rows.append(tune_on(n, devices, tasks, args.trials, log, not args.no_check, timing))
        base = rows[0]["trials_per_s"] if rows[0]["gpus"] == 1 else None
        r = rows[-1]
        scaled = f", {r['trials_per_s'] / base:.2f}x one GPU = {r['trials_per_s'] / base / n:.2f} of N" if base else ""
        print(f"\n{n} GPU(s): {r['trials']} trials in {r['seconds']:.1f} s = {r['trials_per_s']:.2f} trials/s"
              f"{scaled}; {r['errors']} failed; per worker: "
              + ", ".join(f"{w} {v:.2f}" for w, v in r["worker_trials_per_s"].items()))
        for s in r["spread"]:
            shown = ", ".join(f"{w} {t * 1e6:.2f} us" for w, t in s["seconds"].items())
            spread = f"{s['spread'] * 100:.2f}%" if "spread" in s else "n/a (a GPU failed it)"
            print(f"  spread {spread}: {s['task']} config {s['config']}: {shown}")

    print("\n| GPUs | trials | s | trials/s | vs 1 GPU | / N | max spread |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = next((r["trials_per_s"] for r in rows if r["gpus"] == 1), None)
    for r in rows:
        vs = r["trials_per_s"] / base if base else float("nan")
        spreads = [s["spread"] for s in r["spread"] if "spread" in s]
        worst = f"{max(spreads) * 100:.2f}%" if spreads else "-"
        print(f"| {r['gpus']} | {r['trials']} | {r['seconds']:.1f} | {r['trials_per_s']:.2f} | {vs:.2f}x | "
              f"{vs / r['gpus']:.2f} | {worst} |")
    with open(args.out, "w") as f:
        json.dump({"cpu_check": args.cpu_check, "tasks": [[t.name, t.args] for t in tasks], "trials": args.trials,
                   "devices": devices, "rows": rows}, f, indent=1, default=str)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
