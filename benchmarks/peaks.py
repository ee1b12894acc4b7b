"""Instruction-rate microkernels (FFMA, dp4a) measured in the same run as a benchmark."""
from __future__ import annotations

from minitvm import nd
from minitvm.runtime import cuda
from minitvm.runtime.module import FunctionSignature, ParamSpec

_ITERS = 4096
_SRC = r"""
extern "C" __global__ void __launch_bounds__(256) ffma_peak(float* __restrict__ out, float a, float b) {
  float x0 = threadIdx.x, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6, x7 = x0 + 7;
  for (int i = 0; i < %(iters)d; ++i) {
    #pragma unroll
    for (int j = 0; j < 8; ++j) {
      x0 = fmaf(x0, a, b); x1 = fmaf(x1, a, b); x2 = fmaf(x2, a, b); x3 = fmaf(x3, a, b);
      x4 = fmaf(x4, a, b); x5 = fmaf(x5, a, b); x6 = fmaf(x6, a, b); x7 = fmaf(x7, a, b);
    }
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
}
extern "C" __global__ void __launch_bounds__(256) dp4a_peak(int* __restrict__ out, int a, int b) {
  int x0 = threadIdx.x, x1 = x0 + 1, x2 = x0 + 2, x3 = x0 + 3, x4 = x0 + 4, x5 = x0 + 5, x6 = x0 + 6, x7 = x0 + 7;
  for (int i = 0; i < %(iters)d; ++i) {
    #pragma unroll
    for (int j = 0; j < 8; ++j) {
      x0 = __dp4a(a, b, x0); x1 = __dp4a(a, b, x1); x2 = __dp4a(a, b, x2); x3 = __dp4a(a, b, x3);
      x4 = __dp4a(a, b, x4); x5 = __dp4a(a, b, x5); x6 = __dp4a(a, b, x6); x7 = __dp4a(a, b, x7);
    }
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
}
""" % {"iters": _ITERS}


def _run(kernel: str, dtype: str, ops_per_inst: int) -> float:
    """Ops/second of ``kernel`` over all SMs (median of 5 timed launches)."""
    from cuda.bindings import driver
    cuda.require_device(0)
    sms = cuda.device._check(driver.cuDeviceGetAttribute(
        driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0), "attribute")
    blocks, threads = int(sms) * 8, 256
    sig = FunctionSignature(kernel, (ParamSpec("out", (blocks * threads,), dtype),))
    plan = cuda.LaunchPlan((cuda.KernelLaunch(kernel + "_entry", (blocks, 1, 1), (threads, 1, 1), 0,
                                              (cuda.ParamArg(0),)),))
    entry = (f'extern "C" __global__ void __launch_bounds__(256) {kernel}_entry('
             f'{"float" if dtype == "float32" else "int"}* __restrict__ out) {{\n'
             f'  {kernel}(out, {"1.0001f, 0.0001f" if dtype == "float32" else "0x01020304, 0x01010101"});\n}}\n')
    src = _SRC.replace('extern "C" __global__ void __launch_bounds__(256) ' + kernel,
                       '__device__ __forceinline__ void ' + kernel) + entry
    mod = cuda.CUDAModule(src, [sig], {kernel: plan}, cuda.device_arch(0))
    out = nd.empty((blocks * threads,), dtype, nd.cuda(0))
    t = mod.time_evaluator(kernel, number=3, repeat=5)(out).median
    insts = blocks * threads * _ITERS * 8 * 8
    return insts * ops_per_inst / t


def torch_time(fn, number: int = 20) -> float:
    """Median seconds per call of a PyTorch CUDA function ``fn`` (CUDA events, after warm-up)."""
    import numpy as np
    import torch
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(number):
            fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / number / 1e3)
    return float(np.median(times))


def ffma_peak() -> float:
    """Measured fp32 FFMA rate in FLOP/s (2 flops per FFMA)."""
    return _run("ffma_peak", "float32", 2)


def dp4a_peak() -> float:
    """Measured dp4a rate in OP/s (8 ops per dp4a: 4 multiplies, 4 adds)."""
    return _run("dp4a_peak", "int32", 8)


if __name__ == "__main__":
    if cuda.device_count() == 0:
        print("no CUDA device:", cuda.unavailable_reason())
    else:
        print(f"FFMA peak {ffma_peak() / 1e12:.1f} TFLOPS, dp4a peak {dp4a_peak() / 1e12:.1f} TOPS")
