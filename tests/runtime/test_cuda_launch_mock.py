"""The CUDA launch path, run on the CPU against a fake driver.

The fake implements the driver calls the runtime uses with host memory standing in for device
memory, decodes each cuLaunchKernel's raw ``void**`` parameter block exactly as the driver would,
and runs a numpy model of each kernel over the grid it was given. So this checks argument packing,
symbolic grids, workspaces, multi-kernel plans, debug mode and error paths without a GPU; the
same scenarios run on real hardware in ``tests/gpu/test_cuda_runtime.py``.
"""
import ctypes

import numpy as np
import pytest

pytest.importorskip("cuda.bindings")
from cuda.bindings import driver as real  # noqa: E402

import minitvm  # noqa: E402
from minitvm.errors import BuildError, DeviceError, DtypeError, ShapeError  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.runtime.cuda import device as cuda_device  # noqa: E402
from minitvm.runtime.cuda import (CUDAModule, DimArg, DimVar, KernelLaunch, LaunchPlan, ParamArg,  # noqa: E402
                                  WorkspaceArg)
from minitvm.runtime.module import FunctionSignature, ParamSpec  # noqa: E402

OK = real.CUresult.CUDA_SUCCESS
R = real.CUresult

SRC = r"""
extern "C" __global__ void vadd(const float* a, const float* b, float* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void scale2(const float* a, float* w, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) w[i] = 2.0f * a[i];
}
extern "C" __global__ void add_ws(const float* w, const float* b, float* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = w[i] + b[i];
}
extern "C" __global__ void fault(float* a) { a[1 << 30] = 1.0f; }
extern "C" __global__ void big_shared(float* a, int n) {
  extern __shared__ float tile[];
  tile[threadIdx.x] = a[threadIdx.x];
  __syncthreads();
  a[threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}
extern "C" __global__ void two_params(float* a, int n) {}
"""


def _f32(ptr, n):
    return np.ctypeslib.as_array((ctypes.c_float * max(n, 1)).from_address(ptr))[:n]


def _covered(grid, block, n):
    return min(n, grid[0] * block[0])


def k_vadd(grid, block, shmem, a, b, c, n):
    m = _covered(grid, block, n)
    _f32(c, m)[:] = _f32(a, m) + _f32(b, m)


def k_scale2(grid, block, shmem, a, w, n):
    m = _covered(grid, block, n)
    _f32(w, m)[:] = 2 * _f32(a, m)


def k_add_ws(grid, block, shmem, w, b, c, n):
    m = _covered(grid, block, n)
    _f32(c, m)[:] = _f32(w, m) + _f32(b, m)


def k_dot_rows_dp4a(grid, block, shmem, a, b, out, rows, k4):
    m = _covered(grid, block, rows)
    A = np.ctypeslib.as_array((ctypes.c_int8 * max(m * k4 * 4, 1)).from_address(a))[: m * k4 * 4]
    B = np.ctypeslib.as_array((ctypes.c_int8 * max(m * k4 * 4, 1)).from_address(b))[: m * k4 * 4]
    O = np.ctypeslib.as_array((ctypes.c_int32 * max(m, 1)).from_address(out))[:m]
    O[:] = (A.astype(np.int32) * B.astype(np.int32)).reshape(m, -1).sum(axis=1)


def k_reverse_chunks(grid, block, shmem, a, out, n):
    assert shmem >= 16384 * 4
    for blk in range(grid[0]):
        base = blk * 16384
        tile = np.zeros(16384, np.float32)
        cnt = max(0, min(16384, n - base))
        tile[:cnt] = _f32(a + 4 * base, cnt)
        _f32(out + 4 * base, cnt)[:] = tile[::-1][:cnt]


KERNELS = {
    "dot_rows_dp4a": (("p", "p", "p", "i", "i"), k_dot_rows_dp4a),
    "reverse_chunks": (("p", "p", "i"), k_reverse_chunks),
    "boom": (("p",), None),
    "vadd": (("p", "p", "p", "i"), k_vadd),
    "scale2": (("p", "p", "i"), k_scale2),
    "add_ws": (("p", "p", "p", "i"), k_add_ws),
    "fault": (("p",), None),
    "big_shared": (("p", "i"), lambda grid, block, shmem, a, n: None),
    "two_params": (("p", "i"), lambda grid, block, shmem, a, n: None),
}


class FakeFunction:
    def __init__(self, name):
        self.name = name
        self.attrs = {}


class FakeEvent:
    launches = 0


