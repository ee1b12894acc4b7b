"""fp32 4096^3 GEMM: minitvm's best hand schedule vs torch.matmul (TF32 off), same run.

Also reports minitvm's host overhead per launch. Prints a table.

    PYTHONPATH=. python3 benchmarks/gemm_cuda.py [n]
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from gemm_cuda import SCHEDULES, run  # noqa: E402
from peaks import ffma_peak  # noqa: E402

from minitvm import nd, te  # noqa: E402
import minitvm  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402


def torch_matmul(n):
    """Seconds per torch.matmul (fp32, TF32 off), or None without torch/GPU."""
    try:
        import torch
    except ImportError:
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    for _ in range(3):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(10):
            torch.matmul(a, b)
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 10 / 1e3)
    return float(np.median(times))


def launch_overhead_us():
    """Host microseconds per call of a tiny minitvm kernel (launch path only)."""
    A = te.placeholder((32,), "float32", "A")
    B = te.compute((32,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    s[B].bind(B.op.axis[0], te.thread_axis("threadIdx.x"))
    mod = minitvm.build(s, [A, B], "cuda")
    a, b = nd.array(np.ones(32, "float32"), nd.cuda()), nd.empty((32,), "float32", nd.cuda())
    for _ in range(100):
        mod(a, b)
    cuda.synchronize()
    t = time.perf_counter()
    for _ in range(2000):
        mod(a, b)
    host = (time.perf_counter() - t) / 2000
    cuda.synchronize()
    return host * 1e6


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    if cuda.device_count() == 0:
        print("no CUDA device here:", cuda.unavailable_reason())
        return
    peak = ffma_peak() / 1e12
    rows = run(n, SCHEDULES[1:], number=5)
    tt = torch_matmul(n)
    print(f"\nfp32 GEMM {n}^3 on {cuda.device_name(0)}; FFMA peak measured in this run: {peak:.1f} TFLOPS")
    print(f"{'kernel':34s} {'ms':>9s} {'TFLOPS':>8s} {'% FFMA':>7s} {'vs torch':>9s}")
    for name, t, tf in rows:
        vs = f"{tt / t:8.2f}x" if tt else "     n/a"
        print(f"{'minitvm ' + name:34s} {t * 1e3:9.3f} {tf:8.2f} {100 * tf / peak:6.1f}% {vs}")
    if tt:
        tf = 2 * n ** 3 / tt / 1e12
        print(f"{'torch.matmul (TF32 off)':34s} {tt * 1e3:9.3f} {tf:8.2f} {100 * tf / peak:6.1f}%     1.00x")
    print(f"host overhead per minitvm launch: {launch_overhead_us():.1f} us")


if __name__ == "__main__":
    main()
