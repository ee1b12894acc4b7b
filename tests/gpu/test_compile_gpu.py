"""On the GPU: CUDA artifacts round trip, and CUDA tensors cross DLPack and the CUDA array interface
without copies (torch CUDA tensors where torch is installed)."""
import numpy as np
import pytest

import minitvm
from minitvm import nd, te
from minitvm.graph import Graph
from minitvm.runtime import cuda

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]


def _net():
    rng = np.random.default_rng(3)
    g = Graph("small")
    x = g.add_input("data", (2, 4, 8, 8), "float32")
    w = g.add_const("w", rng.standard_normal((8, 4, 3, 3)).astype("float32") * 0.3)
    r = g.add_op("relu", [g.add_op("conv2d", [x, w], {"padding": (1, 1, 1, 1)}, name="c")], name="r")
    f = g.add_op("flatten", [g.add_op("global_avg_pool2d", [r], name="gap")], name="flat")
    wd = g.add_const("wd", rng.standard_normal((10, 8)).astype("float32"))
    g.mark_output(g.add_op("dense", [f, wd], name="fc"))
    return g


def _x(seed=0):
    return np.random.default_rng(seed).standard_normal((2, 4, 8, 8)).astype("float32")


def _add_one(n=256):
    A = te.placeholder((n,), "float32", "A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=64)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    return minitvm.build(s, [A, B], target="cuda")


def test_cuda_artifact_round_trip_bit_for_bit(tmp_path):
    model = minitvm.compile(_net(), target="cuda")
    x = _x()
    want = model.run({"data": x})[0]
    model.save(tmp_path / "m.mtvm")
    loaded = minitvm.load(tmp_path / "m.mtvm")
    assert loaded.kind == "cuda"
    np.testing.assert_array_equal(loaded.run({"data": x})[0], want)
    out = loaded(nd.array(x, nd.cuda()))
    assert isinstance(out, nd.NDArray) and out.device.kind == "cuda"
    np.testing.assert_array_equal(out.numpy(), want)


def test_cuda_ndarray_dlpack_and_cuda_array_interface_share_memory():
    x = np.arange(256, dtype="float32")
    a = nd.array(x, nd.cuda())
    assert a.__dlpack_device__() == (2, 0)
    b = nd.from_dlpack(a)                         # the NDArray itself
    assert b is a

    class CAI:
        def __init__(self, arr):
            self.__cuda_array_interface__ = arr.__cuda_array_interface__

    c = nd.from_dlpack(CAI(a))
    assert c._buffer.ptr == a._buffer.ptr and c.device.kind == "cuda"
    np.testing.assert_array_equal(c.numpy(), x)
    f = _add_one()
    out = nd.empty((256,), "float32", nd.cuda())
    f(CAI(a), CAI(out))                           # kernels take CUDA-array-interface tensors in place
    np.testing.assert_array_equal(out.numpy(), x + 1)


def test_torch_cuda_tensors_in_torch_cuda_tensors_out():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    a = torch.arange(256, dtype=torch.float32, device="cuda")
    out = torch.zeros(256, device="cuda")
    _add_one()(a, out)
    torch.cuda.synchronize()
    assert torch.equal(out, a + 1)
    t = torch.from_dlpack(nd.array(np.ones(8, "float32"), nd.cuda()))
    assert t.is_cuda and t.sum().item() == 8
    model = minitvm.compile(_net(), target="cuda")
    x = _x(1)
    y = model(torch.from_numpy(x).cuda())
    assert isinstance(y, torch.Tensor) and y.is_cuda
    np.testing.assert_array_equal(y.cpu().numpy(), model.run({"data": x})[0])
