"""A compiled CUDA module: :class:`CUDAModule` (CUDA C source, its cubin, a launch plan per entry
point) and loading the cubin onto a device.

The module compiles when constructed (so a machine without a GPU still reports compile errors)
and loads the cubin on the first run on a device; the launch path itself is
:class:`~minitvm.runtime.cuda.launch.PreparedFunction`.
"""
from __future__ import annotations

import threading

from ...device_limits import cuda_limits
from ...errors import ArgumentError, DeviceError, RuntimeError_
from ..module import Module
from . import device
from .compile import arch_number, compile_cuda, compile_ptx, normalize_arch
from .device import (_attribute, _check, _env_flag, _err_name, device_arch, device_name, has_gpu,
                     require_device, synchronize, unavailable_reason)
from .external import ForeignArray, external_buffer
from .launch import PreparedFunction
from .memory import DeviceBuffer
from .plan import check_plans, shared_bytes_per_kernel

__all__ = ["CUDAModule"]

_DEBUG_ENV = "MINITVM_CUDA_DEBUG"


class _LoadedModule:
    __slots__ = ("handle", "functions", "device", "ctx", "api")


def _load_on_device(cubin: bytes, arch: str, shared_bytes: dict, dev: int, static_limit: int) -> _LoadedModule:
    """Load ``cubin`` on device ``dev``; look up each kernel of ``shared_bytes`` (name -> dynamic
    shared bytes it needs) and raise its opt-in limit above ``static_limit`` where it asks for more."""
    drv = device._drv
    ctx = require_device(dev)
    dev_arch = device_arch(dev)
    want, have = arch_number(arch), int(dev_arch[3:])
    if want // 10 != have // 10 or want > have or (arch.endswith("a") and want != have):
        raise DeviceError(f"this module was compiled for {arch}, but CUDA device {dev} "
                          f"({device_name(dev)}) is {dev_arch}: build it for arch={dev_arch!r}")
    try:
        handle = _check(drv.cuModuleLoadData(cubin), f"cuModuleLoadData ({arch} cubin) on device {dev}")
    except DeviceError as exc:
        raise DeviceError(f"{exc} (device {dev} is {device_name(dev)}, {dev_arch})") from None
    loaded = _LoadedModule()
    loaded.handle, loaded.device, loaded.ctx, loaded.functions, loaded.api = handle, dev, ctx, {}, drv
    for kernel, shmem in shared_bytes.items():
        err, func = drv.cuModuleGetFunction(handle, kernel.encode())
        if err:
            raise DeviceError(f"kernel {kernel!r} is not in the compiled module ({_err_name(err)}); "
                              "is it declared extern \"C\" __global__?")
        if shmem > static_limit:
            optin = _attribute(dev, drv.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            static = _check(drv.cuFuncGetAttribute(
                drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, func),
                f"cuFuncGetAttribute(SHARED_SIZE_BYTES) of {kernel}")
            if shmem + int(static) > optin:
                raise DeviceError(f"kernel {kernel!r} needs {shmem} bytes of dynamic shared memory "
                                  f"(+{int(static)} static), but device {dev} allows at most {optin} per block")
            _check(drv.cuFuncSetAttribute(
                func, drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shmem),
                f"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES={shmem}) of {kernel}")
        loaded.functions[kernel] = func
    return loaded


def _device_arg(a):
    """A DLPack or ``__cuda_array_interface__`` tensor on a CUDA device as a kernel argument over
    its memory (no copy); anything else as it is (the argument checks name what is wrong)."""
    if getattr(a, "_buffer", None) is not None or not (hasattr(a, "__dlpack__")
                                                       or hasattr(a, "__cuda_array_interface__")):
        return a
    ext = external_buffer(a)
    return a if ext is None else ForeignArray(*ext)


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
        self.arch = normalize_arch(arch)
        self.limits = cuda_limits(self.arch)
        self.debug = _env_flag(_DEBUG_ENV) if debug is None else bool(debug)
        self.options = tuple(str(o) for o in options)
        self.plans = dict(plans)
        self._checked = check_plans(self.plans, self.signatures, self._source, self.limits.max_threads_per_block)
        compile_options = self.options + (("-lineinfo",) if self.debug and "-lineinfo" not in self.options else ())
        self.cubin = cubin if cubin is not None else compile_cuda(source, self.arch, compile_options)
        self._lock = threading.Lock()
        self._loaded: dict = {}      # device index -> _LoadedModule
        self._prepared: dict = {}    # (name, device index) -> PreparedFunction
        self._hot: dict = {}         # name -> the PreparedFunction used last
        self._workspaces: dict = {}  # (device index, j, nbytes) -> DeviceBuffer
        self._events: dict = {}      # device index -> (start CUevent, stop CUevent)
        self._last_device = 0

    def __reduce__(self):
        return (_restore_module, (self._source, tuple(self.signatures.values()), self.plans, self.arch,
                                  self.debug, self.options, self.cubin))

    # ---------------------------------------------------------------- loading and preparing (first run)

    def _prepare(self, name: str, dev: int) -> PreparedFunction:
        key = (name, dev)
        fn = self._prepared.get(key)
        if fn is not None:
            return fn
        loaded = self._loaded.get(dev)
        if loaded is None:
            loaded = _load_on_device(self.cubin, self.arch, shared_bytes_per_kernel(self._checked), dev,
                                     self.limits.max_static_shared_bytes)
            self._loaded[dev] = loaded
        fn = PreparedFunction(name, self.signatures[name], dev, loaded.ctx, loaded.functions,
                              self._checked[name], self._workspaces, self._lock, self.debug)
        self._prepared[key] = fn
        return fn

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
        args = [_device_arg(a) for a in args]
        exc = self._arg_error(name, args)
        if exc is not None:
            raise exc
        dev = args[0]._buffer.device_index if args else 0
        fn = self._prepare(name, dev)
        self._hot[name] = fn
        if not fn.execute(args):  # pragma: no cover - _arg_error accepts a superset
            raise DeviceError(f"{name}: arguments rejected by the launch path after passing the checks")
        self._last_device = dev

    def run(self, name: str, args) -> None:
        """Run entry point ``name`` on ``args`` (NDArrays on one CUDA device), queued on the default stream."""
        fn = self._hot.get(name)
        if fn is None or len(args) != fn.nargs or not fn.execute(args):
            self._run_slow(name, args)
        else:
            self._last_device = fn.device

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
            flags = int(device._drv.CUevent_flags.CU_EVENT_DEFAULT)
            events = (_check(device._drv.cuEventCreate(flags), "cuEventCreate"),
                      _check(device._drv.cuEventCreate(flags), "cuEventCreate"))
            self._events[dev] = events
        ev0, ev1 = events
        stream = device._drv.CUstream(0)

        def start():
            require_device(dev)
            _check(device._drv.cuEventRecord(ev0, stream), "cuEventRecord(start)")

        def stop():
            require_device(dev)
            _check(device._drv.cuEventRecord(ev1, stream), "cuEventRecord(stop)")
            _check(device._drv.cuEventSynchronize(ev1), "cuEventSynchronize(stop)")
            ms = _check(device._drv.cuEventElapsedTime(ev0, ev1), "cuEventElapsedTime")
            return float(ms) * 1e-3

        return start, stop

    # ---------------------------------------------------------------- inspection and cleanup

    def get_source(self, fmt: str = "") -> str:
        """The CUDA C source (``fmt`` "" / "cu" / "cuda"), or its PTX (``fmt="ptx"``)."""
        if fmt in ("", "cu", "cuda"):
            return self._source
        if fmt == "ptx":
            return compile_ptx(self._source, self.arch, self.options)
        raise ArgumentError(f"get_source: unknown format {fmt!r}; use '', 'cuda' or 'ptx' (the cubin is .cubin)")

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
