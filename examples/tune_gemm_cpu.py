"""Tune the CPU GEMM template (``matmul.cpu``) and compare its default config with the tuned one.

The template splits C's rows and columns into tiles accumulated in a local buffer, splits the
reduction (inner part unrolled) and optionally vectorizes the tile's columns; the random tuner
measures configs in worker processes, logs every trial, and ``ApplyHistoryBest`` builds the best.

    python examples/tune_gemm_cpu.py                 # 256^3, 32 trials
    python examples/tune_gemm_cpu.py 512 --trials 64 --log gemm.log
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitvm  # noqa: E402
from minitvm import autotune  # noqa: E402
from minitvm.topi.cpu.matmul import matmul_cpu  # noqa: E402


def build_and_time(n, a, b, ref):
    """Build the template under the current dispatch context, check it, return seconds per run."""
    s, args = matmul_cpu(n, n, n, "float32")
    f = minitvm.build(s, args, "llvm")
    c = np.full((n, n), np.nan, "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3 * np.sqrt(n))
    return f.time_evaluator(f.entry_name, number=5, repeat=5)(a, b, c).median


def main():
    p = argparse.ArgumentParser(description="tune the CPU GEMM template")
    p.add_argument("size", type=int, nargs="?", default=256)
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--log", default=None, help="tuning log (default: a temporary file)")
    p.add_argument("--n-parallel", type=int, default=None)
    args = p.parse_args()
    n = args.size
    log = args.log or os.path.join(tempfile.mkdtemp(prefix="minitvm-"), "gemm_cpu.log")
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (n, n)).astype("float32")
    b = rng.uniform(-1, 1, (n, n)).astype("float32")
    ref = a.astype("float64") @ b.astype("float64")
    flop = 2.0 * n ** 3

    task = autotune.Task("matmul.cpu", (n, n, n, "float32"), target="llvm")
    print(f"GEMM {n}^3 float32 on the CPU: {len(task.config_space)} configs "
          f"({', '.join(task.config_space.knobs)}); tuning {args.trials} of them; log {log}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", autotune.FallbackConfigWarning)
        t_default = build_and_time(n, a, b, ref)

    tuner = autotune.RandomTuner(task, seed=0)
    with autotune.measure_option(
            builder=autotune.LocalBuilder(n_parallel=args.n_parallel, timeout=30),
            runner=autotune.LocalRunner(number=3, repeat=3, min_repeat_ms=20, timeout=30,
                                        check_correctness=True)) as option:
        t0 = time.perf_counter()
        tuner.tune(args.trials, option, callbacks=[autotune.progress_bar(args.trials),
                                                   autotune.log_to_file(log)])
        elapsed = time.perf_counter() - t0

    with autotune.ApplyHistoryBest(log) as ctx:
        best = ctx.query("llvm", task.workload)
        t_tuned = build_and_time(n, a, b, ref)
    print(f"\n{tuner.trials} trials in {elapsed:.1f} s: {tuner.trials / elapsed:.2f} trials/s, "
          f"{tuner.n_errors} failed")
    print(f"best config: {best}")
    print(f"{'default config':16s} {t_default * 1e3:9.3f} ms {flop / t_default / 1e9:8.2f} GFLOP/s")
    print(f"{'tuned config':16s} {t_tuned * 1e3:9.3f} ms {flop / t_tuned / 1e9:8.2f} GFLOP/s"
          f"   ({t_default / t_tuned:.2f}x)")


if __name__ == "__main__":
    main()
