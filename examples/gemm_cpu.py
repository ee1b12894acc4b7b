"""GEMM on the CPU, step by step: from the naive loop nest to a packed, register-blocked kernel.

Follows TVM's "How to optimize GEMM on CPU" tutorial with minitvm:

    naive -> blocked -> vectorized -> loop permutation -> array packing -> write cache -> parallel

Each schedule is built for LLVM, checked against numpy, timed, and reported next to numpy's own
matmul (single-threaded: OpenBLAS is limited to one thread before numpy is imported, or through
threadpoolctl when it is installed).

    python examples/gemm_cpu.py            # 1024 x 1024 x 1024
    python examples/gemm_cpu.py 512        # any size; tiles that overhang are guarded
    python examples/gemm_cpu.py 512 --ir   # also print the lowered loop nest of each schedule
"""
import os
import sys
import time

# Single-threaded BLAS unless the caller asked otherwise; must happen before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minitvm  # noqa: E402
from minitvm import te  # noqa: E402

BN = 32          # block size of the blocked schedules (TVM tutorial value)
KFACTOR = 4      # reduction split


def declare(n, m, k, packed_bn=None):
    """C = A @ B; with ``packed_bn`` B is first repacked as [ceil(n/bn), k, bn] (zero-padded)."""
    A = te.placeholder((m, k), name="A")
    B = te.placeholder((k, n), name="B")
    kk = te.reduce_axis((0, k), name="k")
    if packed_bn is None:
        C = te.compute((m, n), lambda i, j: te.sum(A[i, kk] * B[kk, j], axis=kk), name="C")
        return A, B, C, None
    bn = packed_bn
    PB = te.compute(((n + bn - 1) // bn, k, bn),
                    lambda x, y, z: te.if_then_else(x * bn + z < n, B[y, x * bn + z], 0.0),
                    name="packedB")
    C = te.compute((m, n), lambda i, j: te.sum(A[i, kk] * PB[j // bn, kk, j % bn], axis=kk), name="C")
    return A, B, C, PB


def naive(n, m, k):
    A, B, C, _ = declare(n, m, k)
    return te.create_schedule(C.op), [A, B, C]


def blocked(n, m, k):
    A, B, C, _ = declare(n, m, k)
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    (kk,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kk, factor=KFACTOR)
    s[C].reorder(xo, yo, ko, ki, xi, yi)
    return s, [A, B, C]


def vectorized(n, m, k):
    s, args = blocked(n, m, k)
    C = args[2]
    s[C].vectorize(s[C].leaf_iter_vars[-1])
    return s, args


def permuted(n, m, k):
    A, B, C, _ = declare(n, m, k)
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    (kk,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kk, factor=KFACTOR)
    s[C].reorder(xo, yo, ko, xi, ki, yi)       # B's row (yi) is the innermost, contiguous loop
    s[C].vectorize(yi)
    return s, [A, B, C]


def packed(n, m, k):
    A, B, C, PB = declare(n, m, k, packed_bn=BN)
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], BN, BN)
    (kk,) = s[C].op.reduce_axis
    ko, ki = s[C].split(kk, factor=KFACTOR)
    s[C].reorder(xo, yo, ko, xi, ki, yi)
    s[C].vectorize(yi)
    s[PB].vectorize(s[PB].op.axis[2])
    return s, [A, B, C]


def write_cache(n, m, k, mr=4, nr=16, kunroll=16, parallel=False):
    """Register blocking: a mr x nr tile of C accumulates in a local buffer over all of k
    (the library's schedule, ``topi.cpu.matmul.schedule_matmul_packed``)."""
    from minitvm.topi.cpu.matmul import matmul_packed, schedule_matmul_packed
    A = te.placeholder((m, k), name="A")
    B = te.placeholder((k, n), name="B")
    C, PB = matmul_packed(A, B, bn=nr)
    return schedule_matmul_packed(C, PB, mr, kunroll, parallel), [A, B, C]


def write_cache_parallel(n, m, k):
    return write_cache(n, m, k, parallel=True)


SCHEDULES = [
    ("naive", naive),
    ("blocked 32x32", blocked),
    ("+ vectorize", vectorized),
    ("+ loop permutation", permuted),
    ("+ array packing", packed),
    ("packed + write cache 4x16", write_cache),
    ("... + parallel", write_cache_parallel),
]


def numpy_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
        return ", ".join(f"{i['internal_api']}: {i['num_threads']} thread(s)" for i in threadpool_info()) or "?"
    except ImportError:
        return f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} (threadpoolctl not installed)"


def time_numpy(a, b, repeat):
    try:
        from threadpoolctl import threadpool_limits
        ctx = threadpool_limits(limits=1)
    except ImportError:
        import contextlib
        ctx = contextlib.nullcontext()
    with ctx:
        a @ b
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv):
    args = [x for x in argv if not x.startswith("--")]
    show_ir = "--ir" in argv
    size = int(args[0]) if args else 1024
    n = m = k = size
    flops = 2.0 * m * n * k
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (m, k)).astype("float32")
    b = rng.uniform(-1, 1, (k, n)).astype("float32")
    ref = a.astype("float64") @ b.astype("float64")

    from minitvm.runtime.llvm import num_threads
    print(f"GEMM {m}x{k} @ {k}x{n}, float32; numpy: {numpy_threads()}; "
          f"minitvm parallel loops: {num_threads()} thread(s)")
    t_np = time_numpy(a, b, repeat=5)
    rows = [("numpy (OpenBLAS, 1 thread)", t_np, "")]
    for name, make in SCHEDULES:
        s, tensors = make(n, m, k)
        if show_ir:
            print(f"--- {name}\n{minitvm.lower(s, tensors, simple_mode=True)}")
        f = minitvm.build(s, tensors, target="llvm")
        c = np.full((m, n), np.nan, "float32")
        f(a, b, c)
        np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3 * np.sqrt(k),
                                   err_msg=f"schedule {name!r} computed a wrong result")
        slow = name == "naive" or size >= 2048
        res = f.time_evaluator(f.entry_name, number=1 if slow else 3, repeat=1 if slow else 3)(a, b, c)
        rows.append((name, res.median, "ok"))

    print(f"\n{'schedule':30s} {'ms':>10s} {'GFLOP/s':>9s} {'vs numpy':>9s}  check")
    for name, t, check in rows:
        print(f"{name:30s} {t * 1e3:10.2f} {flops / t / 1e9:9.2f} {t_np / t:8.1%}  {check}")


if __name__ == "__main__":
    main(sys.argv[1:])
