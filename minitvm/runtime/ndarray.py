"""``minitvm.nd``: devices and n-dimensional arrays on the host or a CUDA device."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import DtypeError, ShapeError


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
