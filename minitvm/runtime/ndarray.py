"""``minitvm.nd``: devices and n-dimensional arrays on the host or a CUDA device."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from . import dlpack
from ..errors import DeviceError, DtypeError, ShapeError


@dataclass(frozen=True)
class Device:
    """A device: ``kind`` is ``"cpu"`` or ``"cuda"``; ``index`` picks among several."""

    kind: str
    index: int = 0

    def __str__(self):
        return f"{self.kind}({self.index})"

    @property
    def exist(self) -> bool:
        """True if this device is usable here."""
        if self.kind == "cpu":
            return True
        from . import cuda
        return cuda.device_count() > self.index

    def sync(self) -> None:
        """Wait until all work queued on the device is done."""
        if self.kind == "cuda":
            from . import cuda
            cuda.synchronize(self.index)


def cpu(index: int = 0) -> Device:
    """The host CPU."""
    return Device("cpu", index)


def cuda(index: int = 0) -> Device:
    """CUDA GPU number ``index``."""
    return Device("cuda", index)


gpu = cuda


class NDArray:
    """A dense array on a device. On the CPU it wraps a numpy array (no copy on access)."""

    def __init__(self, shape, dtype: str, device: Device, host: np.ndarray | None = None, buffer=None):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.device = device
        self._host = host
        self._buffer = buffer

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * dt.numpy_dtype(self.dtype).itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def handle(self):
        """The numpy array (CPU) or device buffer (CUDA) holding the data."""
        return self._host if self.device.kind == "cpu" else self._buffer

    def numpy(self) -> np.ndarray:
        """A numpy copy (CPU arrays: the wrapped array itself)."""
        if self.device.kind == "cpu":
            return self._host
        out = np.empty(self.shape, dtype=dt.numpy_dtype(self.dtype))
        self._buffer.copy_to_host(out)
        return out

    asnumpy = numpy

    def copyfrom(self, source) -> "NDArray":
        """Copy a numpy array (or NDArray) of the same shape and dtype into this array."""
        src = source.numpy() if isinstance(source, NDArray) else np.asarray(source)
        if tuple(src.shape) != self.shape:
            raise ShapeError(f"copyfrom: array of shape {self.shape} cannot take data of shape {src.shape}")
        if str(src.dtype) != self.dtype:
            raise DtypeError(f"copyfrom: array of dtype {self.dtype} cannot take data of dtype {src.dtype}")
        src = np.asarray(src, order="C")
        if self.device.kind == "cpu":
            np.copyto(self._host, src)
        else:
            self._buffer.copy_from_host(src)
        return self

    def copyto(self, target):
        """Copy into another NDArray, or to a device (returns the new array)."""
        if isinstance(target, Device):
            return array(self.numpy(), target)
        target.copyfrom(self)
        return target

    # ------------------------------------------------------------------ zero-copy protocols
    def __dlpack_device__(self) -> tuple:
        """The DLPack device: ``(1, 0)`` for the CPU, ``(2, index)`` for a CUDA device."""
        return (dlpack.KDL_CPU, 0) if self.device.kind == "cpu" else (dlpack.KDL_CUDA, self.device.index)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule of this array, without a copy (``np.from_dlpack``, ``torch.from_dlpack``).

        CUDA arrays: the device is synchronized first, so the data is ready on any ``stream``."""
        if copy:
            raise BufferError("NDArray.__dlpack__: copy=True is not supported; export and copy on the consumer side")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"NDArray.__dlpack__: the array lives on {self.device}, not on DLPack device "
                              f"{tuple(dl_device)}")
        versioned = max_version is not None and tuple(max_version) >= (1, 0)
        if self.device.kind == "cpu":
            if not self._host.flags.c_contiguous:
                return self._host.__dlpack__(max_version=max_version) if versioned else self._host.__dlpack__()
            return dlpack.export_capsule(self._host.ctypes.data, self.shape, self._host.dtype, dlpack.KDL_CPU, 0,
                                         self._host, versioned)
        self.device.sync()
        return dlpack.export_capsule(self._buffer.ptr, self.shape, dt.numpy_dtype(self.dtype), dlpack.KDL_CUDA,
                                     self.device.index, self._buffer, versioned)

    def __array__(self, dtype=None, copy=None):
        """The data as a numpy array (CPU arrays: the wrapped array, no copy)."""
        if self.device.kind != "cpu":
            if copy is False:
                raise ValueError(f"NDArray on {self.device}: numpy needs a copy to the host (use .numpy())")
            arr = self.numpy()
        else:
            arr = self._host
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError(f"NDArray: dtype {dtype} would need a copy of the {self.dtype} data")
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    @property
    def __cuda_array_interface__(self) -> dict:
        """The CUDA array interface (version 3) of a CUDA array (CuPy, Numba, torch.as_tensor)."""
        if self.device.kind != "cuda":
            raise AttributeError("__cuda_array_interface__: this NDArray lives on the CPU (use __array__)")
        return {"shape": self.shape, "typestr": dt.numpy_dtype(self.dtype).str, "data": (self._buffer.ptr, False),
                "strides": None, "version": 3, "stream": 1}

    def __repr__(self):
        return f"<NDArray {self.shape} {self.dtype} on {self.device}>"


