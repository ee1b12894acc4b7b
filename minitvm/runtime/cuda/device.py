"""The CUDA driver: loading it, devices and their primary contexts, and driver error checking.

:func:`device_count` answers 0 (never raises) where the driver library cannot be loaded or
``cuInit`` fails; :func:`unavailable_reason` says why. One primary context per device is retained
lazily and made current by every call that touches the device. The other modules of the package
call the driver as ``device._drv`` (read at call time, so one binding serves them all).
"""
from __future__ import annotations

import os
import threading

from ...errors import DeviceError

try:  # cuda-python; importing it does not need a driver (the driver library loads on first call)
    from cuda.bindings import driver as _drv
    _IMPORT_ERROR: Exception | None = None
except Exception as _exc:  # pragma: no cover - only where cuda-python is not installed
    _drv = None
    _IMPORT_ERROR = _exc

__all__ = ["device_count", "has_gpu", "unavailable_reason", "require_device", "compute_capability",
           "device_arch", "device_name", "synchronize"]


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
