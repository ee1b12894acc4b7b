"""DLPack without a C extension: making and reading ``dltensor`` capsules with ctypes.

:func:`export_capsule` wraps a data pointer (and the object that keeps it alive) in a DLPack
capsule that any consumer (``np.from_dlpack``, ``torch.from_dlpack``, CuPy) can take without a
copy; :func:`import_capsule` reads the capsule of any producer into a :class:`DLPackView` that
owns it (its deleter runs when the view is collected). The struct layouts are DLPack's
(``dlpack.h``, the unversioned ``DLManagedTensor`` every producer still offers).
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from ..errors import DtypeError, RuntimeError_

__all__ = ["KDL_CPU", "KDL_CUDA", "KDL_CUDA_HOST", "KDL_CUDA_MANAGED", "export_capsule", "import_capsule",
           "DLPackView", "dlpack_dtype", "numpy_dtype_of"]

KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_CUDA_MANAGED = 1, 2, 3, 13
_DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal", 10: "rocm",
                 13: "cuda_managed", 14: "oneapi"}
_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}   # kDLInt, kDLUInt, kDLFloat, kDLBool
_KINDS = {0: "int", 1: "uint", 2: "float", 6: "bool"}


class DLDevice(ctypes.Structure):
    """DLPack's ``DLDevice``: device type and ordinal."""

    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    """DLPack's ``DLDataType``: type code, bits, lanes."""

    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    """DLPack's ``DLTensor``: data pointer, device, shape, strides (NULL: row-major), byte offset."""

    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    """DLPack's ``DLManagedTensor`` (the ``dltensor`` capsule's content)."""


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]


class DLPackVersion(ctypes.Structure):
    """DLPack's ``DLPackVersion``."""

    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    """DLPack 1.0's ``DLManagedTensorVersioned`` (the ``dltensor_versioned`` capsule's content)."""


_DELETER_V = ctypes.CFUNCTYPE(None, ctypes.POINTER(DLManagedTensorVersioned))
DLManagedTensorVersioned._fields_ = [("version", DLPackVersion), ("manager_ctx", ctypes.c_void_p),
                                     ("deleter", _DELETER_V), ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]
_FLAG_READ_ONLY = 1

_NAME = b"dltensor"
_USED = b"used_dltensor"
_NAME_V = b"dltensor_versioned"
_USED_V = b"used_dltensor_versioned"
_api = ctypes.pythonapi
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_api.PyCapsule_GetPointer.restype = ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_SetName.restype = ctypes.c_int
_api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
_api.PyCapsule_IsValid.restype = ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [ctypes.py_object, ctypes.c_char_p]

# what keeps each exported tensor alive, by the address of its DLManagedTensor, until the
# consumer calls the deleter (or the capsule dies unconsumed)
_live: dict = {}
_live_lock = threading.Lock()


def dlpack_dtype(dtype) -> DLDataType:
    """The DLPack type of a numpy dtype (or its name)."""
    d = np.dtype(dtype)
    if d.kind not in _CODES:
        raise DtypeError(f"DLPack: dtype {d} has no DLPack equivalent here")
    return DLDataType(_CODES[d.kind], d.itemsize * 8, 1)


def numpy_dtype_of(t: DLDataType) -> np.dtype:
    """The numpy dtype of a DLPack type (one lane)."""
    if t.lanes != 1 or t.code not in _KINDS:
        raise DtypeError(f"DLPack: type code {t.code} with {t.bits} bits x {t.lanes} lanes is not supported")
    if t.code == 6:
        return np.dtype(np.bool_)
    return np.dtype(f"{_KINDS[t.code]}{t.bits}")


@_DELETER
def _deleter(managed):
    with _live_lock:
        _live.pop(ctypes.addressof(managed.contents), None)


@_DELETER_V
def _deleter_v(managed):
    with _live_lock:
        _live.pop(ctypes.addressof(managed.contents), None)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _capsule_destructor(capsule):
    # a capsule dies unconsumed: the producer's deleter runs (the capsule is at refcount 0, so
    # it is read through the raw pointer; a consumed capsule was renamed and is skipped)
    try:
        name = ctypes.cast(_api_get_name(capsule), ctypes.c_char_p).value
        if name not in (_NAME, _NAME_V):
            return
        ptr = _api_get_pointer_raw(capsule, name)
        if ptr:
            with _live_lock:
                _live.pop(ptr, None)
    except Exception:  # noqa: BLE001 - never raise into C
        pass


