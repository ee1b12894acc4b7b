"""Tune an int8 conv2d template on the GPU for ResNet-50's layers: dp4a (NCHW4c / OIHW4o4i) or,
with ``--template tensorcore``, the int8 tensor-core implicit GEMM (NHWC / OHWI).

For each distinct ResNet-50 convolution at the given batch: measure the template's default
config, tune (``--tuner ga``, the genetic tuner, by default; ``--tuner model`` or ``random``;
``--trials``, 200 by default; every candidate is checked
bit-exactly against numpy), then re-measure the default and the best logged config
(``ApplyHistoryBest``'s choice) under the same, longer timing. The shipped config (``tophub``),
where one exists, is measured and logged first like the default, so a tuning run never ships a
slower pick than what it started from. ``--history LOG`` (repeatable; ``.gz`` is read too) seeds
the search with earlier trials of the same layers: the genetic and model-based tuners breed and
learn from them, and never measure them again. Prints per layer and summed
over the network (each layer times its count): default vs tuned time, TOPS, errors by kind, and
trials per second of the measurement loop.

    PYTHONPATH=. python3 benchmarks/tune_conv2d_int8.py                    # all layers, batch 16
    PYTHONPATH=. python3 benchmarks/tune_conv2d_int8.py --trials 64 --layers 4
    PYTHONPATH=. python3 benchmarks/tune_conv2d_int8.py --layers layer1.0.conv2,layer3.0.conv1
    PYTHONPATH=. python3 benchmarks/tune_conv2d_int8.py --layers 11,12 \
        --history minitvm/autotune/tophub/cuda_resnet50_int8_b16_h200.log \
        --history benchmarks/logs/resnet50_int8_b16_h200_trials.log.gz

The log (``--log``, default ``tune_conv2d_int8.log``) is appended to; apply it with
``autotune.ApplyHistoryBest(path)``. Ctrl-C stops tuning and still prints the table.
"""
import argparse
import collections
import math
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minitvm import autotune  # noqa: E402
from minitvm.autotune import tophub  # noqa: E402
from minitvm.autotune import MeasureInput  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.topi.workloads import resnet50_convs, unique  # noqa: E402


TEMPLATES = {"dp4a": "conv2d_NCHWc_int8.cuda", "tensorcore": "conv2d_NHWC_int8_tensorcore.cuda"}


