"""The CUDA runtime on a real GPU: memory, modules, launch plans, timing, debug mode, errors."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("cuda.bindings")

import minitvm  # noqa: E402
from minitvm.errors import DeviceError  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.runtime.cuda import (CUDAModule, DimArg, DimVar, KernelLaunch, LaunchPlan, ParamArg,  # noqa: E402
                                  WorkspaceArg)
from minitvm.runtime.module import FunctionSignature, ParamSpec  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(cuda.device_count() == 0, reason=f"no CUDA device: {cuda.unavailable_reason()}"),
]

SRC = r"""
extern "C" __global__ void vadd(const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void scale2(const float* __restrict__ a, float* __restrict__ w, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) w[i] = 2.0f * a[i];
}
extern "C" __global__ void add_ws(const float* __restrict__ w, const float* __restrict__ b,
                                  float* __restrict__ c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = w[i] + b[i];
}
// int8 dot products: rows of k int8 values (k % 4 == 0) read as char4 / int words, __dp4a.
extern "C" __global__ void dot_rows_dp4a(const char4* __restrict__ a, const char4* __restrict__ b,
                                         int* __restrict__ out, int rows, int k4) {
  int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  int acc = 0;
  for (int j = 0; j < k4; ++j) {
    char4 x = a[r * k4 + j], y = b[r * k4 + j];
    acc = __dp4a(*reinterpret_cast<const int*>(&x), *reinterpret_cast<const int*>(&y), acc);
  }
  out[r] = acc;
}
// Reverses each 16384-float chunk through 64 KB of dynamic shared memory (needs the opt-in).
extern "C" __global__ void reverse_chunks(const float* __restrict__ a, float* __restrict__ out, int n) {
  extern __shared__ float tile[];
  const int chunk = 16384;
  int base = blockIdx.x * chunk;
  for (int t = threadIdx.x; t < chunk; t += blockDim.x)
    tile[t] = base + t < n ? a[base + t] : 0.0f;
  __syncthreads();
  for (int t = threadIdx.x; t < chunk; t += blockDim.x)
    if (base + t < n) out[base + t] = tile[chunk - 1 - t];
}
extern "C" __global__ void boom(float* a) { __trap(); }
"""


def vec(*names, dtype="float32", dim="n"):
    return tuple(ParamSpec(x, (dim,), dtype) for x in names)


def module(**kw):
    """vadd (one launch), fused (two launches sharing a workspace), reverse (64 KB dynamic shared)."""
    sigs = [
        FunctionSignature("vadd", vec("A", "B", "C")),
        FunctionSignature("fused", vec("A", "B", "C")),
        FunctionSignature("reverse", vec("A", "Out")),
    ]
    plans = {
        "vadd": LaunchPlan((KernelLaunch("vadd", ((DimVar("n") + 255) // 256, 1, 1), (256, 1, 1), 0,
                                         (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))),)),
        "fused": LaunchPlan(
            (KernelLaunch("scale2", ((DimVar("n") + 127) // 128, 1, 1), (128, 1, 1), 0,
                          (ParamArg(0), WorkspaceArg(0), DimArg("n"))),
             KernelLaunch("add_ws", ((DimVar("n") + 255) // 256, 1, 1), (256, 1, 1), 0,
                          (WorkspaceArg(0), ParamArg(1), ParamArg(2), DimArg("n")))),
            workspaces=(4 * DimVar("n"),)),
        "reverse": LaunchPlan((KernelLaunch("reverse_chunks", ((DimVar("n") + 16383) // 16384, 1, 1), (512, 1, 1),
                                            65536, (ParamArg(0), ParamArg(1), DimArg("n"))),)),
    }
    return CUDAModule(SRC, sigs, plans, arch=cuda.device_arch(0), **kw)


def dot_module():
    """int8 row dot products with char4 loads and __dp4a; k4 (= k / 4) is a symbolic dim."""
    sig = FunctionSignature("dot", (ParamSpec("A", ("rows", "k4", 4), "int8"),
                                    ParamSpec("B", ("rows", "k4", 4), "int8"),
                                    ParamSpec("Out", ("rows",), "int32")))
    plan = LaunchPlan((KernelLaunch("dot_rows_dp4a", ((DimVar("rows") + 63) // 64, 1, 1), (64, 1, 1), 0,
                                    (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("rows"), DimArg("k4"))),))
    return CUDAModule(SRC, [sig], {"dot": plan}, arch=cuda.device_arch(0))


@pytest.fixture(scope="module")
def mod():
    return module()


def poisoned(shape, dtype="float32"):
    out = minitvm.nd.empty(shape, dtype, minitvm.cuda())
    out.handle.memset_d8(0xFF)
    return out


def test_device_queries():
    assert cuda.has_gpu() and cuda.unavailable_reason() is None
    arch = cuda.device_arch(0)
    assert arch.startswith("sm_") and int(arch[3:]) >= 70
    assert cuda.device_name(0)
    assert minitvm.cuda(0).exist
    minitvm.cuda(0).sync()
    with pytest.raises(DeviceError, match="no CUDA device"):
        cuda.require_device(cuda.device_count())


@pytest.mark.parametrize("dtype", ["int8", "float32", "int32"])
def test_buffer_round_trip(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(-100, 100, size=(37, 1001)).astype(dtype)
    buf = cuda.DeviceBuffer(x.nbytes)
    buf.copy_from_host(x)
    copy = cuda.DeviceBuffer(x.nbytes)
    copy.memset_d8(0xAB)
    copy.copy_from_device(buf)
    out = np.full_like(x, 7)
    copy.copy_to_host(out)
    np.testing.assert_array_equal(out, x)
    copy.memset_d8(0x5A)
    assert (copy.copy_to_host(np.empty(x.nbytes, np.uint8)) == 0x5A).all()
    nd = minitvm.nd.array(x, minitvm.cuda())
    np.testing.assert_array_equal(nd.numpy(), x)


def test_many_buffers_are_freed():
    # 2000 x 64 MB would exhaust any GPU if buffers leaked
    for _ in range(2000):
        cuda.DeviceBuffer(64 << 20)


@pytest.mark.parametrize("n", [1, 255, 256, 257, 100_003, 1 << 22])
def test_vadd_symbolic_grid(mod, n):
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    dev = minitvm.cuda()
    C = poisoned((n,))
    mod["vadd"](minitvm.nd.array(a, dev), minitvm.nd.array(b, dev), C)
    np.testing.assert_array_equal(C.numpy(), a + b)


def test_workspace_two_kernel_plan(mod):
    rng = np.random.default_rng(3)
    dev = minitvm.cuda()
    for n in (1000, 77, 1000, 1 << 20):
        a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
        C = poisoned((n,))
        mod["fused"](minitvm.nd.array(a, dev), minitvm.nd.array(b, dev), C)
        np.testing.assert_array_equal(C.numpy(), 2 * a + b)
    assert len(mod._workspaces) == 3


def test_dp4a_char4_bit_exact():
    m = dot_module()
    rng = np.random.default_rng(4)
    rows, k4 = 1000, 33
    a = rng.integers(-128, 128, size=(rows, k4, 4), dtype=np.int8)
    b = rng.integers(-128, 128, size=(rows, k4, 4), dtype=np.int8)
    out = poisoned((rows,), "int32")
    dev = minitvm.cuda()
    m(minitvm.nd.array(a, dev), minitvm.nd.array(b, dev), out)
    want = (a.astype(np.int32) * b.astype(np.int32)).reshape(rows, -1).sum(axis=1)
    np.testing.assert_array_equal(out.numpy(), want)


def test_dynamic_shared_memory_over_48kb(mod):
    n = 3 * 16384 + 100
    a = np.random.default_rng(5).standard_normal(n).astype("float32")
    out = poisoned((n,))
    mod["reverse"](minitvm.nd.array(a, minitvm.cuda()), out)
    padded = np.zeros(4 * 16384, "float32")
    padded[:n] = a
    want = padded.reshape(4, 16384)[:, ::-1].reshape(-1)[:n]
    np.testing.assert_array_equal(out.numpy(), want)


def test_time_evaluator_positive(mod):
    n = 1 << 22
    dev = minitvm.cuda()
    A = minitvm.nd.array(np.ones(n, "float32"), dev)
    C = minitvm.nd.empty((n,), "float32", dev)
    res = mod.time_evaluator("vadd", number=20, repeat=3)(A, A, C)
    assert len(res.results) == 3 and all(t > 0 for t in res.results)
    assert res.mean < 0.01  # 48 MB of traffic takes well under 10 ms
    res = mod.time_evaluator("vadd", number=1, repeat=2, min_repeat_ms=5)(A, A, C)
    assert all(t > 0 for t in res.results)
    np.testing.assert_array_equal(C.numpy()[:10], 2.0)


def test_debug_mode_runs_and_syncs(monkeypatch):
    monkeypatch.setenv("MINITVM_CUDA_DEBUG", "1")
    m = module()
    assert m.debug
    a = np.arange(5000, dtype="float32")
    dev = minitvm.cuda()
    C = poisoned((5000,))
    m["fused"](minitvm.nd.array(a, dev), minitvm.nd.array(a, dev), C)
    np.testing.assert_array_equal(C.numpy(), 3 * a)


def test_debug_mode_names_faulting_kernel(tmp_path):
    # A kernel fault poisons the CUDA context for the rest of the process: run it in a child.
    script = textwrap.dedent(f"""
        import numpy as np, minitvm
        from minitvm.runtime import cuda
        from minitvm.runtime.cuda import CUDAModule, KernelLaunch, LaunchPlan, ParamArg
        from minitvm.runtime.module import FunctionSignature, ParamSpec
        from minitvm.errors import DeviceError
        src = {SRC!r}
        sig = FunctionSignature("f", (ParamSpec("A", ("n",), "float32"),))
        plan = LaunchPlan((KernelLaunch("boom", (1, 1, 1), (32, 1, 1), 0, (ParamArg(0),)),))
        m = CUDAModule(src, [sig], {{"f": plan}}, arch=cuda.device_arch(0), debug=True)
        try:
            m(minitvm.nd.empty((4,), "float32", minitvm.cuda()))
        except DeviceError as e:
            print("CAUGHT", e)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert "CAUGHT" in proc.stdout, proc.stdout + proc.stderr
    assert "kernel 'boom' (launch 0 of function 'f'" in proc.stdout


