"""1024^3 float32 GEMM on the CPU: minitvm's best hand schedules against single-threaded numpy.

For each kernel the table reports the run time (median of repeats), GFLOP/s, the fraction of
numpy's speed, and what it cost to get there: ``minitvm.lower`` (schedule -> PrimFunc),
LLVM IR generation (``codegen_llvm`` on the PrimFunc) and JIT (llvmlite -O3 + MCJIT), the last
two together being ``minitvm.build(func, target="llvm")``.

The best schedule (``packed-rb``):
  * B is repacked by an extra compute stage into [n/nr, k, nr] so the micro-kernel reads
    one contiguous nr-wide row of B per k;
  * C is produced in mr x nr register tiles: ``cache_write(C, "local")`` computed at the tile,
    its rows unrolled and its nr columns vectorized (two AVX2 registers for nr=16), so the
    accumulators live in registers over the whole k loop;
  * k is unrolled by ``ku``; tiles run column-panel-major so the packed panel stays in L2.

    python benchmarks/gemm_cpu.py [size] [--quick]
"""
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitvm  # noqa: E402
from minitvm import te  # noqa: E402
from minitvm.codegen.llvm import codegen_llvm  # noqa: E402
from minitvm.runtime import llvm as rt  # noqa: E402


def gemm_blocked(n, bn=32, kf=4):
    """TVM tutorial "loop permutation" schedule: 32x32 blocks, vectorized rows of B."""
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    ko, ki = s[C].split(k, factor=kf)
    s[C].reorder(xo, yo, ko, xi, ki, yi)
    s[C].vectorize(yi)
    return s, [A, B, C]


def gemm_packed_rb(n, mr=4, nr=16, ku=16, parallel=False):
    """Packed B + mr x nr register-blocked micro-kernel (the best found on AVX2)."""
    from minitvm.topi.cpu.matmul import matmul_packed, schedule_matmul_packed
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    C, PB = matmul_packed(A, B, bn=nr)
    return schedule_matmul_packed(C, PB, mr, ku, parallel), [A, B, C]


KERNELS = [
    ("blocked+vec (tutorial)", lambda n: gemm_blocked(n)),
    ("packed-rb 4x16 ku16", lambda n: gemm_packed_rb(n, 4, 16, 16)),
    ("packed-rb 4x16 ku8", lambda n: gemm_packed_rb(n, 4, 16, 8)),
    ("packed-rb 2x32 ku8", lambda n: gemm_packed_rb(n, 2, 32, 8)),
    ("packed-rb 4x16 ku16 parallel", lambda n: gemm_packed_rb(n, 4, 16, 16, parallel=True)),
]


def bench_numpy(a, b, repeat):
    a @ b
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv):
    quick = "--quick" in argv
    args = [x for x in argv if not x.startswith("--")]
    n = int(args[0]) if args else 1024
    repeat = 3 if quick else 7
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (n, n)).astype("float32")
    b = rng.uniform(-1, 1, (n, n)).astype("float32")
    ref = a.astype("float64") @ b.astype("float64")
    cpu, features = rt.host_cpu()
    print(f"GEMM {n}^3 float32 | host cpu {cpu} | numpy: OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')} | minitvm parallel threads: {rt.num_threads()}")

    t_np = bench_numpy(a, b, repeat)
    rows = []
    for name, make in KERNELS:
        s, tensors = make(n)
        t0 = time.perf_counter()
        func = minitvm.lower(s, tensors, name="gemm")
        t_lower = time.perf_counter() - t0
        t0 = time.perf_counter()
        codegen_llvm(func)
        t_codegen = time.perf_counter() - t0
        t0 = time.perf_counter()
        mod = minitvm.build(func, target="llvm")
        t_build = time.perf_counter() - t0
        c = np.full((n, n), np.nan, "float32")
        mod(a, b, c)
        err = float(np.abs(c - ref).max())
        assert err < 1e-3 * np.sqrt(n), f"{name}: max error {err}"
        t = mod.time_evaluator(mod.entry_name, number=3, repeat=repeat)(a, b, c).median
        rows.append((name, t, t_lower, t_codegen, max(t_build - t_codegen, 0.0), err))

    print(f"\n{'kernel':30s} {'ms':>8s} {'GFLOP/s':>8s} {'%numpy':>7s} {'lower ms':>9s} "
          f"{'codegen ms':>10s} {'JIT ms':>8s} {'max err':>8s}")
    print(f"{'numpy matmul (1 thread)':30s} {t_np * 1e3:8.2f} {flops / t_np / 1e9:8.2f} {100.0:6.1f}%")
    for name, t, tl, tc, tj, err in rows:
        print(f"{name:30s} {t * 1e3:8.2f} {flops / t / 1e9:8.2f} {100 * t_np / t:6.1f}% {tl * 1e3:9.1f} "
              f"{tc * 1e3:10.1f} {tj * 1e3:8.1f} {err:8.1e}")
    best = min(rows[:-1], key=lambda r: r[1])
    print(f"\nbest single-threaded: {best[0]}: {flops / best[1] / 1e9:.1f} GFLOP/s = "
          f"{100 * t_np / best[1]:.0f}% of single-threaded numpy")


if __name__ == "__main__":
    main(sys.argv[1:])