class FakeDriver:
    """Just enough of cuda.bindings.driver, with host memory as device memory."""

    CUresult = real.CUresult
    CUdevice_attribute = real.CUdevice_attribute
    CUfunction_attribute = real.CUfunction_attribute
    CUevent_flags = real.CUevent_flags

    def __init__(self, n_devices=1, cc=(9, 0)):
        self.n_devices = n_devices
        self.cc = cc
        self.memory = {}      # address -> ctypes buffer
        self.launches = []    # (kernel, grid, block, shmem, decoded args)
        self.current = None
        self.ctx_stack = []
        self.pending_error = None
        self.syncs = 0
        self.loaded = 0
        self.set_current_calls = 0

    # devices and contexts
    def cuInit(self, flags):
        return (OK,)

    def cuDeviceGetCount(self):
        return (OK, self.n_devices)

    def cuDeviceGet(self, i):
        return (OK, ("dev", i))

    def cuDevicePrimaryCtxRetain(self, dev):
        return (OK, ("ctx", dev[1]))

    def cuCtxSetCurrent(self, ctx):
        self.set_current_calls += 1
        self.current = ctx
        return (OK,)

    def cuCtxPushCurrent(self, ctx):
        self.ctx_stack.append(self.current)
        self.current = ctx
        return (OK,)

    def cuCtxPopCurrent(self):
        ctx, self.current = self.current, self.ctx_stack.pop()
        return (OK, ctx)

    def cuCtxSynchronize(self):
        self.syncs += 1
        err, self.pending_error = self.pending_error, None
        return (err or OK,)

    def cuDeviceGetAttribute(self, attr, dev):
        A = real.CUdevice_attribute
        values = {A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: self.cc[0],
                  A.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: self.cc[1],
                  A.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 227 * 1024}
        return (OK, values[attr])

    def cuDeviceGetName(self, length, dev):
        return (OK, b"Fake GPU %d" % dev[1] + b"\0" * 20)

    def cuGetErrorString(self, err):
        return (OK, b"fake description")

    # memory
    def cuMemAlloc(self, n):
        buf = ctypes.create_string_buffer(n)
        addr = ctypes.addressof(buf)
        self.memory[addr] = (buf, self.current)
        return (OK, addr)

    def cuMemFree(self, ptr):
        self.memory.pop(int(ptr))
        return (OK,)

    def _check_ptr(self, ptr, n):
        for addr, (buf, _) in self.memory.items():
            if addr <= ptr and ptr + n <= addr + len(buf):
                return
        raise AssertionError(f"pointer 0x{ptr:x} (+{n}) is not inside a live allocation")

    def cuMemcpyHtoD(self, dst, src, n):
        self._check_ptr(dst, n)
        ctypes.memmove(dst, src, n)
        return (OK,)

    def cuMemcpyDtoH(self, dst, src, n):
        self._check_ptr(src, n)
        ctypes.memmove(dst, src, n)
        return (OK,)

    def cuMemcpyDtoD(self, dst, src, n):
        self._check_ptr(dst, n)
        self._check_ptr(src, n)
        ctypes.memmove(dst, src, n)
        return (OK,)

    def cuMemsetD8(self, ptr, value, n):
        self._check_ptr(ptr, n)
        ctypes.memset(ptr, value, n)
        return (OK,)

    # modules
    def cuModuleLoadData(self, image):
        assert bytes(image[:4]) == b"\x7fELF"
        self.loaded += 1
        return (OK, ("module", self.current))

    def cuModuleUnload(self, handle):
        return (OK,)

    def cuModuleGetFunction(self, handle, name):
        name = name.decode()
        if name not in KERNELS:
            return (R.CUDA_ERROR_NOT_FOUND, None)
        return (OK, FakeFunction(name))

    def cuFuncGetParamInfo(self, func, i):
        kinds = KERNELS[func.name][0]
        if i >= len(kinds):
            return (R.CUDA_ERROR_INVALID_VALUE, 0, 0)
        return (OK, 8 * i, 8 if kinds[i] == "p" else 4)

    def cuFuncGetAttribute(self, attr, func):
        return (OK, 0)

    def cuFuncSetAttribute(self, func, attr, value):
        func.attrs[attr] = value
        return (OK,)

    def CUstream(self, value):
        return ("stream", value)

    def cuLaunchKernel(self, f, gx, gy, gz, bx, by, bz, shmem, stream, params, extra):
        assert isinstance(params, int) and extra == 0 and stream == ("stream", 0)
        assert self.current is not None
        kinds, impl = KERNELS[f.name]
        if not (0 < gx < 2**31 and 0 < gy <= 65535 and 0 < gz <= 65535 and 0 < bx * by * bz <= 1024):
            return (R.CUDA_ERROR_INVALID_VALUE,)
        if shmem > 48 * 1024:
            limit = f.attrs.get(real.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 0)
            if shmem > limit:
                return (R.CUDA_ERROR_INVALID_VALUE,)
        slots = (ctypes.c_void_p * len(kinds)).from_address(params) if kinds else []
        args = []
        for kind, slot in zip(kinds, slots):
            if kind == "p":
                args.append(ctypes.c_uint64.from_address(slot).value)
            else:
                args.append(ctypes.c_int32.from_address(slot).value)
        self.launches.append((f.name, (gx, gy, gz), (bx, by, bz), shmem, tuple(args)))
        if f.name in ("fault", "boom"):
            self.pending_error = R.CUDA_ERROR_ILLEGAL_ADDRESS
        elif impl is not None:
            impl((gx, gy, gz), (bx, by, bz), shmem, *args)
        return (OK,)

    # events
    def cuEventCreate(self, flags):
        return (OK, FakeEvent())

    def cuEventRecord(self, ev, stream):
        ev.launches = len(self.launches)
        return (OK,)

    def cuEventSynchronize(self, ev):
        return (OK,)

    def cuEventElapsedTime(self, a, b):
        return (OK, 0.25 * (b.launches - a.launches))  # every fake launch "takes" 0.25 ms

    def cuEventDestroy(self, ev):
        return (OK,)


