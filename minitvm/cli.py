"""The ``minitvm`` command."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _pick_target(target: str) -> str:
    if target != "auto":
        return target
    from .runtime import cuda
    return "cuda" if cuda.device_count() > 0 else "llvm"


def demo(args) -> int:
    """Compile, check and time a matrix product on the GPU (CUDA) or the CPU (LLVM)."""
    from . import nd, te
    from .driver import build
    from .topi import cpu, cuda
    from .topi.nn import matmul

    target = _pick_target(args.target)
    n = args.size
    A = te.placeholder((n, n), "float32", "A")
    B = te.placeholder((n, n), "float32", "B")
    C = matmul(A, B)
    s = (cuda if target == "cuda" else cpu).schedule_matmul(C)
    t0 = time.perf_counter()
    mod = build(s, [A, B, C], target=target)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    dev = nd.cuda(0) if target == "cuda" else nd.cpu(0)
    ta, tb = nd.array(a, dev), nd.array(b, dev)
    tc = nd.array(np.full((n, n), np.nan, np.float32), dev)
    mod(ta, tb, tc)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.linalg.norm(tc.numpy() - ref) / np.linalg.norm(ref))
    t = mod.time_evaluator(mod.entry_name, number=args.number, repeat=3)(ta, tb, tc).median
    print(f"minitvm {target}: float32 matmul {n}x{n}x{n}")
    print(f"  build     {build_s * 1e3:8.1f} ms (lower + codegen + compile)")
    print(f"  run       {t * 1e3:8.3f} ms   {2 * n ** 3 / t / 1e9:8.1f} GFLOP/s")
    print(f"  rel. error vs float64 numpy: {err:.2e}")
    return 0 if err < 1e-4 else 1


def main(argv=None) -> int:
    """Entry point of the ``minitvm`` command."""
    p = argparse.ArgumentParser(prog="minitvm", description=__doc__)
    sub = p.add_subparsers(dest="cmd")
    d = sub.add_parser("demo", help="compile, check and time a matmul (GPU if present, else CPU)")
    d.add_argument("--target", default="auto", choices=["auto", "cuda", "llvm"])
    d.add_argument("--size", type=int, default=1024)
    d.add_argument("--number", type=int, default=10)
    args = p.parse_args(argv)
    if args.cmd in (None, "demo"):
        if args.cmd is None:
            args = p.parse_args(["demo"] + (argv or sys.argv[1:]))
        return demo(args)
    p.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
