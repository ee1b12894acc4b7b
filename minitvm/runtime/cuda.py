"""The CUDA runtime: devices, device memory, NVRTC compilation to cubin, modules and launches.

Built on cuda-python (``from cuda.bindings import driver, nvrtc``). The runtime never sees IR: a
backend hands it CUDA C source text, one :class:`~minitvm.runtime.module.FunctionSignature` per
entry point and one :class:`LaunchPlan` per entry point (plain data: which ``extern "C"
__global__`` kernels to launch, in which order, with which grid, block and arguments).

* **Devices.** :func:`device_count` answers 0 (never raises) where the driver library cannot be
  loaded or ``cuInit`` fails; :func:`unavailable_reason` says why. One primary context per device is
  retained lazily and made current by every call that touches the device.
* **Memory.** :class:`DeviceBuffer` is one ``cuMemAlloc`` allocation, freed when collected.
* **Compilation.** :func:`compile_cuda` turns source into a cubin for one exact architecture with
  NVRTC, cached in-process and on disk (``$MINITVM_CACHE_DIR/cubin``, default
  ``~/.cache/minitvm/cubin``). Compile errors raise :class:`~minitvm.errors.BuildError` carrying
  NVRTC's log and the generated source lines around each error.
* **Modules.** :class:`CUDAModule` compiles when constructed (so a machine without a GPU still
  reports compile errors) and loads the cubin on first run. The launch path does the per-function
  work once (function handles, argument decoding, compiled grid expressions, a ctypes parameter
  block per launch) and per call only fills the parameter block and calls ``cuLaunchKernel``.

All work goes to the legacy default stream of the device's primary context, so launches are
ordered with each other and with the synchronous copies of :class:`DeviceBuffer`.
"""
from __future__ import annotations

import ctypes
import hashlib
import operator
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..device_limits import cuda_limits
from ..errors import BuildError, DeviceError, RuntimeError_, ShapeError
from .module import FunctionSignature, Module

try:  # cuda-python; importing it does not need a driver (the driver library loads on first call)
    from cuda.bindings import driver as _drv
    from cuda.bindings import nvrtc as _nvrtc
    _IMPORT_ERROR: Exception | None = None
except Exception as _exc:  # pragma: no cover - only where cuda-python is not installed
    _drv = None
    _nvrtc = None
    _IMPORT_ERROR = _exc

__all__ = [
    "device_count", "has_gpu", "unavailable_reason", "device_arch", "device_name", "synchronize",
    "require_device", "DeviceBuffer", "compile_cuda", "compile_ptx", "nvrtc_version",
    "supported_archs", "cache_dir", "compile_stats", "clear_memory_cache", "KernelLaunch",
    "LaunchPlan", "CUDAModule", "Stream", "CUDAGraph",
]

_DEBUG_ENV = "MINITVM_CUDA_DEBUG"
_CACHE_ENV = "MINITVM_CACHE_DIR"
_PARAM_SLOT = 8  # bytes per kernel-parameter slot in the ctypes parameter block


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------------------------
# Error checking
# --------------------------------------------------------------------------------------------

def _err_name(err) -> str:
    """The CUresult's name (``CUDA_ERROR_INVALID_VALUE``) and, where the driver gives one, its text."""
    name = getattr(err, "name", None) or f"CUresult {int(err)}"
    try:
        res, text = _drv.cuGetErrorString(err)
        if not res and text:
            text = text.decode() if isinstance(text, bytes) else str(text)
            return f"{name}: {text}"
    except Exception:  # the driver may be gone (shutdown) or missing
        pass
    return name


