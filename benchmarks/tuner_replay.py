"""Compare tuners offline by replaying measured tuning logs (no GPU needed).

Each workload's landscape is a surrogate built from its logged trials: a config's cost is the
mean of its 3 nearest logged configs in (standardised) feature space. Every tuner then runs
the normal tuning loop against that surrogate with the same trial budget, and the table shows
the best surrogate cost each found, per workload and summed. A surrogate is not the GPU: use
this to rank tuners cheaply, and confirm on the device.

    python benchmarks/tuner_replay.py LOG [LOG ...] [--trials 200] [--seeds 3] [--tuners random,ga,model]
    python benchmarks/tuner_replay.py benchmarks/logs/resnet50_int8_b16_h200_trials.log.gz

Logs may be gzip-compressed (``.gz``). The file above holds every trial of two H200 tuning runs
of ResNet-50's int8 convs (random and genetic, 9,200 trials).
"""
import argparse
import collections
import gzip
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minitvm import autotune  # noqa: E402
from minitvm.autotune import BuildResult, MeasureErrorNo, MeasureResult  # noqa: E402


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("logs", nargs="+")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tuners", default="random,ga,model")
    args = p.parse_args()
    names = args.tuners.split(",")
    by = collections.defaultdict(list)
    for path in args.logs:
        opener = gzip.open if path.endswith(".gz") else open
        for line in opener(path, "rt", encoding="utf-8"):
            r = json.loads(line)
            if r["error_no"] == 0:
                by[r["workload"]].append(r)
    rows, total = [], collections.Counter()
    warnings.simplefilter("ignore")
    for wl, recs in by.items():
        task = autotune.Task(recs[0]["task"], recs[0]["args"], target="cuda")
        runner = Surrogate(task.config_space, recs)
        option = autotune.measure_option(_Builder(), runner)
        row = {"wl": wl, "logged_best": runner.cost.min()}
        for name in names:
            best, secs = [], 0.0
            for seed in range(args.seeds):
                tuner = autotune.TUNERS[name](task, seed=seed)
                t0 = time.perf_counter()
                tuner.tune(args.trials, option)
                secs += time.perf_counter() - t0
                best.append(tuner.best_cost)
            row[name] = float(np.mean(best))
            row[name + "_s"] = secs / args.seeds
            total[name] += row[name]
        total["logged_best"] += row["logged_best"]
        rows.append(row)
        shape = json.loads(wl)[1:3]
        print(f"{str(shape):52s} best logged {row['logged_best'] * 1e6:8.1f} us  " +
              "  ".join(f"{n} {row[n] * 1e6:8.1f} us ({row[n + '_s']:.1f} s)" for n in names), flush=True)
    print(f"\nsummed over {len(rows)} workloads, {args.trials} trials, mean of {args.seeds} seeds: best logged "
          f"{total['logged_best'] * 1e3:.3f} ms; " +
          "; ".join(f"{n} {total[n] * 1e3:.3f} ms ({total[n] / total[names[0]]:.3f}x of {names[0]})" for n in names))


if __name__ == "__main__":
    main()
