"""Compare tuners offline by replaying measured tuning logs (no GPU needed).

Each workload's landscape is a surrogate built from its logged trials: a config's cost is the
mean of its 3 nearest logged configs in (standardised) feature space. Every tuner then runs
the normal tuning loop against that surrogate with the same trial budget, and the table shows
the best surrogate cost each found after 32, 64, 100 ... trials, summed over the workloads (mean
of the seeds). A surrogate is not the GPU: use this to rank tuners cheaply, and confirm on the
device.

    python benchmarks/tuner_replay.py LOG [LOG ...] [--trials 200] [--seeds 3]
        [--tuners random,ga,model,gbt,gbt+transfer] [--history LOG ...] [--objective regression]
        [--backend auto] [--jobs 2]
    python benchmarks/tuner_replay.py benchmarks/logs/resnet50_int8_b16_h200_trials.log.gz \\
        --history benchmarks/logs/resnet50_int8_b16_h200_seeded_trials.log.gz

``--transfer-check`` replays nothing: leaving one workload out in turn, it prints how well a
boosted-tree model of the other workloads' logged trials ranks that workload's logged trials,
with all features and without groups of them.

Tuners: the names of ``autotune.TUNERS``, and ``gbt+transfer``: the boosted-tree tuner started
from a model trained on every other workload's trials (leave one task out: the trials of the
workload being replayed, in any log, are never shown to it) of the logs given and ``--history``.
``--objective`` / ``--backend`` choose the boosted trees' objective and library (or a name's
suffix: ``gbt@numpy``, ``gbt+transfer@numpy``). Logs may be
gzip-compressed (``.gz``). The first log above holds every trial of two H200 tuning runs of
ResNet-50's int8 convs (random and genetic, 9,200 trials).
"""
import argparse
import collections
import functools
import gzip
import json
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minitvm import autotune  # noqa: E402
from minitvm.autotune import BuildResult, MeasureErrorNo, MeasureResult  # noqa: E402
from minitvm.autotune import gbt  # noqa: E402