def test_launch_config_error_names_kernel(mod):
    sig = FunctionSignature("f", vec("A", "B", "C"))
    plan = LaunchPlan((KernelLaunch("vadd", (1, 70000, 1), (256, 1, 1), 0,
                                    (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))),))  # grid.y > 65535
    bad = CUDAModule(SRC, [sig], {"f": plan}, arch=cuda.device_arch(0))
    A = minitvm.nd.array(np.ones(16, "float32"), minitvm.cuda())
    with pytest.raises(DeviceError, match="cuLaunchKernel failed for kernel 'vadd'.*CUDA_ERROR_INVALID_VALUE"):
        bad(A, A, A)
    mod["vadd"](A, A, A)  # a configuration error does not break the context
    np.testing.assert_array_equal(A.numpy(), 2.0)


def test_plan_argument_count_checked(mod):
    sig = FunctionSignature("f", vec("A", "B", "C"))
    plan = LaunchPlan((KernelLaunch("vadd", (1, 1, 1), (256, 1, 1), 0, (ParamArg(0), ParamArg(1), ParamArg(2))),))
    bad = CUDAModule(SRC, [sig], {"f": plan}, arch=cuda.device_arch(0))
    A = minitvm.nd.array(np.ones(16, "float32"), minitvm.cuda())
    with pytest.raises(DeviceError, match="takes 4 parameters, but its launch plan passes 3"):
        bad(A, A, A)