def empty(shape, dtype: str = "float32", device: Device | None = None) -> NDArray:
    """An uninitialized array."""
    device = device or cpu()
    dtype = dt.canonical(dtype)
    shape = tuple(int(s) for s in shape)
    if device.kind == "cpu":
        return NDArray(shape, dtype, device, host=np.empty(shape, dtype=dt.numpy_dtype(dtype)))
    from . import cuda as _cuda
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.numpy_dtype(dtype).itemsize
    return NDArray(shape, dtype, device, buffer=_cuda.DeviceBuffer(nbytes, device.index))


def array(data, device: Device | None = None) -> NDArray:
    """An array on ``device`` (default CPU) holding a copy of ``data``."""
    data = np.asarray(data, order="C")   # keeps 0-d arrays 0-d
    dt.canonical(str(data.dtype))
    out = empty(data.shape, str(data.dtype), device)
    return out.copyfrom(data)


def _cpu_from(obj) -> np.ndarray | None:
    """``obj`` as a numpy array without a copy, if it lives in host memory; else None."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, NDArray):
        return obj._host if obj.device.kind == "cpu" else None
    if hasattr(obj, "__dlpack_device__"):
        if int(obj.__dlpack_device__()[0]) not in (dlpack.KDL_CPU, dlpack.KDL_CUDA_HOST):
            return None
        # through our own reader: np.from_dlpack marks tensors of older producers read-only
        return np.asarray(dlpack.import_capsule(obj))
    if hasattr(obj, "__cuda_array_interface__"):
        return None
    if hasattr(obj, "__array_interface__") or hasattr(obj, "__array__"):
        return np.asarray(obj)
    return None


def _cuda_from(obj) -> NDArray | None:
    """``obj`` (DLPack or ``__cuda_array_interface__``, C-contiguous) as a CUDA NDArray over its memory."""
    from .cuda.external import external_buffer
    ext = external_buffer(obj)
    if ext is None:
        return None
    buf, shape, npd = ext
    return NDArray(shape, dt.canonical(npd.name), cuda(buf.device_index), buffer=buf)


def from_dlpack(obj) -> NDArray:
    """An NDArray over the memory of ``obj`` without a copy: a numpy array, a minitvm NDArray,
    any DLPack tensor (torch, CuPy, JAX, ...) or an object with ``__cuda_array_interface__``.
    Host tensors give CPU arrays, CUDA tensors CUDA arrays (C-contiguous ones only)."""
    if isinstance(obj, NDArray):
        return obj
    host = _cpu_from(obj)
    if host is not None:
        dt.canonical(str(host.dtype))
        return NDArray(host.shape, str(host.dtype), cpu(), host=host)
    arr = _cuda_from(obj)
    if arr is None:
        where = (dlpack.device_name(obj.__dlpack_device__()) if hasattr(obj, "__dlpack_device__")
                 else "no DLPack device")
        raise DeviceError(f"from_dlpack: cannot take a {type(obj).__module__}.{type(obj).__name__} ({where}); "
                          "minitvm takes numpy arrays and DLPack tensors on the CPU or a CUDA device")
    return arr