@pytest.fixture
def fake(monkeypatch, tmp_path):
    drv = FakeDriver()
    monkeypatch.setattr(cuda_device, "_drv", drv)
    monkeypatch.setattr(cuda_device, "_devices", cuda_device._DeviceState())
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MINITVM_CUDA_DEBUG", raising=False)
    yield drv


def vec(*names, dtype="float32", dim="n"):
    return tuple(ParamSpec(x, (dim,), dtype) for x in names)


def vadd_module(**kw):
    sig = FunctionSignature("vadd", vec("A", "B", "C"))
    plan = LaunchPlan((KernelLaunch("vadd", ((DimVar("n") + 127) // 128, 1, 1), (128, 1, 1), 0,
                                    (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))),))
    return CUDAModule(SRC, [sig], {"vadd": plan}, **kw)


def poisoned(n, dev):
    c = minitvm.nd.empty((n,), "float32", minitvm.cuda(dev))
    c.handle.memset_d8(0xFF)  # NaN pattern
    return c


def test_device_queries(fake):
    assert cuda.device_count() == 1 and cuda.has_gpu() and cuda.unavailable_reason() is None
    assert cuda.device_arch(0) == "sm_90"
    assert cuda.device_name(0) == "Fake GPU 0"
    cuda.synchronize(0)
    with pytest.raises(DeviceError, match="only 1 device"):
        cuda.require_device(3)


def test_buffer_round_trip(fake):
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=1000, dtype=np.int8)
    buf = cuda.DeviceBuffer(x.nbytes)
    buf.copy_from_host(x)
    other = cuda.DeviceBuffer(x.nbytes)
    other.copy_from_device(buf)
    out = np.empty_like(x)
    other.copy_to_host(out)
    np.testing.assert_array_equal(out, x)
    other.memset_d8(7)
    assert (other.copy_to_host(np.empty(1000, np.uint8)) == 7).all()
    with pytest.raises(ShapeError, match="1000 bytes"):
        buf.copy_from_host(np.zeros(10, np.int8))
    with pytest.raises(ShapeError, match="C-contiguous"):
        buf.copy_to_host(np.zeros((2000,), np.int8)[::2])
    live = len(fake.memory)
    del buf
    assert len(fake.memory) == live - 1
    assert fake.current == ("ctx", 0) and not fake.ctx_stack  # freeing restored the current context
    empty = cuda.DeviceBuffer(0)
    assert empty.ptr == 0
    empty.copy_from_host(np.zeros(0, np.float32))