def task_args(w, template: str = "dp4a"):
    """Template arguments of workload ``w``: packed NCHW4c / OIHW4o4i shapes (channels padded to
    a multiple of 4) for dp4a, NHWC / OHWI shapes (channels padded to 32) for the tensor cores."""
    if template == "tensorcore":
        c = -(-w.C // 32) * 32
        return ((w.N, w.H, w.W, c), (w.O, w.K, w.kw, c), w.stride, w.padding, w.dilation, w.groups)
    return w.packed_shapes() + (w.stride, w.padding, w.dilation, w.groups)


def select_layers(layers, spec):
    """``spec``: empty (all), N (the first N) or comma-separated names / name suffixes / indices."""
    if not spec:
        return layers
    if spec.isdigit():
        return layers[:int(spec)]
    out = []
    for item in spec.split(","):
        item = item.strip()
        if item.isdigit():
            out.append(layers[int(item)])
            continue
        hits = [lw for lw in layers if lw[0].name == item or lw[0].name.endswith("." + item)]
        if not hits:
            raise SystemExit(f"no layer matches {item!r}; layers: {', '.join(w.name for w, _ in layers)}")
        out.extend(hits)
    return out


def fallback_config(task):
    """The template's default config as a point of the task's space."""
    import warnings
    space = task.config_space
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", autotune.FallbackConfigWarning)
        fb = autotune.FallbackConfig()
        task.template.func(fb, *task.args)
    return space.get(fb.index)


def final_measure(measure, runner, inputs, number, repeat, min_repeat_ms):
    """Measure ``inputs`` with the final (longer) timing settings; median seconds or None each."""
    saved = runner.number, runner.repeat, runner.min_repeat_ms
    runner.number, runner.repeat, runner.min_repeat_ms = number, repeat, min_repeat_ms
    try:
        results = measure(inputs)
    finally:
        runner.number, runner.repeat, runner.min_repeat_ms = saved
    out = []
    for r in results:
        out.append(sorted(r.costs)[len(r.costs) // 2] if r.ok else None)
    return out, results


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--trials", type=int, default=200, help="trials per layer (at most)")
    p.add_argument("--layers", default="", help="N (first N distinct layers) or a comma list of names/indices")
    p.add_argument("--early-stopping", type=int, default=None, help="stop a layer after this many trials "
                   "without improvement")
    p.add_argument("--n-parallel", type=int, default=None, help="build processes (default: CPUs)")
    p.add_argument("--number", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--min-repeat-ms", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per build and per run")
    p.add_argument("--no-check", action="store_true", help="skip the bit-exact check of every candidate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tuner", choices=sorted(autotune.TUNERS), default="ga")
    p.add_argument("--log", default="tune_conv2d_int8.log")
    p.add_argument("--template", choices=sorted(TEMPLATES), default="dp4a",
                   help="dp4a (NCHW4c) or the int8 tensor-core implicit GEMM (NHWC; groups=1 layers)")
    p.add_argument("--history", action="append", default=[], help="earlier tuning log to start from "
                   "(repeatable)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()

    if cuda.device_count() == 0:
        print("no CUDA device here:", cuda.unavailable_reason())
        return 0
    layers = select_layers(unique(resnet50_convs(args.batch)), args.layers)
    if args.template == "tensorcore":
        layers = [(w, n) for w, n in layers if w.groups == 1 and w.C >= 32]
    history = [rec for path in args.history for rec in autotune.record.load_records(path)]
    n_parallel = args.n_parallel or os.cpu_count() or 1
    print(f"tuning {len(layers)} distinct ResNet-50 int8 conv layers, batch {args.batch}, <= {args.trials} trials "
          f"each ({args.tuner} tuner), on {cuda.device_name(0)}; {n_parallel} build processes; "
          f"check={'off' if args.no_check else 'on'}; "
          f"log {args.log}", flush=True)

    builder = autotune.LocalBuilder(n_parallel=n_parallel, timeout=args.timeout)
    runner = autotune.LocalRunner(number=args.number, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms,
                                  timeout=args.timeout, check_correctness=not args.no_check)
    option = autotune.measure_option(builder, runner)
    rows, errors_total = [], collections.Counter()
    t_start = time.perf_counter()
    try:
        for w, count in layers:
            row = {"w": w, "count": count, "trials": 0, "errors": collections.Counter(), "tune_s": 0.0,
                   "t_def": None, "t_best": None, "note": ""}
            rows.append(row)
            try:
                task = autotune.Task(TEMPLATES[args.template], task_args(w, args.template), target="cuda")
                measure = autotune.create_measure_batch(task, option)
                default = fallback_config(task)
                # the default is measured (and logged) like any trial, so the best never loses to it
                starts = [MeasureInput(measure.target, task, default)]
                shipped = tophub.shipped_config(task)
                if shipped is not None and shipped.index != default.index:
                    starts.append(MeasureInput(measure.target, task, shipped))
                start_res = measure(starts)
                autotune.log_to_file(args.log)(None, starts, start_res)
                if not start_res[0].ok:
                    row["note"] = f"default failed: {start_res[0].error_no.name} {start_res[0].error_msg[:80]}"
                tuner = autotune.TUNERS[args.tuner](task, seed=args.seed)
                row["history"] = tuner.load_history(list(zip(starts, start_res)) + history)
                cbs = [autotune.log_to_file(args.log),
                       lambda t, i, r, c=row["errors"]: c.update(x.error_no.name for x in r if not x.ok)]
                if not args.no_progress:
                    cbs.append(autotune.progress_bar(args.trials, prefix=w.name, si_prefix="T"))
                try:
                    tuner.tune(args.trials, option, early_stopping=args.early_stopping, callbacks=cbs)
                finally:
                    row["trials"], row["tune_s"] = tuner.trials, tuner.tune_seconds
                errors_total.update(row["errors"])
                best = autotune.ApplyHistoryBest(args.log).lookup(measure.target, task.workload)
                inputs = [MeasureInput(measure.target, task, default)]
                if best is not None:
                    inputs.append(MeasureInput(measure.target, task, best))
                times, _ = final_measure(measure, runner, inputs, number=10, repeat=5, min_repeat_ms=50)
                row["t_def"] = times[0]
                row["t_best"] = times[1] if best is not None else None
                if best is not None and best == default:
                    row["note"] = "the default stayed the best"
                elif row["t_best"] is not None and row["t_def"] is not None and row["t_best"] > row["t_def"]:
                    row["note"] = "tuned pick re-measured slower than the default"
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - report and go on with the next layer
                row["note"] = f"{type(exc).__name__}: {exc}"[:100]
                traceback.print_exc()
            t_d, t_b = row["t_def"], row["t_best"]
            print(f"{w.name}: default {_us(t_d)} us, tuned {_us(t_b)} us"
                  f"{f' ({t_d / t_b:.2f}x)' if t_d and t_b else ''}, {row['trials']} trials in "
                  f"{row['tune_s']:.0f} s ({row['trials'] / max(row['tune_s'], 1e-9):.2f} trials/s), "
                  f"errors {dict(row['errors'])}, started from {row.get('history', 0)} earlier trials "
                  f"{row['note']}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: results so far", flush=True)
    finally:
        option.close()
    total_s = time.perf_counter() - t_start
    _table(rows, args, errors_total, total_s)
    return 0


def _us(t):
    return "n/a" if t is None else f"{t * 1e6:.1f}"


def _table(rows, args, errors_total, total_s):
    print(f"\nint8 conv2d tuning, batch {args.batch}, <= {args.trials} trials per layer, {cuda.device_name(0)}")
    head = (f"{'layer':28s} {'C':>4s} {'HW':>4s} {'O':>4s} {'K':>2s} {'s':>1s} {'n':>2s} {'trials':>6s} {'err':>4s} "
            f"{'default us':>10s} {'tuned us':>9s} {'speedup':>7s} {'TOPS def':>8s} {'TOPS tuned':>10s} "
            f"{'trials/s':>8s}  note")
    print(head)
    print("-" * len(head))
    tot_def = tot_best = 0.0
    ops_total = 0.0
    complete = True
    trials = 0
    tune_s = 0.0
    for r in rows:
        w, td, tb = r["w"], r["t_def"], r["t_best"]
        ops = 2.0 * w.macs
        trials += r["trials"]
        tune_s += r["tune_s"]
        if td is None or tb is None:
            complete = False
        else:
            tot_def += td * r["count"]
            tot_best += tb * r["count"]
            ops_total += ops * r["count"]
        name = w.name.replace("resnet50.", "")
        print(f"{name:28s} {w.C:4d} {w.H:4d} {w.O:4d} {w.K:2d} {w.stride:1d} {r['count']:2d} {r['trials']:6d} "
              f"{sum(r['errors'].values()):4d} {_us(td):>10s} {_us(tb):>9s} "
              f"{(f'{td / tb:.2f}x' if td and tb else 'n/a'):>7s} "
              f"{(f'{ops / td / 1e12:.1f}' if td else 'n/a'):>8s} {(f'{ops / tb / 1e12:.1f}' if tb else 'n/a'):>10s} "
              f"{r['trials'] / max(r['tune_s'], 1e-9):8.2f}  {r['note']}")
    n_layers = sum(r["count"] for r in rows if r["t_def"] is not None and r["t_best"] is not None)
    if tot_best > 0:
        print(f"\nsummed over {n_layers} layers{'' if complete else ' (layers with results only)'}: default "
              f"{tot_def * 1e3:.3f} ms ({ops_total / tot_def / 1e12:.1f} TOPS), tuned {tot_best * 1e3:.3f} ms "
              f"({ops_total / tot_best / 1e12:.1f} TOPS): {tot_def / tot_best:.2f}x")
    print(f"measurement loop: {trials} trials in {tune_s:.0f} s = {trials / max(tune_s, 1e-9):.2f} trials/s "
          f"(whole run {total_s:.0f} s incl. reference data and final timing)")
    if errors_total:
        print("failed trials by error: " + ", ".join(f"{k} {v}" for k, v in errors_total.most_common()))
    if math.isfinite(total_s):
        print(f"log: {os.path.abspath(args.log)}")


if __name__ == "__main__":
    sys.exit(main())
