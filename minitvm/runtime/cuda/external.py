"""Device memory of other libraries: a CUDA tensor given through DLPack or the CUDA array
interface, taken as an :class:`~minitvm.runtime.cuda.memory.ExternalBuffer` without a copy."""
from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from .. import dlpack
from .device import synchronize
from .memory import ExternalBuffer, pointer_device

__all__ = ["external_buffer", "ForeignArray"]

_CUDA_DEVICES = (dlpack.KDL_CUDA, dlpack.KDL_CUDA_MANAGED)


def external_buffer(obj):
    """``(ExternalBuffer, shape, numpy dtype)`` over the memory of a C-contiguous CUDA tensor
    ``obj`` (DLPack first, then ``__cuda_array_interface__``); None if ``obj`` is neither."""
    if hasattr(obj, "__dlpack_device__") and int(obj.__dlpack_device__()[0]) in _CUDA_DEVICES:
        view = dlpack.import_capsule(obj, stream=1)   # 1: the legacy default stream minitvm launches on
        if not view.contiguous:
            raise ShapeError(f"the {type(obj).__name__} is not C-contiguous (strides {view.strides} "
                             "elements); make it contiguous first")
        ptr, shape, npd, index, keep = view.ptr, view.shape, view.dtype, view.device[1], view
    elif hasattr(obj, "__cuda_array_interface__"):
        cai = obj.__cuda_array_interface__
        npd = np.dtype(cai["typestr"])
        shape = tuple(int(s) for s in cai["shape"])
        strides = cai.get("strides")
        if strides is not None and tuple(strides) != np.empty(shape, npd).strides:
            raise ShapeError(f"the {type(obj).__name__} is not C-contiguous (strides {tuple(strides)} bytes); "
                             "make it contiguous first")
        ptr = int(cai["data"][0])
        index = pointer_device(ptr) if ptr else 0
        if cai.get("stream") is not None:
            synchronize(index)   # the producer's stream may still be writing it
        keep = obj
    else:
        return None
    nbytes = int(np.prod(shape, dtype=np.int64)) * npd.itemsize
    return ExternalBuffer(ptr, nbytes, index, keep), shape, npd


class _CudaDevice:
    __slots__ = ("index",)
    kind = "cuda"

    def __init__(self, index):
        self.index = index

    def __str__(self):
        return f"cuda({self.index})"


class ForeignArray:
    """A kernel argument over another library's CUDA tensor: ``shape``, ``dtype`` (a name),
    ``device`` and the ``_buffer`` the launch path reads."""

    __slots__ = ("shape", "dtype", "device", "_buffer")

    def __init__(self, buffer: ExternalBuffer, shape, npd):
        self.shape, self.dtype, self._buffer = tuple(shape), np.dtype(npd).name, buffer
        self.device = _CudaDevice(buffer.device_index)
