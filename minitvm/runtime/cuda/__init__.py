"""The CUDA runtime: devices, device memory, NVRTC compilation to cubin, modules and launches.

Built on cuda-python (``from cuda.bindings import driver, nvrtc``). The runtime never sees IR: a
backend hands it CUDA C source text, one :class:`~minitvm.runtime.module.FunctionSignature` per
entry point and one :class:`LaunchPlan` per entry point (plain data: which ``extern "C"
__global__`` kernels to launch, in which order, with which grid, block and arguments).

One module per job:

* ``device``: loading the driver, devices and their primary contexts, driver error checking;
* ``memory``: :class:`DeviceBuffer`;
* ``compile``: :func:`compile_cuda` / :func:`compile_ptx` with NVRTC, and the cubin cache;
* ``plan``: launch plans as data (:class:`LaunchPlan`, :class:`KernelLaunch`, the kernel
  arguments :class:`ParamArg` / :class:`WorkspaceArg` / :class:`DimArg`, size expressions
  :class:`DimExpr`) and their checks;
* ``launch``: the launch path (:class:`~minitvm.runtime.cuda.launch.PreparedFunction`);
* ``module``: :class:`CUDAModule` (compiles when constructed, loads on first run);
* ``stream``: :class:`Stream` and :class:`CUDAGraph`.

Every public name is re-exported here (``from minitvm.runtime import cuda; cuda.DeviceBuffer``).
"""
from .compile import (cache_dir, clear_memory_cache, compile_cuda, compile_ptx, compile_stats,
                      normalize_arch, nvrtc_version, supported_archs)
from .device import (compute_capability, device_arch, device_count, device_name, has_gpu,
                     require_device, synchronize, unavailable_reason)
from .memory import DeviceBuffer, ExternalBuffer, pointer_device
from .module import CUDAModule
from .plan import (DimArg, DimConst, DimExpr, DimOp, DimVar, KernelLaunch, LaunchPlan, ParamArg,
                   WorkspaceArg)
from .stream import CUDAGraph, Stream

__all__ = [
    "device_count", "has_gpu", "unavailable_reason", "device_arch", "device_name", "compute_capability",
    "synchronize", "require_device", "DeviceBuffer", "ExternalBuffer", "pointer_device", "compile_cuda", "compile_ptx", "nvrtc_version",
    "supported_archs", "normalize_arch", "cache_dir", "compile_stats", "clear_memory_cache", "KernelLaunch",
    "LaunchPlan", "ParamArg", "WorkspaceArg", "DimArg", "DimExpr", "DimConst", "DimVar", "DimOp", "CUDAModule",
    "Stream", "CUDAGraph",
]