@pytest.mark.parametrize("n", [1, 127, 128, 129, 1000])
def test_vadd_symbolic_grid(fake, n):
    mod = vadd_module()
    dev = minitvm.cuda()
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    A, B, C = minitvm.nd.array(a, dev), minitvm.nd.array(b, dev), poisoned(n, 0)
    mod(A, B, C)
    np.testing.assert_array_equal(C.numpy(), a + b)
    name, grid, block, shmem, args = fake.launches[-1]
    assert (name, grid, block, shmem) == ("vadd", ((n + 127) // 128, 1, 1), (128, 1, 1), 0)
    assert args == (A.handle.ptr, B.handle.ptr, C.handle.ptr, n)


def test_repeated_runs_and_shape_changes(fake):
    mod = vadd_module()
    dev = minitvm.cuda()
    for n in (300, 5, 300, 70000):
        a = np.arange(n, dtype="float32")
        A, C = minitvm.nd.array(a, dev), poisoned(n, 0)
        mod["vadd"](A, A, C)
        np.testing.assert_array_equal(C.numpy(), 2 * a)
        assert fake.launches[-1][4][3] == n
    assert fake.loaded == 1  # the cubin is loaded once


def test_zero_size_grid_skips_launch(fake):
    mod = vadd_module()
    E = minitvm.nd.empty((0,), "float32", minitvm.cuda())
    mod(E, E, E)
    assert fake.launches == []


def test_workspace_and_two_kernels(fake):
    sig = FunctionSignature("f", vec("A", "B", "C"))
    plan = LaunchPlan(
        (KernelLaunch("scale2", ((DimVar("n") + 63) // 64, 1, 1), (64, 1, 1), 0,
                      (ParamArg(0), WorkspaceArg(0), DimArg("n"))),
         KernelLaunch("add_ws", ((DimVar("n") + 255) // 256, 1, 1), (256, 1, 1), 0,
                      (WorkspaceArg(0), ParamArg(1), ParamArg(2), DimArg("n")))),
        workspaces=(4 * DimVar("n"),))
    mod = CUDAModule(SRC, [sig], {"f": plan})
    dev = minitvm.cuda()
    rng = np.random.default_rng(1)
    for n in (100, 100, 333):
        a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
        C = poisoned(n, 0)
        mod(minitvm.nd.array(a, dev), minitvm.nd.array(b, dev), C)
        np.testing.assert_array_equal(C.numpy(), 2 * a + b)
        (k1, g1, _, _, args1), (k2, g2, _, _, args2) = fake.launches[-2:]
        assert (k1, k2) == ("scale2", "add_ws") and args1[1] == args2[0]  # same workspace
        assert g1[0] == (n + 63) // 64 and g2[0] == (n + 255) // 256
    assert len(mod._workspaces) == 2  # one per size, reused for the repeated size


def test_plan_param_count_checked_against_kernel(fake):
    sig = FunctionSignature("f", vec("A"))
    plan = LaunchPlan((KernelLaunch("two_params", (1, 1, 1), (32, 1, 1), 0, (ParamArg(0),)),))
    mod = CUDAModule(SRC, [sig], {"f": plan})
    with pytest.raises(DeviceError, match="takes 2 parameters, but its launch plan passes 1"):
        mod(minitvm.nd.empty((4,), "float32", minitvm.cuda()))
    plan = LaunchPlan((KernelLaunch("two_params", (1, 1, 1), (32, 1, 1), 0, (ParamArg(0), ParamArg(0))),))
    mod = CUDAModule(SRC, [sig], {"f": plan})
    with pytest.raises(DeviceError, match="parameter 1 is 4 bytes"):
        mod(minitvm.nd.empty((4,), "float32", minitvm.cuda()))


def test_large_dynamic_shared_memory_opt_in(fake):
    sig = FunctionSignature("f", vec("A"))
    plan = LaunchPlan((KernelLaunch("big_shared", (1, 1, 1), (256, 1, 1), 100 * 1024, (ParamArg(0), DimArg("n"))),))
    mod = CUDAModule(SRC, [sig], {"f": plan})
    mod(minitvm.nd.empty((256,), "float32", minitvm.cuda()))
    assert fake.launches[-1][3] == 100 * 1024
    func = mod._loaded[0].functions["big_shared"]
    assert func.attrs[real.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES] == 100 * 1024


def test_debug_mode_names_faulting_kernel(fake):
    sig = FunctionSignature("f", vec("A"))
    plan = LaunchPlan((KernelLaunch("fault", (1, 1, 1), (1, 1, 1), 0, (ParamArg(0),)),))
    A = minitvm.nd.empty((4,), "float32", minitvm.cuda())
    quiet = CUDAModule(SRC, [sig], {"f": plan}, debug=False)
    quiet(A)  # asynchronous: no error yet
    fake.pending_error = None
    loud = CUDAModule(SRC, [sig], {"f": plan}, debug=True)
    with pytest.raises(DeviceError, match=r"kernel 'fault' \(launch 0 of function 'f'.*CUDA_ERROR_ILLEGAL_ADDRESS"):
        loud(A)


def test_debug_mode_from_env(fake, monkeypatch):
    monkeypatch.setenv("MINITVM_CUDA_DEBUG", "1")
    mod = vadd_module()
    A = minitvm.nd.array(np.ones(10, "float32"), minitvm.cuda())
    syncs = fake.syncs
    mod(A, A, A)
    assert fake.syncs == syncs + 1


@pytest.mark.parametrize("make_arg", [
    lambda: np.ones(8, "float32"),
    lambda: minitvm.nd.array(np.ones(8, "float32")),
])
def test_cpu_arguments_rejected(fake, make_arg):
    mod = vadd_module()
    good = minitvm.nd.array(np.ones(8, "float32"), minitvm.cuda())
    with pytest.raises(DeviceError, match=r"argument B \(parameter 1\).*minitvm.nd.array\(x, minitvm.cuda\(\)\)"):
        mod(good, make_arg(), good)
    mod(good, good, good)  # a good call works, then a bad one is still caught on the fast path
    with pytest.raises(DeviceError, match="argument C"):
        mod(good, good, make_arg())


def test_signature_errors(fake):
    mod = vadd_module()
    dev = minitvm.cuda()
    A = minitvm.nd.array(np.ones(8, "float32"), dev)
    mod(A, A, A)
    with pytest.raises(ShapeError, match="takes 3 arguments"):
        mod(A, A)
    with pytest.raises(ShapeError, match="symbolic dimension n"):
        mod(A, A, minitvm.nd.empty((9,), "float32", dev))
    with pytest.raises(DtypeError, match="float32"):
        mod(A, A, minitvm.nd.empty((8,), "int32", dev))


def test_time_evaluator_uses_events(fake):
    mod = vadd_module()
    A = minitvm.nd.array(np.ones(64, "float32"), minitvm.cuda())
    res = mod.time_evaluator("vadd", number=4, repeat=3)(A, A, A)
    assert len(res.results) == 3 and all(r == pytest.approx(0.25e-3) for r in res.results)
    res = mod.time_evaluator("vadd", number=1, repeat=2, min_repeat_ms=2)(A, A, A)
    assert all(r == pytest.approx(0.25e-3) for r in res.results)


def test_context_made_current_each_run(fake):
    mod = vadd_module()
    A = minitvm.nd.array(np.ones(64, "float32"), minitvm.cuda())
    mod(A, A, A)
    fake.current = None
    mod(A, A, A)
    assert fake.current == ("ctx", 0)


def test_two_devices(monkeypatch, tmp_path):
    drv = FakeDriver(n_devices=2)
    monkeypatch.setattr(cuda_device, "_drv", drv)
    monkeypatch.setattr(cuda_device, "_devices", cuda_device._DeviceState())
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(tmp_path))
    mod = vadd_module()
    a = np.arange(10, dtype="float32")
    for dev in (1, 0, 1):
        A, C = minitvm.nd.array(a, minitvm.cuda(dev)), poisoned(10, dev)
        mod(A, A, C)
        np.testing.assert_array_equal(C.numpy(), 2 * a)
        assert drv.current == ("ctx", dev)
    assert drv.loaded == 2
    with pytest.raises(DeviceError, match="different CUDA devices"):
        mod(minitvm.nd.array(a, minitvm.cuda(0)), A, C)


def test_arch_mismatch_is_clear(monkeypatch, tmp_path):
    drv = FakeDriver(cc=(8, 0))
    monkeypatch.setattr(cuda_device, "_drv", drv)
    monkeypatch.setattr(cuda_device, "_devices", cuda_device._DeviceState())
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(tmp_path))
    mod = vadd_module(arch="sm_90")
    A = minitvm.nd.array(np.ones(4, "float32"), minitvm.cuda())
    with pytest.raises(DeviceError, match="compiled for sm_90, but CUDA device 0 .* is sm_80"):
        mod(A, A, A)
    mod = vadd_module(arch="sm_80")
    mod(A, A, A)


def test_bad_grid_expression_value(fake):
    sig = FunctionSignature("f", vec("A"))
    plan = LaunchPlan((KernelLaunch("two_params", (DimVar("n") // 0, 1, 1), (32, 1, 1), 0,
                                    (ParamArg(0), DimArg("n"))),))
    mod = CUDAModule(SRC, [sig], {"f": plan})
    with pytest.raises(ShapeError, match="evaluating .* failed: ZeroDivisionError"):
        mod(minitvm.nd.empty((4,), "float32", minitvm.cuda()))


def test_build_time_error_type_unchanged(fake):
    with pytest.raises(BuildError):
        CUDAModule(SRC, [FunctionSignature("f", vec("A"))], {})
