"""``minitvm tune``: extract a model's tunable kernels and tune them on the GPU into a JSON-lines
log that ``minitvm run/compile --tuning-log`` (and ``minitvm.compile(tuning_log=)``) read.

The options come in groups: the model and its shapes, what to tune, the search, and the
measurement. A new way to measure (another runner, several GPUs) adds its flags to the
"measurement" group in :func:`add_parser` and builds its runner in :func:`measure_option`."""
from __future__ import annotations

import os
import sys
import time

from .options import add_model_options, at_least, check_model, load_model


def add_parser(sub, models_help: str) -> None:
    """The ``tune`` subcommand and its options."""
    from ..autotune import TUNERS
    t = sub.add_parser("tune", help="tune a model's kernels (conv2d, dense) on the GPU into a log",
                       description="Find faster configs for a model's kernels by timing candidates on the GPU; "
                                   "every trial goes to a JSON-lines log that --tuning-log reads.")
    t.add_argument("model", metavar="MODEL", help=models_help)
    add_model_options(t)
    what = t.add_argument_group("what to tune")
    what.add_argument("--log", help="JSON-lines log to append every trial to (resumes tasks already tuned)")
    what.add_argument("--list", action="store_true", help="only list the tunable tasks (no GPU needed)")
    what.add_argument("--target", default="cuda", metavar="TARGET",
                      help='where the kernels run: "cuda" (default: the present GPU, else the kernels of sm_90), '
                           '"cuda -arch=sm_80", or a CPU: "llvm", "llvm -mcpu=znver3" (tuned on this host)')
    what.add_argument("--dtype", default="float32", choices=["float32", "int8"],
                      help="the kernels of the float32 model (default) or of its int8 version")
    what.add_argument("--int8-first-conv", action="store_const", const=True, default=None,
                      help="as for run: tune the first conv in int8")
    what.add_argument("--float-first-conv", action="store_const", const=False, dest="int8_first_conv",
                      help="as for run: keep the first conv float")
    search = t.add_argument_group("search")
    search.add_argument("--trials", type=at_least(1), default=200, help="trials per task (at most; default 200)")
    search.add_argument("--tuner", default="ga", choices=sorted(TUNERS), help="search strategy (default ga: genetic)")
    search.add_argument("--history", action="append", default=[], metavar="LOG",
                        help="an earlier tuning log to start the search from (repeatable; .gz too)")
    search.add_argument("--early-stopping", type=at_least(1), default=None, metavar="N",
                        help="stop a task after N trials without a better config")
    search.add_argument("--seed", type=int, default=0, help="seed of the search (default 0)")
    measure = t.add_argument_group("measurement")
    measure.add_argument("--n-parallel", type=at_least(1), default=None, metavar="N",
                         help="build processes (default: one per CPU)")
    measure.add_argument("--no-check", action="store_true", help="skip checking each candidate against numpy")
    where = measure.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="measure on a Dask cluster (tcp://host:8786): its workers with --resources GPU=1, "
                            "one per GPU; builds on the others (pip install 'minitvm[dask]')")
    where.add_argument("--gpus", type=at_least(1), metavar="N",
                       help="measure on N GPUs of this host at once (a local Dask cluster, one worker per GPU)")
    t.set_defaults(func=tune_command, check=check, parser=t)


def check(p, args) -> None:
    """Refuse ``tune``'s options that cannot work, before any work."""
    check_model(p, args)
    missing = [path for path in args.history if not os.path.exists(path)]
    if missing:
        p.error(f"--history {missing[0]}: no such file")


def measure_option(args):
    """How candidates are built and timed: on a Dask cluster's GPU workers (``--scheduler`` /
    ``--gpus``, ``autotune/dask_runner.py``), else parallel local builds and one local GPU runner."""
    from ..autotune.measure import LocalBuilder, LocalRunner
    from ..autotune.measure import measure_option as option
    timing = dict(min_repeat_ms=10.0, check_correctness=not args.no_check)
    if args.scheduler or args.gpus:
        from ..autotune.dask_runner import DaskBuilder, DaskRunner
        runner = DaskRunner(args.scheduler, **timing) if args.scheduler else DaskRunner.local(args.gpus, **timing)
        return option(DaskBuilder(runner.client, n_parallel=args.n_parallel), runner)
    return option(LocalBuilder(n_parallel=args.n_parallel), LocalRunner(**timing))


def tune_command(args) -> int:
    """Extract the model's tunable kernels and tune them on the GPU into a JSON-lines log."""
    from ..graph.tune import extract_tasks, tune_graph
    from ..models import is_quantized, pick_target, quantize_for_target
    from ..runtime import cuda
    graph = load_model(args)
    target = pick_target(args.target)   # "cuda": the present GPU, else sm_90 (the layouts its templates read)
    if is_quantized(graph):
        from ..graph.passes.alter_layout import alter_layout
        graph = alter_layout(graph, target=target)
    elif args.dtype == "int8":
        # the kernels' shapes do not depend on the scales: a global scale, no calibration run
        graph = quantize_for_target(graph, None, 0, args.int8_first_conv, target)
    tasks = extract_tasks(graph, target, counts=True)
    batch = graph.node(next(n for n in graph.topo_order() if graph.node(n).is_input)).type.shape[0]
    print(f"{args.model} ({args.dtype}, batch {batch}): {len(tasks)} tunable tasks, "
          f"{sum(n for _, n in tasks)} kernels")
    for task, n in tasks:
        print(f"  {n:3d} x {task.name}{task.args[:2]}")
    if args.list:
        return 0
    if not args.log:
        print("minitvm tune: give --log PATH to tune (or --list to only list the tasks)", file=sys.stderr)
        return 2
    if target.kind == "cuda" and cuda.device_count() == 0 and not (args.scheduler or args.gpus):
        print(f"minitvm tune: tuning times candidates on a CUDA GPU, and none is usable here "
              f"({cuda.unavailable_reason()})", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    with measure_option(args) as option:
        results = tune_graph(graph, args.log, target, n_trial=args.trials, tuner=args.tuner, measure_option=option,
                             early_stopping=args.early_stopping, seed=args.seed, history=args.history)
    weights = {t.workload: n for t, n in tasks}
    total = sum(weights[t.workload] * c for t, c in results)
    print(f"tuned {len(results)} tasks in {time.perf_counter() - t0:.0f} s; best configs summed over the model's "
          f"kernels: {total * 1e3:.3f} ms; log: {args.log}")
    where = f" --target '{args.target}'" if target.kind != "cuda" else ""
    print(f"use it: minitvm run {args.model}{where} --dtype {args.dtype} --batch {batch} --tuning-log {args.log}"
          + (" --calibration-data DIR|NPZ" if args.dtype == "int8" else ""))
    return 0
