"""Instruction-rate microkernels (FFMA, dp4a, int8 mma.sync) measured in the same run as a benchmark."""
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
extern "C" __global__ void __launch_bounds__(256) mma_s8_peak(int* __restrict__ out, int a, int b) {
  int c[8][4];
  #pragma unroll
  for (int j = 0; j < 8; ++j) { c[j][0] = threadIdx.x; c[j][1] = j; c[j][2] = 0; c[j][3] = 0; }
  unsigned int a0 = a, a1 = a ^ 1, a2 = a ^ 2, a3 = a ^ 3, b0 = b, b1 = b ^ 1;
  for (int i = 0; i < %(iters)d; ++i) {
    #pragma unroll
    for (int r = 0; r < 8; ++r) {
      #pragma unroll
      for (int j = 0; j < 8; ++j) {
        asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%%0, %%1, %%2, %%3}, {%%4, %%5, %%6, %%7}, "
                     "{%%8, %%9}, {%%0, %%1, %%2, %%3};"
                     : "+r"(c[j][0]), "+r"(c[j][1]), "+r"(c[j][2]), "+r"(c[j][3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
      }
    }
  }
  int s = 0;
  #pragma unroll
  for (int j = 0; j < 8; ++j) s += c[j][0] + c[j][1] + c[j][2] + c[j][3];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
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


def torch_time(fn, number: int = 20, graph: bool = True) -> float:
    """Median seconds per call of a PyTorch CUDA function ``fn`` (CUDA events, after warm-up).

    With ``graph`` the ``number`` calls are captured once as a CUDA graph and replayed, so a small
    kernel is timed rather than Python's launch overhead (about 15 us per call), as minitvm's
    kernels are; where capture fails the calls are launched one by one."""
    import numpy as np
    import torch
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    run = None
    if graph:
        try:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for _ in range(number):
                    fn()
            run = g.replay
        except RuntimeError:
            run = None
    if run is None:
        def run():
            for _ in range(number):
                fn()
    times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        run()
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


def mma_s8_peak() -> float:
    """Measured int8 tensor-core rate in OP/s: ``mma.sync.m16n8k32`` s8, 2 x 16 x 8 x 32 ops per
    warp instruction, so 256 per thread."""
    return _run("mma_s8_peak", "int32", 256)


if __name__ == "__main__":
    if cuda.device_count() == 0:
        print("no CUDA device:", cuda.unavailable_reason())
    else:
        print(f"FFMA peak {ffma_peak() / 1e12:.1f} TFLOPS, dp4a peak {dp4a_peak() / 1e12:.1f} TOPS, "
              f"mma.sync s8 peak {mma_s8_peak() / 1e12:.1f} TOPS")