def _check(result, what: str):
    """Unpack a cuda-python driver result tuple ``(CUresult, *values)``.

    Raises :class:`~minitvm.errors.DeviceError` naming ``what`` and the CUresult on failure;
    otherwise returns ``None``, the single value, or the tuple of values.
    """
    if isinstance(result, tuple):
        err, rest = result[0], result[1:]
    else:
        err, rest = result, ()
    if err:  # CUDA_SUCCESS is 0
        raise DeviceError(f"{what} failed: {_err_name(err)}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


# --------------------------------------------------------------------------------------------
# Devices and contexts
# --------------------------------------------------------------------------------------------

class _DeviceState:
    """Process-wide driver state: whether ``cuInit`` worked, and the retained primary contexts."""

    def __init__(self):
        self.lock = threading.RLock()
        self.count: int | None = None
        self.reason: str | None = None
        self.contexts: dict = {}   # device index -> CUcontext (primary, retained once)
        self.devices: dict = {}    # device index -> CUdevice


_devices = _DeviceState()


def _init() -> int:
    st = _devices
    if st.count is not None:
        return st.count
    with st.lock:
        if st.count is not None:
            return st.count
        count, reason = 0, None
        if _drv is None:
            reason = f"cuda-python is not installed ({_IMPORT_ERROR})"
        else:
            try:
                (err,) = _drv.cuInit(0)
                if err:
                    reason = f"cuInit failed with {_err_name(err)}"
                else:
                    err, n = _drv.cuDeviceGetCount()
                    if err:
                        reason = f"cuDeviceGetCount failed with {_err_name(err)}"
                    else:
                        count = int(n)
                        if count == 0:
                            reason = "the CUDA driver reports no devices"
            except Exception as exc:  # noqa: BLE001 - loader errors (cuda.pathfinder), OSError, ...
                reason = (f"the CUDA driver library could not be loaded "
                          f"({type(exc).__name__}: {str(exc).strip()})")
        st.reason = reason
        st.count = count
        return count


def device_count() -> int:
    """Number of CUDA devices; 0 where the driver cannot be loaded or initialized (never raises)."""
    try:
        return _init()
    except Exception:  # noqa: BLE001 - the promise is "never raises"
        return 0


def has_gpu() -> bool:
    """True if at least one CUDA device is usable here."""
    return device_count() > 0


def unavailable_reason() -> str | None:
    """Why no CUDA device can be used (``None`` when at least one can)."""
    device_count()
    return _devices.reason if _devices.count == 0 else None


def require_device(index: int = 0):
    """Make sure CUDA device ``index`` exists; make its primary context current and return it.

    Raises :class:`~minitvm.errors.DeviceError` ("no CUDA device: ...reason...") otherwise.
    """
    index = int(index)
    st = _devices
    ctx = st.contexts.get(index)
    if ctx is None:
        n = device_count()
        if n == 0:
            raise DeviceError(f"no CUDA device: {st.reason or 'none found'}")
        if not 0 <= index < n:
            raise DeviceError(f"no CUDA device: device index {index} requested, but only {n} "
                              f"device(s) exist (indices 0..{n - 1})")
        with st.lock:
            ctx = st.contexts.get(index)
            if ctx is None:
                dev = _check(_drv.cuDeviceGet(index), f"cuDeviceGet({index})")
                ctx = _check(_drv.cuDevicePrimaryCtxRetain(dev), f"cuDevicePrimaryCtxRetain(device {index})")
                st.devices[index] = dev
                st.contexts[index] = ctx
    _check(_drv.cuCtxSetCurrent(ctx), f"cuCtxSetCurrent(device {index})")
    return ctx


def _cu_device(index: int):
    require_device(index)
    return _devices.devices[int(index)]


def _attribute(index: int, attr) -> int:
    dev = _cu_device(index)
    return int(_check(_drv.cuDeviceGetAttribute(attr, dev), f"cuDeviceGetAttribute({attr}, device {index})"))


def compute_capability(index: int = 0) -> tuple:
    """``(major, minor)`` compute capability of device ``index``."""
    A = _drv.CUdevice_attribute
    return (_attribute(index, A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            _attribute(index, A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))


def device_arch(index: int = 0) -> str:
    """The architecture name of device ``index`` from its compute capability, e.g. ``"sm_90"``."""
    major, minor = compute_capability(index)
    return f"sm_{major}{minor}"


def device_name(index: int = 0) -> str:
    """The marketing name of device ``index`` (e.g. ``"NVIDIA H100 80GB HBM3"``)."""
    dev = _cu_device(index)
    name = _check(_drv.cuDeviceGetName(256, dev), f"cuDeviceGetName(device {index})")
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip()


def synchronize(index: int = 0) -> None:
    """Wait until all work queued on device ``index`` is done (raises DeviceError on a fault)."""
    require_device(index)
    _check(_drv.cuCtxSynchronize(), f"cuCtxSynchronize(device {index})")


# --------------------------------------------------------------------------------------------
# Device memory
# --------------------------------------------------------------------------------------------

def _host_view(array, what: str, writable: bool) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise DeviceError(f"{what}: expected a numpy array, got {type(array).__name__}")
    if not array.flags.c_contiguous:
        raise ShapeError(f"{what}: the numpy array must be C-contiguous (use np.ascontiguousarray)")
    if writable and not array.flags.writeable:
        raise ShapeError(f"{what}: the numpy array is read-only")
    return array


class DeviceBuffer:
    """``nbytes`` bytes of global memory on CUDA device ``device_index`` (``cuMemAlloc``).

    ``ptr`` is the device address as an int (0 for an empty buffer). The memory is freed when the
    object is collected, including at interpreter shutdown.
    """

    __slots__ = ("nbytes", "device_index", "ptr", "_ctx", "_api", "__weakref__")

    def __init__(self, nbytes: int, device_index: int = 0):
        self.ptr = 0
        nbytes = operator.index(nbytes)
        if nbytes < 0:
            raise ShapeError(f"DeviceBuffer: size must be non-negative, got {nbytes} bytes")
        self.nbytes = nbytes
        self.device_index = int(device_index)
        self._ctx = require_device(self.device_index)
        self._api = _drv  # the driver that allocated it frees it (also during interpreter shutdown)
        if nbytes:
            dptr = _check(_drv.cuMemAlloc(nbytes),
                          f"cuMemAlloc of {nbytes} bytes on CUDA device {self.device_index}")
            self.ptr = int(dptr)

    def _size_check(self, n: int, what: str) -> None:
        if n != self.nbytes:
            raise ShapeError(f"DeviceBuffer.{what}: the buffer holds {self.nbytes} bytes but the other "
                             f"side has {n} bytes")

    def copy_from_host(self, array: np.ndarray) -> None:
        """Copy a C-contiguous numpy array of exactly ``nbytes`` bytes to the device (synchronous)."""
        array = _host_view(array, "DeviceBuffer.copy_from_host", writable=False)
        self._size_check(array.nbytes, "copy_from_host")
        if not self.nbytes:
            return
        require_device(self.device_index)
        _check(_drv.cuMemcpyHtoD(self.ptr, array.ctypes.data, self.nbytes),
               f"cuMemcpyHtoD of {self.nbytes} bytes to device {self.device_index}")

    def copy_to_host(self, array: np.ndarray) -> np.ndarray:
        """Copy the buffer into a writable C-contiguous numpy array of ``nbytes`` bytes (synchronous)."""
        array = _host_view(array, "DeviceBuffer.copy_to_host", writable=True)
        self._size_check(array.nbytes, "copy_to_host")
        if self.nbytes:
            require_device(self.device_index)
            _check(_drv.cuMemcpyDtoH(array.ctypes.data, self.ptr, self.nbytes),
                   f"cuMemcpyDtoH of {self.nbytes} bytes from device {self.device_index}")
        return array

    def copy_from_device(self, other: "DeviceBuffer") -> None:
        """Copy another DeviceBuffer of the same size into this one (ordered on the default stream)."""
        if not isinstance(other, DeviceBuffer):
            raise DeviceError(f"DeviceBuffer.copy_from_device: expected a DeviceBuffer, got {type(other).__name__}")
        self._size_check(other.nbytes, "copy_from_device")
        if not self.nbytes:
            return
        require_device(self.device_index)
        if other.device_index == self.device_index:
            _check(_drv.cuMemcpyDtoD(self.ptr, other.ptr, self.nbytes),
                   f"cuMemcpyDtoD of {self.nbytes} bytes on device {self.device_index}")
        else:
            _check(_drv.cuMemcpyPeer(self.ptr, self._ctx, other.ptr, other._ctx, self.nbytes),
                   f"cuMemcpyPeer of {self.nbytes} bytes from device {other.device_index} "
                   f"to device {self.device_index}")

    def memset_d8(self, byte: int) -> None:
        """Set every byte to ``byte`` (0..255); used to poison outputs in tests."""
        byte = operator.index(byte)
        if not 0 <= byte <= 255:
            raise ValueError(f"DeviceBuffer.memset_d8: byte must be in 0..255, got {byte}")
        if self.nbytes:
            require_device(self.device_index)
            _check(_drv.cuMemsetD8(self.ptr, byte, self.nbytes),
                   f"cuMemsetD8 of {self.nbytes} bytes on device {self.device_index}")

    def free(self) -> None:
        """Free the memory now (idempotent; later use of ``ptr`` is an error)."""
        ptr, self.ptr = self.ptr, 0
        if ptr:
            _free_in_context(ptr, self._ctx, self._api)

    def __del__(self):
        try:
            self.free()
        except Exception:  # noqa: BLE001 - never raise from a finalizer (e.g. during shutdown)
            pass

    def __repr__(self):
        return f"<DeviceBuffer {self.nbytes} bytes at 0x{self.ptr:x} on cuda({self.device_index})>"


def _free_in_context(ptr: int, ctx, drv) -> None:
    """cuMemFree in ``ctx`` without changing the calling thread's current context."""
    if drv is None:
        return
    (err,) = drv.cuCtxPushCurrent(ctx)
    if err:
        return  # the driver is shutting down: the context and its memory are going anyway
    try:
        drv.cuMemFree(ptr)
    finally:
        drv.cuCtxPopCurrent()


# --------------------------------------------------------------------------------------------
# NVRTC compilation and the cubin cache
# --------------------------------------------------------------------------------------------

_SOURCE_NAME = "kernel.cu"
_ARCH_RE = re.compile(r"^(?:sm_|compute_)?(\d+)([af]?)$")
_CACHE_MAGIC = b"MINITVM-CUBIN-1\n"
_compile_lock = threading.Lock()
_memory_cache: dict = {}
_stats = {"nvrtc_compiles": 0, "memory_hits": 0, "disk_hits": 0, "disk_writes": 0, "corrupt_entries": 0}
_nvrtc_info: dict = {}


def _require_nvrtc():
    if _nvrtc is None:
        raise BuildError(f"cannot compile CUDA C: cuda-python is not installed ({_IMPORT_ERROR}); "
                         "pip install cuda-python nvidia-cuda-nvrtc")


def nvrtc_version() -> tuple:
    """NVRTC's ``(major, minor)`` version."""
    if "version" not in _nvrtc_info:
        _require_nvrtc()
        try:
            err, major, minor = _nvrtc.nvrtcVersion()
        except Exception as exc:  # noqa: BLE001 - loader errors
            raise BuildError(f"NVRTC could not be loaded ({type(exc).__name__}: {exc}); "
                             "pip install nvidia-cuda-nvrtc") from exc
        if err:
            raise BuildError(f"nvrtcVersion failed: {err}")
        _nvrtc_info["version"] = (int(major), int(minor))
    return _nvrtc_info["version"]


def supported_archs() -> tuple:
    """The ``sm_XY`` numbers (e.g. ``(75, 80, ..., 90, ...)``) this NVRTC can compile for."""
    if "archs" not in _nvrtc_info:
        nvrtc_version()
        archs: tuple = ()
        try:
            err, lst = _nvrtc.nvrtcGetSupportedArchs()
            if not err:
                archs = tuple(int(a) for a in lst)
        except Exception:  # noqa: BLE001 - old NVRTC: let the compiler itself judge
            archs = ()
        _nvrtc_info["archs"] = archs
    return _nvrtc_info["archs"]


def _normalize_arch(arch) -> str:
    """``"sm_90"``, ``"90"``, ``90``, ``"sm_90a"`` -> ``"sm_90"``/``"sm_90a"``; BuildError otherwise."""
    m = _ARCH_RE.match(str(arch).strip())
    if not m:
        raise BuildError(f"unknown CUDA architecture {arch!r}: expected a name such as 'sm_80' or 'sm_90'")
    return f"sm_{m.group(1)}{m.group(2)}"


def _check_arch_supported(arch: str) -> None:
    number = int(_ARCH_RE.match(arch).group(1))
    archs = supported_archs()
    if archs and number not in archs:
        major, minor = nvrtc_version()
        known = ", ".join(f"sm_{a}" for a in archs)
        raise BuildError(f"NVRTC {major}.{minor} cannot compile for {arch}; it supports {known}"
                         + (" (CUDA 13 dropped architectures below sm_75)" if number < 75 else ""))


def cache_dir() -> Path:
    """Where compiled cubins are cached: ``$MINITVM_CACHE_DIR/cubin``, default ``~/.cache/minitvm/cubin``."""
    root = os.environ.get(_CACHE_ENV, "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "minitvm"
    return base / "cubin"


def compile_stats() -> dict:
    """Counters of this process's cubin compilations: ``nvrtc_compiles``, ``memory_hits``, ``disk_hits``, ..."""
    return dict(_stats)


def clear_memory_cache() -> None:
    """Forget the in-process cubin cache (the on-disk cache stays)."""
    with _compile_lock:
        _memory_cache.clear()


def _cache_key(source: str, arch: str, options: tuple) -> str:
    major, minor = nvrtc_version()
    h = hashlib.sha256()
    for part in ("minitvm-cubin-v1", source, arch, "\x1f".join(options), f"nvrtc-{major}.{minor}"):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _disk_read(path: Path):
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_CACHE_MAGIC)
    if len(data) < head + 32 or not data.startswith(_CACHE_MAGIC):
        _stats["corrupt_entries"] += 1
        return None
    digest, payload = data[head:head + 32], data[head + 32:]
    if hashlib.sha256(payload).digest() != digest or not payload.startswith(b"\x7fELF"):
        _stats["corrupt_entries"] += 1
        return None
    return payload


def _disk_write(path: Path, cubin: bytes) -> None:
    """Atomically write a cache entry (tmp file + os.replace); failures only lose the cache entry."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
        with os.fdopen(fd, "wb") as f:
            f.write(_CACHE_MAGIC + hashlib.sha256(cubin).digest() + cubin)
        os.replace(tmp, path)
        tmp = None
        _stats["disk_writes"] += 1
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_ERROR_LINE_RE = re.compile(re.escape(_SOURCE_NAME) + r"\((\d+)\): (?:catastrophic )?error")


def _source_excerpts(source: str, log: str, context: int = 3, max_errors: int = 10) -> str:
    """The source lines around each ``kernel.cu(LINE): error`` of ``log``, numbered, LINE marked."""
    lines = source.splitlines()
    seen, out = [], []
    for m in _ERROR_LINE_RE.finditer(log):
        line = int(m.group(1))
        if line in seen:
            continue
        seen.append(line)
        if len(seen) > max_errors:
            out.append("... (more errors; see the log above)")
            break
        lo, hi = max(1, line - context), min(len(lines), line + context)
        width = len(str(hi))
        out.append(f"{_SOURCE_NAME}:{line}:")
        for k in range(lo, hi + 1):
            mark = ">>" if k == line else "  "
            out.append(f"{mark} {k:>{width}} | {lines[k - 1]}")
    return "\n".join(out)


def _nvrtc_log(prog) -> str:
    err, size = _nvrtc.nvrtcGetProgramLogSize(prog)
    if err or size <= 1:
        return ""
    buf = b" " * size
    (err,) = _nvrtc.nvrtcGetProgramLog(prog, buf)
    if err:
        return ""
    return buf.rstrip(b"\0").decode(errors="replace").strip()


def _nvrtc_compile(source: str, options: tuple, want: str, arch: str) -> bytes:
    """Run NVRTC; return the cubin or PTX bytes; raise BuildError with the log and source excerpts."""
    _require_nvrtc()
    opts = [o.encode() for o in options]
    try:
        err, prog = _nvrtc.nvrtcCreateProgram(source.encode(), _SOURCE_NAME.encode(), 0, [], [])
    except Exception as exc:  # noqa: BLE001 - loader errors
        raise BuildError(f"NVRTC could not be loaded ({type(exc).__name__}: {exc})") from exc
    if err:
        raise BuildError(f"nvrtcCreateProgram failed: {err}")
    try:
        (err,) = _nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        log = _nvrtc_log(prog)
        if err:
            name = getattr(err, "name", str(err))
            major, minor = nvrtc_version()
            parts = [f"NVRTC {major}.{minor} failed to compile the generated CUDA C for {arch} ({name})",
                     f"options: {' '.join(options)}", "--- NVRTC log ---", log or "(empty)"]
            excerpts = _source_excerpts(source, log)
            if excerpts:
                parts += ["--- generated source around the errors ---", excerpts]
            exc = BuildError("\n".join(parts))
            exc.log = log
            exc.source = source
            exc.options = tuple(options)
            raise exc
        if want == "cubin":
            err, size = _nvrtc.nvrtcGetCUBINSize(prog)
            if err or size == 0:
                raise BuildError(f"NVRTC produced no cubin for {arch} (options: {' '.join(options)})")
            buf = b" " * size
            _check_nvrtc(_nvrtc.nvrtcGetCUBIN(prog, buf), "nvrtcGetCUBIN")
            return bytes(buf)
        err, size = _nvrtc.nvrtcGetPTXSize(prog)
        if err or size == 0:
            raise BuildError(f"NVRTC produced no PTX for {arch}")
        buf = b" " * size
        _check_nvrtc(_nvrtc.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return bytes(buf).rstrip(b"\0")
    finally:
        _nvrtc.nvrtcDestroyProgram(prog)


def _check_nvrtc(result, what: str) -> None:
    err = result[0] if isinstance(result, tuple) else result
    if err:
        raise BuildError(f"{what} failed: {getattr(err, 'name', err)}")


def _full_options(arch: str, options, prefix: str) -> tuple:
    options = tuple(str(o) for o in options)
    full = (f"--gpu-architecture={prefix}{arch[3:]}",)
    if not any(o.startswith(("--std", "-std")) for o in options):
        full += ("--std=c++17",)
    return full + options


_split_compile = {"supported": None}     # None: not tried yet


def _split_compile_options(source: str) -> tuple:
    """``--split-compile=0`` (optimize in parallel, on every core) for a source of several
    kernels, such as a whole model, unless this NVRTC has rejected the option. Measured on the
    int8 ResNet-50 at batch 16 (59 kernels) with 2 cores: 23.3 s -> 15.0 s."""
    if _split_compile["supported"] is False or source.count("__global__") < 2:
        return ()
    return ("--split-compile=0",)


def compile_cuda(source: str, arch: str = "sm_90", options=(), cache: bool = True) -> bytes:
    """Compile CUDA C ``source`` with NVRTC to a cubin for exactly ``arch`` (e.g. ``"sm_90"``).

    Kernels must be ``extern "C" __global__``. Adds ``--gpu-architecture=sm_XY --std=c++17`` to
    ``options`` (and ``--split-compile=0`` for a source of several kernels, where NVRTC takes
    it). Results are cached in-process and on disk (see :func:`cache_dir`), keyed by the
    sha256 of source, arch, options and NVRTC version; a corrupt disk entry is ignored and rewritten.
    Raises :class:`~minitvm.errors.BuildError` with NVRTC's log and the source lines around each error.
    """
    if not isinstance(source, str):
        raise BuildError(f"compile_cuda: source must be a str of CUDA C, got {type(source).__name__}")
    arch = _normalize_arch(arch)
    _check_arch_supported(arch)
    full = _full_options(arch, options, "sm_")
    key = _cache_key(source, arch, full) if cache else None
    if cache:
        hit = _memory_cache.get(key)
        if hit is not None:
            _stats["memory_hits"] += 1
            return hit
        path = cache_dir() / f"{key}.cubin"
        hit = _disk_read(path)
        if hit is not None:
            _stats["disk_hits"] += 1
            _memory_cache[key] = hit
            return hit
    with _compile_lock:
        split = _split_compile_options(source)
        try:
            cubin = _nvrtc_compile(source, full + split, "cubin", arch)
        except BuildError as exc:
            if not split or "INVALID_OPTION" not in str(exc):
                raise
            _split_compile["supported"] = False
            cubin = _nvrtc_compile(source, full, "cubin", arch)
        _stats["nvrtc_compiles"] += 1
    if cache:
        _memory_cache[key] = cubin
        _disk_write(path, cubin)
    return cubin


def compile_ptx(source: str, arch: str = "sm_90", options=()) -> str:
    """Compile CUDA C ``source`` to PTX text for ``compute_XY`` (inspection and tests; not cached)."""
    if not isinstance(source, str):
        raise BuildError(f"compile_ptx: source must be a str of CUDA C, got {type(source).__name__}")
    arch = _normalize_arch(arch)
    _check_arch_supported(arch)
    full = _full_options(arch, options, "compute_")
    return _nvrtc_compile(source, full, "ptx", arch).decode(errors="replace")


# --------------------------------------------------------------------------------------------
# Launch plans
# --------------------------------------------------------------------------------------------

_ARG_RE = re.compile(r"^(param|workspace|var):(.+)$")
_EVAL_GLOBALS = {"__builtins__": {}, "min": min, "max": max}


@dataclass(frozen=True)
class KernelLaunch:
    """One ``cuLaunchKernel`` of a plan.

    ``kernel``: the ``extern "C" __global__`` function's name. ``grid``: 3 entries, each an int or a
    Python expression (str) over the function's symbolic dim names, e.g. ``"(n + 31) // 32"``.
    ``block``: 3 ints. ``dynamic_shared_bytes``: dynamic shared memory per block (the opt-in limit
    is raised automatically above 48 KB). ``args``: the kernel's arguments in order, each
    ``"param:<i>"`` (the i-th tensor parameter's device pointer), ``"workspace:<j>"`` (the j-th
    workspace's pointer) or ``"var:<name>"`` (a symbolic dim's value as int32).
    """

    kernel: str
    grid: tuple
    block: tuple
    dynamic_shared_bytes: int = 0
    args: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "grid", tuple(self.grid))
        object.__setattr__(self, "block", tuple(self.block))
        object.__setattr__(self, "args", tuple(self.args))


@dataclass(frozen=True)
class LaunchPlan:
    """How to run one entry point: ``launches`` in order on one stream, and the byte sizes of the
    global scratch buffers (``workspaces``: int or expression over dim names) they share."""

    launches: tuple
    workspaces: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "launches", tuple(self.launches))
        object.__setattr__(self, "workspaces", tuple(self.workspaces))


def _signature_dims(sig: FunctionSignature) -> list:
    dims = []
    for p in sig.params:
        for d in p.shape:
            if isinstance(d, str) and d not in dims:
                dims.append(d)
    for d in sig.shape_vars:
        if d not in dims:
            dims.append(d)
    return dims


def _compile_expr(value, what: str, dims: list):
    """An int stays an int; a str becomes a code object over ``dims`` (checked here)."""
    if isinstance(value, str):
        try:
            code = compile(value, f"<{what}>", "eval")
        except SyntaxError as exc:
            raise BuildError(f"{what}: {value!r} is not a valid Python expression ({exc.msg})") from None
        unknown = [n for n in code.co_names if n not in dims and n not in _EVAL_GLOBALS]
        if unknown:
            raise BuildError(f"{what}: {value!r} uses {', '.join(unknown)}, which "
                             f"{'is not a symbolic dimension' if len(unknown) == 1 else 'are not symbolic dimensions'}"
                             f" of the function (it has: {', '.join(dims) or 'none'})")
        return code
    try:
        v = operator.index(value)
    except TypeError:
        raise BuildError(f"{what}: expected an int or a str expression, got {value!r}") from None
    if v < 0:
        raise BuildError(f"{what}: must be non-negative, got {v}")
    return v


def _evaluate(value, dims: dict, what: str) -> int:
    if isinstance(value, int):
        return value
    try:
        result = eval(value, _EVAL_GLOBALS, dims)  # noqa: S307 - expressions come from codegen, names checked
    except Exception as exc:  # noqa: BLE001
        raise ShapeError(f"{what}: evaluating it with {dims} failed: {type(exc).__name__}: {exc}") from None
    try:
        return operator.index(result)
    except TypeError:
        raise ShapeError(f"{what}: evaluated to {result!r}, not an integer (use // for division)") from None


class _LaunchState:
    """Per (function, device, launch): the CUfunction, the decoded arguments and the parameter block."""

    __slots__ = ("kernel", "func", "grid", "block", "bx", "by", "bz", "shmem", "param_slots",
                 "ws_slots", "var_slots", "values", "pointers", "params_addr", "index")


class _PreparedFunction:
    """Per (entry point, device): everything the launch path needs, built once."""

    __slots__ = ("name", "sig", "device", "ctx", "nargs", "launches", "ptrs", "resolved",
                 "launch_fn", "set_ctx", "stream", "workspaces")


class _LoadedModule:
    __slots__ = ("handle", "functions", "device", "ctx", "api")


def _restore_module(source, signatures, plans, arch, debug, options, cubin):
    obj = CUDAModule.__new__(CUDAModule)
    obj._setup(source, signatures, plans, arch, debug, options, cubin)
    return obj


class CUDAModule(Module):
    """A compiled CUDA module: CUDA C source, its cubin, and a :class:`LaunchPlan` per entry point.

    ``CUDAModule(source, signatures, plans, arch="sm_90", debug=None, options=())`` compiles at once
    (compile errors raise BuildError even without a GPU) and loads the cubin on the first run on a
    device. ``debug`` (default: env ``MINITVM_CUDA_DEBUG=1``) adds ``-lineinfo`` and synchronizes and
    checks after every launch. Arguments are minitvm NDArrays on a CUDA device.
    """

    type_key = "cuda"

    def __init__(self, source: str, signatures, plans: dict, arch: str = "sm_90", debug=None, options=()):
        self._setup(source, signatures, plans, arch, debug, options, None)

    def _setup(self, source, signatures, plans, arch, debug, options, cubin):
        signatures = list(signatures)
        super().__init__(signatures, source)
        self.arch = _normalize_arch(arch)
        self.limits = cuda_limits(self.arch)
        self.debug = _env_flag(_DEBUG_ENV) if debug is None else bool(debug)
        self.options = tuple(str(o) for o in options)
        self.plans = dict(plans)
        self._validate_plans()
        compile_options = self.options + (("-lineinfo",) if self.debug and "-lineinfo" not in self.options else ())
        self.cubin = cubin if cubin is not None else compile_cuda(source, self.arch, compile_options)
        self._lock = threading.Lock()
        self._loaded: dict = {}      # device index -> _LoadedModule
        self._prepared: dict = {}    # (name, device index) -> _PreparedFunction
        self._hot: dict = {}         # name -> the _PreparedFunction used last
        self._workspaces: dict = {}  # (device index, j, nbytes) -> DeviceBuffer
        self._events: dict = {}      # device index -> (start CUevent, stop CUevent)
        self._last_device = 0

    def __reduce__(self):
        return (_restore_module, (self._source, tuple(self.signatures.values()), self.plans, self.arch,
                                  self.debug, self.options, self.cubin))

    # ---------------------------------------------------------------- plan checking (build time)

    def _validate_plans(self) -> None:
        for name in self.plans:
            if name not in self.signatures:
                raise BuildError(f"launch plan for {name!r}, but the module has no function of that name "
                                 f"(it has {sorted(self.signatures)})")
        self._plan_code = {}
        for name, sig in self.signatures.items():
            plan = self.plans.get(name)
            if plan is None:
                raise BuildError(f"function {name!r} has no launch plan")
            if not isinstance(plan, LaunchPlan):
                raise BuildError(f"the launch plan of {name!r} must be a LaunchPlan, got {type(plan).__name__}")
            dims = _signature_dims(sig)
            ws = tuple(_compile_expr(w, f"workspace {j} of {name}", dims) for j, w in enumerate(plan.workspaces))
            launches = []
            for k, L in enumerate(plan.launches):
                where = f"launch {k} (kernel {getattr(L, 'kernel', '?')}) of {name}"
                if not isinstance(L, KernelLaunch):
                    raise BuildError(f"{where}: expected a KernelLaunch, got {type(L).__name__}")
                if not re.search(r"\b" + re.escape(L.kernel) + r"\s*\(", self._source):
                    raise BuildError(f"{where}: the source defines no kernel named {L.kernel!r}")
                if len(L.grid) != 3 or len(L.block) != 3:
                    raise BuildError(f"{where}: grid and block need 3 entries each, got grid={L.grid} block={L.block}")
                grid = tuple(_compile_expr(g, f"grid[{a}] of {where}", dims) for a, g in enumerate(L.grid))
                try:
                    block = tuple(operator.index(b) for b in L.block)
                except TypeError:
                    raise BuildError(f"{where}: block entries must be ints, got {L.block}") from None
                threads = self.limits.max_threads_per_block
                if min(block) < 1 or block[0] * block[1] * block[2] > threads:
                    raise BuildError(f"{where}: block {block} is invalid (each entry >= 1, at most {threads} threads)")
                shmem = operator.index(L.dynamic_shared_bytes)
                if shmem < 0:
                    raise BuildError(f"{where}: dynamic_shared_bytes must be non-negative, got {shmem}")
                decoded = []
                for arg in L.args:
                    m = _ARG_RE.match(arg) if isinstance(arg, str) else None
                    if not m:
                        raise BuildError(f"{where}: bad argument {arg!r}; expected 'param:<i>', "
                                         "'workspace:<j>' or 'var:<name>'")
                    kind, what = m.groups()
                    if kind == "var":
                        if what not in dims:
                            raise BuildError(f"{where}: argument {arg!r} names no symbolic dimension of "
                                             f"{name} (it has: {', '.join(dims) or 'none'})")
                        decoded.append((kind, what))
                        continue
                    if not what.isdigit():
                        raise BuildError(f"{where}: bad argument {arg!r}; the index must be an int")
                    idx = int(what)
                    limit = len(sig.params) if kind == "param" else len(plan.workspaces)
                    if idx >= limit:
                        raise BuildError(f"{where}: argument {arg!r} is out of range: {name} has {limit} "
                                         f"{'tensor parameters' if kind == 'param' else 'workspaces'}")
                    decoded.append((kind, idx))
                launches.append((L, grid, block, shmem, tuple(decoded)))
            self._plan_code[name] = (tuple(launches), ws)

    # ---------------------------------------------------------------- loading (first run)

    def _load(self, dev: int) -> _LoadedModule:
        loaded = self._loaded.get(dev)
        if loaded is not None:
            return loaded
        ctx = require_device(dev)
        dev_arch = device_arch(dev)
        m = _ARCH_RE.match(self.arch)
        want, have = int(m.group(1)), int(dev_arch[3:])
        if want // 10 != have // 10 or want > have or (m.group(2) == "a" and want != have):
            raise DeviceError(f"this module was compiled for {self.arch}, but CUDA device {dev} "
                              f"({device_name(dev)}) is {dev_arch}: build it for arch={dev_arch!r}")
        try:
            handle = _check(_drv.cuModuleLoadData(self.cubin), f"cuModuleLoadData ({self.arch} cubin) on device {dev}")
        except DeviceError as exc:
            raise DeviceError(f"{exc} (device {dev} is {device_name(dev)}, {dev_arch})") from None
        loaded = _LoadedModule()
        loaded.handle, loaded.device, loaded.ctx, loaded.functions, loaded.api = handle, dev, ctx, {}, _drv
        need_shmem: dict = {}
        for launches, _ in self._plan_code.values():
            for L, _g, _b, shmem, _a in launches:
                need_shmem[L.kernel] = max(need_shmem.get(L.kernel, 0), shmem)
        for kernel, shmem in need_shmem.items():
            err, func = _drv.cuModuleGetFunction(handle, kernel.encode())
            if err:
                raise DeviceError(f"kernel {kernel!r} is not in the compiled module ({_err_name(err)}); "
                                  "is it declared extern \"C\" __global__?")
            if shmem > self.limits.max_static_shared_bytes:
                optin = _attribute(dev, _drv.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
                static = _check(_drv.cuFuncGetAttribute(
                    _drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, func),
                    f"cuFuncGetAttribute(SHARED_SIZE_BYTES) of {kernel}")
                if shmem + int(static) > optin:
                    raise DeviceError(f"kernel {kernel!r} needs {shmem} bytes of dynamic shared memory "
                                      f"(+{int(static)} static), but device {dev} allows at most {optin} per block")
                _check(_drv.cuFuncSetAttribute(
                    func, _drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shmem),
                    f"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES={shmem}) of {kernel}")
            loaded.functions[kernel] = func
        self._loaded[dev] = loaded
        return loaded

    def _check_kernel_params(self, kernel: str, func, decoded) -> None:
        """Compare the plan's arguments with the kernel's parameters (cuFuncGetParamInfo, CUDA >= 12.4)."""
        fn = getattr(_drv, "cuFuncGetParamInfo", None)
        if fn is None:
            return
        sizes = []
        for i in range(4096):  # until the index runs past the last parameter
            try:
                res = fn(func, i)
            except Exception:  # noqa: BLE001 - binding without it
                return
            if res[0]:
                if res[0] != _drv.CUresult.CUDA_ERROR_INVALID_VALUE:
                    return  # not supported here: nothing to check against
                break
            sizes.append(int(res[2]))
        if len(sizes) != len(decoded):
            raise DeviceError(f"kernel {kernel!r} takes {len(sizes)} parameters, but its launch plan passes "
                              f"{len(decoded)} ({', '.join(f'{k}:{w}' for k, w in decoded) or 'none'})")
        for i, ((kind, what), size) in enumerate(zip(decoded, sizes)):
            want = 4 if kind == "var" else 8
            if size != want:
                raise DeviceError(f"kernel {kernel!r} parameter {i} is {size} bytes, but the plan passes "
                                  f"'{kind}:{what}' ({'an int32' if kind == 'var' else 'a pointer'}, {want} bytes)")

    def _prepare(self, name: str, dev: int) -> _PreparedFunction:
        key = (name, dev)
        fn = self._prepared.get(key)
        if fn is not None:
            return fn
        loaded = self._load(dev)
        launches, ws = self._plan_code[name]
        fn = _PreparedFunction()
        fn.name, fn.sig, fn.device, fn.ctx = name, self.signatures[name], dev, loaded.ctx
        fn.nargs = len(fn.sig.params)
        fn.ptrs = [0] * fn.nargs
        fn.resolved = {}
        fn.workspaces = ws
        fn.launch_fn = _drv.cuLaunchKernel
        fn.set_ctx = _drv.cuCtxSetCurrent
        fn.stream = _drv.CUstream(0)
        states = []
        for k, (L, grid, block, shmem, decoded) in enumerate(launches):
            s = _LaunchState()
            s.index, s.kernel, s.func = k, L.kernel, loaded.functions[L.kernel]
            self._check_kernel_params(L.kernel, s.func, decoded)
            s.grid, s.block, s.shmem = grid, block, shmem
            s.bx, s.by, s.bz = block
            n = len(decoded)
            s.values = (ctypes.c_uint64 * max(n, 1))()
            base = ctypes.addressof(s.values)
            s.pointers = (ctypes.c_void_p * max(n, 1))(*[base + _PARAM_SLOT * i for i in range(max(n, 1))])
            s.params_addr = ctypes.addressof(s.pointers) if n else 0
            s.param_slots = tuple((i, idx) for i, (kind, idx) in enumerate(decoded) if kind == "param")
            s.ws_slots = tuple((i, idx) for i, (kind, idx) in enumerate(decoded) if kind == "workspace")
            s.var_slots = tuple((i, v) for i, (kind, v) in enumerate(decoded) if kind == "var")
            states.append(s)
        fn.launches = tuple(states)
        self._prepared[key] = fn
        return fn

    # ---------------------------------------------------------------- per shape (first call per shape)

    def _workspace(self, dev: int, j: int, nbytes: int) -> int:
        key = (dev, j, nbytes)
        buf = self._workspaces.get(key)
        if buf is None:
            buf = DeviceBuffer(nbytes, dev)
            self._workspaces[key] = buf
        return buf.ptr

    def _resolve(self, fn: _PreparedFunction, args, key) -> tuple:
        """Grid sizes, workspace pointers and int32 values for one set of argument shapes."""
        dims = fn.sig.bind(args)
        if len(fn.resolved) >= 256:  # many distinct shapes: start over (workspace buffers stay cached)
            fn.resolved.clear()
        ws_ptrs = [self._workspace(fn.device, j, _evaluate(w, dims, f"workspace {j} of {fn.name}"))
                   for j, w in enumerate(fn.workspaces)]
        out = []
        for s in fn.launches:
            grid = tuple(_evaluate(g, dims, f"grid[{a}] of launch {s.index} ({s.kernel}) of {fn.name}")
                         for a, g in enumerate(s.grid))
            if min(grid) < 0:
                raise ShapeError(f"{fn.name}: launch {s.index} ({s.kernel}) has a negative grid {grid} "
                                 f"for {dims}")
            if min(grid) == 0:
                out.append((None, ()))  # an empty grid does nothing: skip the launch
                continue
            fixed = [(slot, ws_ptrs[j]) for slot, j in s.ws_slots]
            for slot, var in s.var_slots:
                v = int(dims[var])
                if not -2**31 <= v < 2**31:
                    raise ShapeError(f"{fn.name}: symbolic dimension {var}={v} does not fit the int32 "
                                     f"argument of kernel {s.kernel}")
                fixed.append((slot, v & 0xFFFFFFFF))  # little-endian: the low 4 bytes are the int32
            out.append((grid, tuple(fixed)))
        res = tuple(out)
        fn.resolved[key] = res
        return res

    # ---------------------------------------------------------------- running

    def _arg_error(self, name: str, args) -> Exception:
        sig = self.signatures[name]
        if len(args) != len(sig.params):
            try:
                sig.bind(args)
            except Exception as exc:  # noqa: BLE001 - the signature's own message
                return exc
        for i, a in enumerate(args):
            pname = sig.params[i].name if i < len(sig.params) else f"#{i}"
            device = getattr(a, "device", None)
            buf = getattr(a, "_buffer", None)
            if getattr(device, "kind", None) != "cuda" or not isinstance(buf, DeviceBuffer):
                where = (f"a {type(a).__module__}.{type(a).__name__}" if device is None
                         else f"an NDArray on {device}")
                return DeviceError(
                    f"{name}: argument {pname} (parameter {i}) is {where}; CUDA functions take minitvm "
                    f"NDArrays on a CUDA device: use minitvm.nd.array(x, minitvm.cuda())")
        devices = sorted({a._buffer.device_index for a in args})
        if len(devices) > 1:
            return DeviceError(f"{name}: arguments live on different CUDA devices {devices}; "
                               "copy them to one device first")
        return None

    def _run_slow(self, name: str, args) -> None:
        """First call of ``name`` on a device (or a bad argument): check everything, prepare, run."""
        if name not in self.signatures:
            raise RuntimeError_(f"module has no function {name!r}; it has {sorted(self.signatures)}")
        if not has_gpu():
            raise DeviceError(f"cannot run {name!r}: no CUDA device: {unavailable_reason()} "
                              f"(the module was compiled for {self.arch}; running needs an NVIDIA GPU)")
        exc = self._arg_error(name, args)
        if exc is not None:
            raise exc
        dev = args[0]._buffer.device_index if args else 0
        fn = self._prepare(name, dev)
        self._hot[name] = fn
        if not self._execute(fn, args):  # pragma: no cover - _arg_error accepts a superset
            raise DeviceError(f"{name}: arguments rejected by the launch path after passing the checks")

    def run(self, name: str, args) -> None:
        """Run entry point ``name`` on ``args`` (NDArrays on one CUDA device), queued on the default stream."""
        fn = self._hot.get(name)
        if fn is None or len(args) != fn.nargs or not self._execute(fn, args):
            self._run_slow(name, args)

    def _execute(self, fn: _PreparedFunction, args) -> bool:
        """The launch path; False (nothing launched) if an argument is not a buffer on ``fn``'s device."""
        ptrs, dev = fn.ptrs, fn.device
        i = 0
        for a in args:
            b = getattr(a, "_buffer", None)
            if not isinstance(b, DeviceBuffer) or b.device_index != dev:
                return False
            ptrs[i] = b.ptr
            i += 1
        key = tuple([(a.shape, a.dtype) for a in args])
        res = fn.resolved.get(key)
        if res is None:
            res = self._resolve(fn, args, key)
        launch = fn.launch_fn
        stream = _STREAM.value if _STREAM.value is not None else fn.stream
        with self._lock:
            err = fn.set_ctx(fn.ctx)[0]
            if err:
                raise DeviceError(f"cuCtxSetCurrent(device {dev}) failed: {_err_name(err)}")
            for s, (grid, fixed) in zip(fn.launches, res):
                if grid is None:
                    continue
                vals = s.values
                for slot, src in s.param_slots:
                    vals[slot] = ptrs[src]
                for slot, v in fixed:
                    vals[slot] = v
                err = launch(s.func, grid[0], grid[1], grid[2], s.bx, s.by, s.bz, s.shmem, stream,
                             s.params_addr, 0)[0]
                if err:
                    raise self._launch_error(fn, s, grid, err, "cuLaunchKernel")
                if self.debug:
                    (err,) = _drv.cuCtxSynchronize()
                    if err:
                        raise self._launch_error(fn, s, grid, err, "kernel execution")
        self._last_device = dev
        return True

    def _launch_error(self, fn, s, grid, err, what) -> DeviceError:
        msg = (f"{what} failed for kernel {s.kernel!r} (launch {s.index} of function {fn.name!r}, "
               f"grid {grid}, block {s.block}, dynamic shared {s.shmem} bytes, device {fn.device}): "
               f"{_err_name(err)}")
        if not self.debug:
            msg += ("; the error may come from an earlier asynchronous launch: set MINITVM_CUDA_DEBUG=1 "
                    "(or debug=True) to check after every launch")
        else:
            msg += "; a kernel fault leaves the CUDA context unusable: restart the process"
        return DeviceError(msg)

    # ---------------------------------------------------------------- timing hooks

    def _sync(self) -> None:
        """Wait for every device this module has run on (cuCtxSynchronize)."""
        for dev in list(self._loaded) or [self._last_device]:
            synchronize(dev)

    def _timer(self):
        """CUDA events around the queued work: ``(start(), stop() -> seconds)`` on the last-used device."""
        dev = self._last_device
        events = self._events.get(dev)
        if events is None:
            require_device(dev)
            flags = int(_drv.CUevent_flags.CU_EVENT_DEFAULT)
            events = (_check(_drv.cuEventCreate(flags), "cuEventCreate"),
                      _check(_drv.cuEventCreate(flags), "cuEventCreate"))
            self._events[dev] = events
        ev0, ev1 = events
        stream = _drv.CUstream(0)

        def start():
            require_device(dev)
            _check(_drv.cuEventRecord(ev0, stream), "cuEventRecord(start)")

        def stop():
            require_device(dev)
            _check(_drv.cuEventRecord(ev1, stream), "cuEventRecord(stop)")
            _check(_drv.cuEventSynchronize(ev1), "cuEventSynchronize(stop)")
            ms = _check(_drv.cuEventElapsedTime(ev0, ev1), "cuEventElapsedTime")
            return float(ms) * 1e-3

        return start, stop

    # ---------------------------------------------------------------- inspection and cleanup

    def get_source(self, fmt: str = "") -> str:
        """The CUDA C source (``fmt`` "" / "cu" / "cuda"), or its PTX (``fmt="ptx"``)."""
        if fmt in ("", "cu", "cuda"):
            return self._source
        if fmt == "ptx":
            return compile_ptx(self._source, self.arch, self.options)
        raise ValueError(f"get_source: unknown format {fmt!r}; use '', 'cuda' or 'ptx' (the cubin is .cubin)")

    def __del__(self):
        try:
            loaded_modules = self.__dict__.get("_loaded", {})
            for dev, loaded in loaded_modules.items():
                api = loaded.api
                (err,) = api.cuCtxPushCurrent(loaded.ctx)
                if err:
                    continue
                try:
                    events = self.__dict__.get("_events", {}).get(dev)
                    if events is not None:
                        api.cuEventDestroy(events[0])
                        api.cuEventDestroy(events[1])
                    api.cuModuleUnload(loaded.handle)
                finally:
                    api.cuCtxPopCurrent()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def __repr__(self):
        return f"<CUDAModule {self.arch} functions={list(self.signatures)}>"


assert sys.byteorder == "little", "the kernel-parameter block stores int32 values in 8-byte little-endian slots"


# ----------------------------------------------------------------------------------------------
# streams and CUDA graphs
# ----------------------------------------------------------------------------------------------
class _CurrentStream(threading.local):
    value = None


_STREAM = _CurrentStream()


class Stream:
    """A non-blocking CUDA stream on ``device_index``; launches go to it inside ``with stream:``."""

    def __init__(self, device_index: int = 0):
        require_device(device_index)
        self.device_index = device_index
        flags = int(_drv.CUstream_flags.CU_STREAM_NON_BLOCKING)
        self.handle = _check(_drv.cuStreamCreate(flags), "cuStreamCreate")
        self._saved = []

    def __enter__(self):
        self._saved.append(_STREAM.value)
        _STREAM.value = self.handle
        return self

    def __exit__(self, *exc):
        _STREAM.value = self._saved.pop()

    def synchronize(self) -> None:
        """Wait for the work queued on this stream."""
        _check(_drv.cuStreamSynchronize(self.handle), "cuStreamSynchronize")

    def __del__(self):
        try:
            if getattr(self, "handle", None) is not None and sys.is_finalizing() is False:
                _drv.cuStreamDestroy(self.handle)
        except Exception:  # noqa: BLE001 - never raise from a destructor
            pass


class CUDAGraph:
    """A sequence of launches captured once and replayed with one ``cuGraphLaunch``.

    ``CUDAGraph(fn, stream)`` runs ``fn()`` (which queues kernel launches through minitvm
    modules) under stream capture; ``replay()`` queues the whole captured work again. Run
    ``fn`` once without capture first so modules are loaded and scratch memory allocated.
    """

    def __init__(self, fn, stream: Stream):
        drv = _drv
        self.stream = stream
        mode = drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
        require_device(stream.device_index)
        _check(drv.cuStreamBeginCapture(stream.handle, mode), "cuStreamBeginCapture")
        try:
            with stream:
                fn()
        finally:
            graph = _check(drv.cuStreamEndCapture(stream.handle), "cuStreamEndCapture")
        self.graph = graph
        self.exec = _check(drv.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")

    def replay(self) -> None:
        """Queue the captured launches on the capture stream."""
        _check(_drv.cuGraphLaunch(self.exec, self.stream.handle), "cuGraphLaunch")

    def __del__(self):
        try:
            if sys.is_finalizing() is False:
                drv = _drv
                if getattr(self, "exec", None) is not None:
                    drv.cuGraphExecDestroy(self.exec)
                if getattr(self, "graph", None) is not None:
                    drv.cuGraphDestroy(self.graph)
        except Exception:  # noqa: BLE001
            pass
