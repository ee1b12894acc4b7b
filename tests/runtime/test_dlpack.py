"""Zero-copy tensors: NDArray's DLPack, __array__ and CUDA array interface; nd.from_dlpack; kernels
taking DLPack tensors. torch is optional: without it, numpy (and DLPack-only wrappers) stand in."""
import gc

import numpy as np
import pytest

import minitvm
from minitvm import nd, te
from minitvm.errors import DeviceError, RuntimeError_
from minitvm.runtime import dlpack


class DLPackOnly:
    """A tensor that offers nothing but DLPack (like a foreign library's), over a numpy array."""

    def __init__(self, arr, device=(1, 0)):
        self.arr, self.device = arr, device

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        return dlpack.export_capsule(self.arr.ctypes.data, self.arr.shape, self.arr.dtype, self.device[0],
                                     self.device[1], self.arr)

    def __dlpack_device__(self):
        return self.device


def _ptr(a):
    return np.asarray(a).__array_interface__["data"][0]


def test_cpu_ndarray_dlpack_and_array_share_memory():
    a = nd.array(np.arange(12, dtype="float32").reshape(3, 4))
    assert a.__dlpack_device__() == (1, 0)
    v = np.from_dlpack(a)
    assert v.shape == (3, 4) and v.dtype == np.float32 and _ptr(v) == _ptr(a.numpy())
    v[0, 0] = 42
    assert a.numpy()[0, 0] == 42
    arr = np.asarray(a)
    assert arr.dtype == np.float32 and arr.shape == (3, 4) and _ptr(arr) == _ptr(a.numpy())
    assert np.asarray(a, dtype="float64").dtype == np.float64
    assert np.array(a, copy=True).__array_interface__["data"][0] != _ptr(a.numpy())


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "float32", "float64", "bool"])
def test_dlpack_round_trip_keeps_dtype_shape_and_memory(dtype):
    x = (np.arange(24) % 3).astype(dtype).reshape(2, 3, 4)
    a = nd.from_dlpack(x)
    assert a.device == nd.cpu() and a.dtype == dtype and a.shape == (2, 3, 4) and _ptr(a.numpy()) == _ptr(x)
    back = np.from_dlpack(a)
    assert _ptr(back) == _ptr(x) and back.dtype == x.dtype
    again = nd.from_dlpack(DLPackOnly(x))
    np.testing.assert_array_equal(again.numpy(), x)
    assert _ptr(again.numpy()) == _ptr(x)


def test_zero_d_and_empty_arrays():
    s = nd.array(np.float32(3.5))
    assert np.from_dlpack(s).shape == () and float(np.asarray(s)) == 3.5
    e = nd.from_dlpack(np.zeros((0, 4), "int32"))
    assert e.shape == (0, 4) and np.from_dlpack(e).shape == (0, 4)


def test_exported_capsules_are_released():
    base = len(dlpack._live)
    a = nd.array(np.ones(8, "float32"))
    v = np.from_dlpack(a)
    assert len(dlpack._live) == base + 1
    del v
    gc.collect()
    cap = a.__dlpack__()        # never consumed: its destructor releases it
    del cap
    cap = a.__dlpack__(max_version=(1, 0))
    del cap
    gc.collect()
    assert len(dlpack._live) == base


def test_import_capsule_reads_strides_and_offset():
    x = np.arange(20, dtype="int32").reshape(4, 5)
    view = dlpack.import_capsule(x[1:, 2:4])
    assert view.shape == (3, 2) and view.dtype == np.int32 and view.device == (1, 0)
    assert view.ptr == _ptr(x) + (5 + 2) * 4 and not view.contiguous
    assert dlpack.import_capsule(x).contiguous


def test_from_dlpack_rejects_unknown_objects_and_devices():
    with pytest.raises(DeviceError, match="cannot take a builtins.object"):
        nd.from_dlpack(object())
    with pytest.raises(DeviceError, match="vulkan"):
        nd.from_dlpack(DLPackOnly(np.zeros(2, "float32"), device=(7, 0)))


def _add_one(n=16):
    A = te.placeholder((n,), "float32", "A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    return minitvm.build(te.create_schedule(B.op), [A, B], target="llvm")


def test_cpu_kernels_take_dlpack_tensors_in_place():
    f = _add_one()
    a = np.arange(16, dtype="float32")
    out = np.zeros(16, "float32")
    f(DLPackOnly(a), DLPackOnly(out))       # the kernel writes the foreign tensor's own memory
    np.testing.assert_array_equal(out, a + 1)
    f(nd.from_dlpack(a), nd.from_dlpack(out))
    np.testing.assert_array_equal(out, a + 1)


def test_cpu_kernel_refuses_a_gpu_tensor_clearly():
    f = _add_one()
    with pytest.raises(RuntimeError_, match="argument A .* lives on a GPU"):
        f(DLPackOnly(np.zeros(16, "float32"), device=(2, 0)), np.zeros(16, "float32"))


def test_cuda_ndarray_exports_its_device_pointer(monkeypatch):
    """The CUDA side of the protocols, on a stand-in buffer (no GPU: nothing is dereferenced)."""
    class Buf:
        ptr, nbytes, device_index = 0x7F0000001000, 96, 1
    monkeypatch.setattr(nd.Device, "sync", lambda self: None)
    a = nd.NDArray((4, 6), "float32", nd.cuda(1), buffer=Buf())
    assert a.__dlpack_device__() == (2, 1)
    cai = a.__cuda_array_interface__
    assert cai["data"] == (Buf.ptr, False) and cai["shape"] == (4, 6) and cai["typestr"] == "<f4"
    assert cai["version"] == 3 and cai["strides"] is None
    view = dlpack.import_capsule(a)
    assert view.device == (2, 1) and view.ptr == Buf.ptr and view.shape == (4, 6) and view.contiguous
    with pytest.raises(BufferError, match="lives on cuda"):
        a.__dlpack__(dl_device=(1, 0))
    with pytest.raises(AttributeError):
        nd.array(np.zeros(2, "float32")).__cuda_array_interface__


def test_torch_cpu_tensors_through_kernels_and_from_dlpack():
    torch = pytest.importorskip("torch", reason="torch is not installed here (DLPack is tested with numpy)")
    f = _add_one()
    a = torch.arange(16, dtype=torch.float32)
    out = torch.zeros(16)
    f(a, out)
    assert torch.equal(out, a + 1)
    t = torch.from_dlpack(nd.array(np.ones((2, 3), "float32")))
    assert t.shape == (2, 3)
    assert nd.from_dlpack(a).numpy().__array_interface__["data"][0] == a.data_ptr()


def test_versioned_capsules_keep_the_read_only_flag():
    class Forward:   # a DLPack 1.0 producer: numpy itself, behind a foreign type
        def __init__(self, arr):
            self.arr = arr

        def __dlpack__(self, **kw):
            return self.arr.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.arr.__dlpack_device__()

    x = np.zeros(16, "float32")
    x.setflags(write=False)
    view = dlpack.import_capsule(Forward(x))
    assert view.readonly and not np.asarray(view).flags.writeable
    with pytest.raises(RuntimeError_, match="argument B is written by the function but the array is read-only"):
        _add_one()(np.zeros(16, "float32"), Forward(x))
    w = np.zeros(16, "float32")
    _add_one()(Forward(np.arange(16, dtype="float32")), Forward(w))
    np.testing.assert_array_equal(w, np.arange(16) + 1)