def test_cpu_array_arguments_rejected(mod):
    good = minitvm.nd.array(np.ones(8, "float32"), minitvm.cuda())
    with pytest.raises(DeviceError, match=r"argument B .*minitvm.nd.array\(x, minitvm.cuda\(\)\)"):
        mod["vadd"](good, np.ones(8, "float32"), good)
    with pytest.raises(DeviceError, match=r"argument C .*NDArray on cpu\(0\)"):
        mod["vadd"](good, good, minitvm.nd.array(np.ones(8, "float32")))


def test_wrong_arch_is_clear():
    major = int(cuda.device_arch(0)[3:]) // 10
    other = "sm_80" if major != 8 else "sm_90"
    sig = FunctionSignature("vadd", vec("A", "B", "C"))
    plan = LaunchPlan((KernelLaunch("vadd", (1, 1, 1), (256, 1, 1), 0,
                                    (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))),))
    m = CUDAModule(SRC, [sig], {"vadd": plan}, arch=other)
    A = minitvm.nd.array(np.ones(16, "float32"), minitvm.cuda())
    with pytest.raises(DeviceError, match=f"compiled for {other}"):
        m(A, A, A)


def test_stream_and_cuda_graph_replay():
    """Launches inside ``with stream`` go to that stream; a captured graph replays them."""
    import minitvm
    from minitvm import nd, te
    n = 1000
    A = te.placeholder((n,), "float32", "A")
    B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=128)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    mod = minitvm.build(s, [A, B], "cuda")
    x = np.random.default_rng(1).standard_normal(n).astype("float32")
    a, b = nd.array(x, nd.cuda()), nd.array(np.full(n, np.nan, "float32"), nd.cuda())
    stream = cuda.Stream(0)
    with stream:
        mod(a, b)
    stream.synchronize()
    np.testing.assert_allclose(b.numpy(), x * 2 + 1, rtol=1e-6)

    def twice():
        mod(a, b)
        mod(b, a)

    twice()
    stream.synchronize()
    cuda.synchronize(0)
    graph = cuda.CUDAGraph(twice, stream)
    a.copyfrom(x)
    for _ in range(3):
        graph.replay()
    stream.synchronize()
    want = x.astype(np.float64)
    for _ in range(3):
        want = (want * 2 + 1) * 2 + 1
    np.testing.assert_allclose(a.numpy(), want, rtol=1e-5)