class _Builder(autotune.Builder):
    n_parallel = 16

    def build(self, inputs, target=None):
        return [BuildResult(None, (), MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class Surrogate(autotune.Runner):
    """Cost of a config: mean of the k nearest logged configs' costs (standardised features)."""

    def __init__(self, space, records, k=3):
        X = np.asarray([space.features(space.get(space.index_of(r["config"]["knobs"], fill_missing=True))) for r in records])
        self.mu, self.sd = X.mean(0), X.std(0) + 1e-9
        self.X = (X - self.mu) / self.sd
        self.cost = np.asarray([min(r["costs"]) for r in records])
        self.space, self.k = space, k

    def run(self, inputs, build_results):
        out = []
        for inp in inputs:
            z = (np.asarray(self.space.features(inp.config)) - self.mu) / self.sd
            near = np.argsort(((self.X - z) ** 2).sum(1))[:self.k]
            c = float(self.cost[near].mean())
            out.append(MeasureResult((c,), MeasureErrorNo.NO_ERROR))
        return out


class BestSoFar:
    """Callback: the best cost after each of ``checkpoints`` trials."""

    def __init__(self, checkpoints):
        self.checkpoints, self.best, self.at = checkpoints, np.inf, {}

    def __call__(self, tuner, inputs, results):
        before = tuner.trials - len(results)
        for k, res in enumerate(results, before + 1):
            self.best = min(self.best, res.mean)
            if k in self.checkpoints:
                self.at[k] = self.best


def _json_records(paths):
    """Successful trials per workload key, as parsed JSON objects."""
    by = collections.defaultdict(list)
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        for line in opener(path, "rt", encoding="utf-8"):
            r = json.loads(line)
            if r["error_no"] == 0:
                by[r["workload"]].append(r)
    return by


@functools.lru_cache(maxsize=None)
def _records(path):
    return autotune.load_records(path)


def make_tuner(name, task, seed, transfer, args):
    """The tuner ``name`` for ``task`` (``transfer``: records of the other workloads); a boosted-tree
    tuner's name may end in ``@numpy`` or ``@lightgbm`` (its backend; default ``--backend``)."""
    if name.startswith("gbt"):
        name, _, backend = name.partition("@")
        return autotune.GBTTuner(task, history=transfer if name == "gbt+transfer" else (), objective=args.objective,
                                 backend=backend or args.backend, seed=seed)
    return autotune.TUNERS[name](task, seed=seed)


def replay_workload(job):
    """Every tuner and seed on one workload: ``(row dict, {tuner: {checkpoint: mean best}})``."""
    wl, recs, args = job
    warnings.simplefilter("ignore")
    task = autotune.Task(recs[0]["task"], recs[0]["args"], target="cuda")
    runner = Surrogate(task.config_space, recs)
    option = autotune.measure_option(_Builder(), runner)
    transfer = []
    if any(name.startswith("gbt+transfer") for name in args.tuners):
        transfer = [rec for path in args.logs + args.history for rec in _records(path)
                    if rec[0].task.workload_key != wl]
    row = {"wl": wl, "logged_best": float(runner.cost.min())}
    curves = {}
    for name in args.tuners:
        at, secs = collections.defaultdict(list), 0.0
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            tuner = make_tuner(name, task, seed, transfer, args)
            cb = BestSoFar(set(args.checkpoints))
            tuner.tune(args.trials, option, callbacks=[cb])
            secs += time.perf_counter() - t0
            for k in args.checkpoints:
                at[k].append(cb.at.get(k, cb.best))
        curves[name] = {k: float(np.mean(v)) for k, v in at.items()}
        row[name + "_s"] = secs / args.seeds
    shape = json.loads(wl)[1:3]
    print(f"{str(shape):46s} best logged {row['logged_best'] * 1e6:7.1f} us  " +
          "  ".join(f"{n} {curves[n][args.trials] * 1e6:7.1f} us ({row[n + '_s']:.1f} s)" for n in args.tuners),
          flush=True)
    return row, curves


def transfer_check(args):
    """Leave one task out: how well a model of the other workloads' trials ranks each workload's
    logged trials (rank correlation, and the share of its predicted fastest tenth that is in the
    logged fastest tenth), with all features and without some groups of them."""
    from minitvm.autotune.features import feature_matrix, feature_names
    data, names = {}, None
    for path in args.logs:
        for inp, res in _records(path):
            data.setdefault(inp.task.workload_key, (inp.task, []))[1].append((inp.config.values, res))
    rows = {}
    for key, (task, trials) in data.items():
        names = names or feature_names(task)
        ok = [(v, np.log(r.mean)) for v, r in trials if r.ok]
        y = np.asarray([c for _, c in ok])
        rows[key] = (task.name, feature_matrix(task, [v for v, _ in ok], names), y - y.mean())
    drops = {"all features": (), "without loop features": ("loop",), "without shares and extents": ("/", ":extent")}
    print("| features | mean rank correlation | fastest tenth found |\n| --- | --- | --- |")
    for label, drop in drops.items():
        keep = [i for i, n in enumerate(names) if not any(n.startswith(d) or n.endswith(d) for d in drop)]
        corr, found = [], []
        for key, (name, X, y) in rows.items():
            others = [k for k in rows if k != key and rows[k][0] == name]
            model = gbt.BoostedTrees(args.objective, args.backend).fit(
                np.concatenate([rows[k][1][:, keep] for k in others]), np.concatenate([rows[k][2] for k in others]),
                np.concatenate([np.full(len(rows[k][2]), i) for i, k in enumerate(others)]))
            pred = model.predict(X[:, keep])
            corr.append(np.corrcoef(np.argsort(np.argsort(pred)), np.argsort(np.argsort(y)))[0, 1])
            n = max(1, len(y) // 10)
            found.append(len(set(np.argsort(pred)[:n]) & set(np.argsort(y)[:n])) / n)
        print(f"| {label} | {np.mean(corr):.3f} | {np.mean(found):.0%} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("logs", nargs="+", help="logs whose workloads are replayed (surrogates of their trials)")
    p.add_argument("--history", action="append", default=[], help="more logs for gbt+transfer only")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tuners", default="random,ga,model,gbt,gbt+transfer")
    p.add_argument("--objective", default="regression", choices=gbt.OBJECTIVES)
    p.add_argument("--backend", default="auto", choices=gbt.BACKENDS)
    p.add_argument("--workloads", type=int, default=0, help="replay only the first N workloads")
    p.add_argument("--jobs", type=int, default=1, help="workloads replayed in parallel processes")
    p.add_argument("--transfer-check", action="store_true",
                   help="no replay: how well a model of the other workloads ranks each workload's logged trials")
    args = p.parse_args()
    if args.transfer_check:
        transfer_check(args)
        return
    args.tuners = args.tuners.split(",")
    args.checkpoints = sorted({k for k in (32, 64, 100, args.trials) if k <= args.trials})
    by = _json_records(args.logs)
    items = list(by.items())[:args.workloads or None]
    jobs = [(wl, recs, args) for wl, recs in items]
    t0 = time.time()
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            out = pool.map(replay_workload, jobs, chunksize=1)
    else:
        out = [replay_workload(j) for j in jobs]
    logged = sum(r["logged_best"] for r, _ in out)
    print(f"\nsummed best cost over {len(out)} workloads, mean of {args.seeds} seeds (best logged {logged * 1e3:.3f} ms; "
          f"objective {args.objective}, backend {gbt.BoostedTrees(backend=args.backend).backend}; "
          f"{time.time() - t0:.0f} s)\n")
    first = args.tuners[0]
    print("| tuner | " + " | ".join(f"{k} trials" for k in args.checkpoints) + " | s per run |")
    print("| --- |" + " --- |" * (len(args.checkpoints) + 1))
    for name in args.tuners:
        cells = []
        for k in args.checkpoints:
            total = sum(c[name][k] for _, c in out)
            ref = sum(c[first][k] for _, c in out)
            cells.append(f"{total * 1e3:.3f} ms ({total / ref:.3f}x)")
        secs = np.mean([r[name + "_s"] for r, _ in out])
        print(f"| {name} | " + " | ".join(cells) + f" | {secs:.1f} |")


if __name__ == "__main__":
    main()
