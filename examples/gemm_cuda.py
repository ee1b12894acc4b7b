"""The classic GPU GEMM progression in minitvm, float32, on CUDA.

naive -> shared-memory tiles -> register tiles over virtual threads -> double buffered,
each checked against numpy and timed; the FFMA peak is measured in the same run.

    PYTHONPATH=. python3 examples/gemm_cuda.py [n]

Without a usable GPU it says it skipped and exits with status 77 (the "skipped" status of
automake and meson test harnesses), never 0.
"""
import os
import sys

import numpy as np

SKIPPED = 77   # exit status when no GPU is usable: the test harnesses' "skipped"

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import minitvm  # noqa: E402
from minitvm import nd, te  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.topi.cuda.matmul import schedule_matmul, schedule_matmul_naive, schedule_matmul_vthread  # noqa: E402
from minitvm.topi.nn import matmul  # noqa: E402

SCHEDULES = [
    ("naive (1 thread / output)", lambda C: schedule_matmul_naive(C)),
    ("shared-memory tiles", lambda C: schedule_matmul(C, block=64, thread_tile=4)),
    ("+ register tiles, vthreads", lambda C: schedule_matmul_vthread(C, double_buffer=False)),
    ("+ double buffering", lambda C: schedule_matmul_vthread(C, double_buffer=True)),
]


def run(n: int, schedules=SCHEDULES, number: int = 10):
    """Build, check and time each schedule; returns rows (name, seconds, TFLOPS)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    dev = nd.cuda(0)
    ta, tb = nd.array(a, dev), nd.array(b, dev)
    rows = []
    for name, sched in schedules:
        A = te.placeholder((n, n), "float32", "A")
        B = te.placeholder((n, n), "float32", "B")
        C = matmul(A, B)
        mod = minitvm.build(sched(C), [A, B, C], target="cuda")
        tc = nd.array(np.full((n, n), np.nan, np.float32), dev)
        mod(ta, tb, tc)
        err = np.linalg.norm(tc.numpy() - ref) / np.linalg.norm(ref)
        if not err < 1e-5:
            raise AssertionError(f"{name}: relative error {err:.2e}")
        t = mod.time_evaluator(mod.entry_name, number=number, repeat=3)(ta, tb, tc).median
        rows.append((name, t, 2 * n ** 3 / t / 1e12))
    return rows


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    if cuda.device_count() == 0:
        print(f"skipped: this example needs an NVIDIA GPU, and none is usable here ({cuda.unavailable_reason()})",
              file=sys.stderr)
        return SKIPPED
    from peaks import ffma_peak
    peak = ffma_peak() / 1e12
    print(f"float32 GEMM {n}^3 on {cuda.device_name(0)}; FFMA peak measured now: {peak:.1f} TFLOPS")
    print(f"{'schedule':32s} {'ms':>9s} {'TFLOPS':>8s} {'% peak':>7s}")
    for name, t, tf in run(n):
        print(f"{name:32s} {t * 1e3:9.3f} {tf:8.2f} {100 * tf / peak:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