_api_get_name = ctypes.pythonapi.PyCapsule_GetName
_api_get_name.restype = ctypes.c_void_p
_api_get_name.argtypes = [ctypes.c_void_p]
_api_get_pointer_raw = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def export_capsule(ptr: int, shape, dtype, device_type: int, device_id: int, owner, versioned: bool = False):
    """A DLPack capsule for ``shape`` elements of ``dtype`` at address ``ptr`` (C order), on
    DLPack device ``(device_type, device_id)``; ``owner`` stays alive until the consumer
    releases the tensor. ``versioned``: a DLPack 1.0 ``dltensor_versioned`` capsule (writable:
    consumers such as numpy mark tensors from the older ``dltensor`` capsule read-only)."""
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    managed = DLManagedTensorVersioned() if versioned else DLManagedTensor()
    shape_arr = (ctypes.c_int64 * max(ndim, 1))(*shape)
    t = managed.dl_tensor
    t.data = ptr or None
    t.device = DLDevice(device_type, device_id)
    t.ndim = ndim
    t.dtype = dlpack_dtype(dtype)
    t.shape = ctypes.cast(shape_arr, ctypes.POINTER(ctypes.c_int64))
    t.strides = None   # NULL: compact row-major
    t.byte_offset = 0
    managed.manager_ctx = None
    if versioned:
        managed.version = DLPackVersion(1, 0)
        managed.flags = 0
        managed.deleter = _deleter_v
    else:
        managed.deleter = _deleter
    addr = ctypes.addressof(managed)
    with _live_lock:
        _live[addr] = (managed, shape_arr, owner)
    return _api.PyCapsule_New(addr, _NAME_V if versioned else _NAME, ctypes.cast(_capsule_destructor, ctypes.c_void_p))


class DLPackView:
    """A consumed DLPack tensor: ``ptr`` (first element), ``shape``, numpy ``dtype``, ``device``
    (DLPack ``(type, id)``), ``strides`` (elements, or None), ``readonly``; calls the producer's
    deleter when collected."""

    def __init__(self, managed_ptr: int, keep, versioned: bool = False):
        kind = DLManagedTensorVersioned if versioned else DLManagedTensor
        self._managed = ctypes.cast(managed_ptr, ctypes.POINTER(kind))
        self._keep = keep
        m = self._managed.contents
        t = m.dl_tensor
        self.readonly = bool(versioned and m.flags & _FLAG_READ_ONLY)
        self.device = (int(t.device.device_type), int(t.device.device_id))
        self.shape = tuple(int(t.shape[i]) for i in range(t.ndim))
        self.dtype = numpy_dtype_of(t.dtype)
        self.ptr = int(t.data or 0) + int(t.byte_offset)
        self.strides = None if not t.strides else tuple(int(t.strides[i]) for i in range(t.ndim))

    @property
    def __array_interface__(self) -> dict:
        """The numpy array interface of a host tensor (``np.asarray(view)`` keeps the view alive)."""
        if self.device[0] not in (KDL_CPU, KDL_CUDA_HOST):
            raise AttributeError(f"__array_interface__: the tensor lives on {device_name(self.device)}")
        strides = None if self.strides is None else tuple(s * self.dtype.itemsize for s in self.strides)
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ptr, self.readonly),
                "strides": strides, "version": 3}

    @property
    def contiguous(self) -> bool:
        """Whether the elements are compact and row-major (size-1 axes may have any stride)."""
        if self.strides is None:
            return True
        expect = 1
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != expect:
                return False
            expect *= n
        return True

    @property
    def nbytes(self) -> int:
        """Bytes of the elements."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __del__(self):
        try:
            m = self._managed.contents
            if m.deleter:
                m.deleter(self._managed)
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass


def device_name(device) -> str:
    """A DLPack device ``(type, id)`` as text (``cuda:0``)."""
    return f"{_DEVICE_NAMES.get(device[0], f'device type {device[0]}')}:{device[1]}"


def import_capsule(obj, stream=None) -> DLPackView:
    """Take ``obj.__dlpack__(stream=stream)`` (or a raw capsule) as a :class:`DLPackView`; asks
    for a DLPack 1.0 capsule and takes the older kind from producers that give only that."""
    if hasattr(obj, "__dlpack__"):
        kwargs = {} if stream is None else {"stream": stream}
        try:
            capsule = obj.__dlpack__(max_version=(1, 0), **kwargs)
        except TypeError:
            capsule = obj.__dlpack__(**kwargs)
    else:
        capsule = obj
    if type(capsule).__name__ != "PyCapsule":
        raise RuntimeError_(f"DLPack: {type(obj).__name__}.__dlpack__() returned a {type(capsule).__name__}, "
                            "not a capsule")
    for name, used, versioned in ((_NAME_V, _USED_V, True), (_NAME, _USED, False)):
        if _api.PyCapsule_IsValid(capsule, name):
            ptr = _api.PyCapsule_GetPointer(capsule, name)
            _api.PyCapsule_SetName(capsule, used)   # ours now: the capsule's destructor leaves it alone
            return DLPackView(ptr, keep=obj, versioned=versioned)
    raise RuntimeError_(f"DLPack: {type(obj).__name__}.__dlpack__() did not return an unused DLPack capsule")
