"""Host overhead per kernel launch: CUDAModule.run versus raw cuLaunchKernel (cuda-python).

Launches an empty kernel in batches (small enough that the driver's launch queue never fills, so
the host never waits for the GPU), times only the launching with a host clock, synchronizes between
batches, and prints the median microseconds per launch. Skips with a message where no GPU is.

    PYTHONPATH=. python benchmarks/launch_overhead.py [--batches 60] [--batch 200]
"""
from __future__ import annotations

import argparse
import ctypes
import platform
import statistics
import sys
import time

import numpy as np

import minitvm
from minitvm.runtime import cuda
from minitvm.runtime.cuda import CUDAModule, DimArg, DimVar, KernelLaunch, LaunchPlan, ParamArg
from minitvm.runtime.module import FunctionSignature, ParamSpec

SRC = r"""
extern "C" __global__ void empty3(const float* a, const float* b, float* c, int n) {}
extern "C" __global__ void empty0() {}
"""


def per_launch_us(fn, launches_per_call: int, batches: int, batch: int) -> tuple:
    """Median and min host microseconds per launch of ``fn`` (called ``batch`` times per batch)."""
    for _ in range(batch):  # warm up
        fn()
    cuda.synchronize()
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        t1 = time.perf_counter()
        cuda.synchronize()
        samples.append((t1 - t0) / (batch * launches_per_call) * 1e6)
    return statistics.median(samples), min(samples)


def main(argv=None) -> int:
    """Print the table; return a process exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--batch", type=int, default=200)
    opts = ap.parse_args(argv)

    if not cuda.has_gpu():
        print(f"launch_overhead: skipped, no CUDA device ({cuda.unavailable_reason()})")
        return 0

    import cuda.bindings as cb
    driver = cuda.device._drv  # the driver binding the runtime uses (cuda.bindings.driver)

    arch = cuda.device_arch(0)
    drv_version = cuda.device._check(driver.cuDriverGetVersion(), "cuDriverGetVersion")
    print(f"device: {cuda.device_name(0)} ({arch}), driver API {drv_version // 1000}.{drv_version % 1000 // 10}, "
          f"cuda-bindings {getattr(cb, '__version__', '?')}, NVRTC {'.'.join(map(str, cuda.nvrtc_version()))}, "
          f"Python {platform.python_version()}")

    n = 1024
    sig = FunctionSignature("f", tuple(ParamSpec(x, ("n",), "float32") for x in "ABC"))
    one = LaunchPlan((KernelLaunch("empty3", ((DimVar("n") + 255) // 256, 1, 1), (256, 1, 1), 0,
                                   (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))),))
    four = LaunchPlan(one.launches * 4)
    sig4 = FunctionSignature("f4", sig.params)
    sig0 = FunctionSignature("g", ())
    zero = LaunchPlan((KernelLaunch("empty0", (1, 1, 1), (32, 1, 1), 0, ()),))
    mod = CUDAModule(SRC, [sig, sig4, sig0], {"f": one, "f4": four, "g": zero}, arch=arch)
    dev = minitvm.cuda(0)
    A, B, C = (minitvm.nd.array(np.zeros(n, "float32"), dev) for _ in range(3))
    mod.run("f", (A, B, C))
    mod.run("f4", (A, B, C))
    mod.run("g", ())
    cuda.synchronize()

    # raw cuda-python launches of the same CUfunction
    func = mod._prepared[("f", 0)].launches[0].func
    func0 = mod._prepared[("g", 0)].launches[0].func
    stream = driver.CUstream(0)
    vals = (ctypes.c_uint64 * 4)(A.handle.ptr, B.handle.ptr, C.handle.ptr, n)
    ptrs = (ctypes.c_void_p * 4)(*[ctypes.addressof(vals) + 8 * i for i in range(4)])
    addr = ctypes.addressof(ptrs)
    launch = driver.cuLaunchKernel
    grid = (n + 255) // 256
    typed = ((A.handle.ptr, B.handle.ptr, C.handle.ptr, n),
             (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int))

    def raw_addr():
        launch(func, grid, 1, 1, 256, 1, 1, 0, stream, addr, 0)

    def raw_typed():
        launch(func, grid, 1, 1, 256, 1, 1, 0, stream, typed, 0)

    def raw_noargs():
        launch(func0, 1, 1, 1, 32, 1, 1, 0, stream, 0, 0)

    ctx = cuda.require_device(0)
    set_current = driver.cuCtxSetCurrent

    def ctx_only():
        set_current(ctx)

    args = (A, B, C)
    run = mod.run
    f = mod["f"]

    def mod_run():
        run("f", args)

    def mod_item():
        f(A, B, C)

    def mod_run4():
        run("f4", args)

    def mod_run0():
        run("g", ())

    rows = [
        ("raw cuLaunchKernel, void** address (4 args)", raw_addr, 1),
        ("raw cuLaunchKernel, (values, types) tuple (4 args)", raw_typed, 1),
        ("raw cuLaunchKernel, no args", raw_noargs, 1),
        ("cuCtxSetCurrent alone (paid once per run)", ctx_only, 1),
        ("CUDAModule.run('f', args), 3 tensors + n", mod_run, 1),
        ("mod['f'](A, B, C)", mod_item, 1),
        ("CUDAModule.run, no-arg kernel", mod_run0, 1),
        ("CUDAModule.run, 4-launch plan (per launch)", mod_run4, 4),
    ]
    print(f"\nhost time per launch, median (min) over {opts.batches} batches of {opts.batch} calls")
    print(f"{'what':55s} {'median us':>10s} {'min us':>8s}")
    results = {}
    for label, fn, k in rows:
        med, lo = per_launch_us(fn, k, opts.batches, opts.batch)
        results[label] = med
        print(f"{label:55s} {med:10.2f} {lo:8.2f}")
    over = results["CUDAModule.run('f', args), 3 tensors + n"] - results["raw cuLaunchKernel, void** address (4 args)"]
    print(f"\nCUDAModule.run overhead over the raw launch: {over:.2f} us per call")

    t = mod.time_evaluator("f", number=1000, repeat=5)(A, B, C)
    print(f"time_evaluator('f') per call, CUDA events: {t.median * 1e6:.2f} us "
          "(for an empty kernel this is host-bound: launches are issued slower than the GPU runs them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
