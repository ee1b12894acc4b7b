"""Device memory: :class:`DeviceBuffer`, one ``cuMemAlloc`` allocation freed when collected,
with synchronous copies to, from and between devices."""
from __future__ import annotations

import operator

import numpy as np

from ...errors import ArgumentError, DeviceError, ShapeError
from . import device
from .device import _check, require_device

__all__ = ["DeviceBuffer", "ExternalBuffer"]


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
        self._api = device._drv  # the driver that allocated it frees it (also during interpreter shutdown)
        if nbytes:
            dptr = _check(device._drv.cuMemAlloc(nbytes),
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
        _check(device._drv.cuMemcpyHtoD(self.ptr, array.ctypes.data, self.nbytes),
               f"cuMemcpyHtoD of {self.nbytes} bytes to device {self.device_index}")

    def copy_to_host(self, array: np.ndarray) -> np.ndarray:
        """Copy the buffer into a writable C-contiguous numpy array of ``nbytes`` bytes (synchronous)."""
        array = _host_view(array, "DeviceBuffer.copy_to_host", writable=True)
        self._size_check(array.nbytes, "copy_to_host")
        if self.nbytes:
            require_device(self.device_index)
            _check(device._drv.cuMemcpyDtoH(array.ctypes.data, self.ptr, self.nbytes),
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
            _check(device._drv.cuMemcpyDtoD(self.ptr, other.ptr, self.nbytes),
                   f"cuMemcpyDtoD of {self.nbytes} bytes on device {self.device_index}")
        else:
            _check(device._drv.cuMemcpyPeer(self.ptr, self._ctx, other.ptr, other._ctx, self.nbytes),
                   f"cuMemcpyPeer of {self.nbytes} bytes from device {other.device_index} "
                   f"to device {self.device_index}")

    def memset_d8(self, byte: int) -> None:
        """Set every byte to ``byte`` (0..255); used to poison outputs in tests."""
        byte = operator.index(byte)
        if not 0 <= byte <= 255:
            raise ArgumentError(f"DeviceBuffer.memset_d8: byte must be in 0..255, got {byte}")
        if self.nbytes:
            require_device(self.device_index)
            _check(device._drv.cuMemsetD8(self.ptr, byte, self.nbytes),
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


class ExternalBuffer(DeviceBuffer):
    """Device memory minitvm did not allocate (a DLPack or ``__cuda_array_interface__`` tensor of
    another library): ``nbytes`` bytes at ``ptr`` on device ``device_index``. ``owner`` keeps the
    memory alive; it is never freed here."""

    __slots__ = ("_owner",)

    def __init__(self, ptr: int, nbytes: int, device_index: int, owner):  # noqa: D107 - no super().__init__
        self.ptr = int(ptr)
        self.nbytes = operator.index(nbytes)
        self.device_index = int(device_index)
        self._ctx = require_device(self.device_index)
        self._api = device._drv
        self._owner = owner

    def free(self) -> None:
        """Drop the reference to the owner (the memory itself belongs to it)."""
        self.ptr, self._owner = 0, None

    def __del__(self):
        pass

    def __repr__(self):
        return f"<ExternalBuffer {self.nbytes} bytes at 0x{self.ptr:x} on cuda({self.device_index})>"


def pointer_device(ptr: int) -> int:
    """The CUDA device ordinal that device address ``ptr`` belongs to."""
    require_device(0)   # the driver initialized (a clear DeviceError without a GPU)
    drv = device._drv
    attr = drv.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
    return int(_check(drv.cuPointerGetAttribute(attr, ptr), f"cuPointerGetAttribute(DEVICE_ORDINAL, 0x{ptr:x})"))


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
