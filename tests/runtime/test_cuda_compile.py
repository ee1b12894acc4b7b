"""CUDA runtime tests that need no GPU: NVRTC compilation, the cubin cache, errors, module building."""
import os
import stat
import pickle

import numpy as np
import pytest

pytest.importorskip("cuda.bindings")

from minitvm.errors import BuildError, DeviceError  # noqa: E402
from minitvm.runtime import cuda  # noqa: E402
from minitvm.runtime.cuda import compile as cuda_compile, device as cuda_device  # noqa: E402
from minitvm.runtime.cuda import (CUDAModule, DimArg, DimOp, DimVar, KernelLaunch, LaunchPlan, ParamArg,  # noqa: E402
                                  WorkspaceArg)
from minitvm.runtime.module import FunctionSignature, ParamSpec  # noqa: E402

DP4A_SRC = r"""
extern "C" __global__ void dot_dp4a(const int* __restrict__ a, const int* __restrict__ b,
                                    int* __restrict__ c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = __dp4a(a[i], b[i], c[i]);
}
"""

CHAR4_SRC = r"""
extern "C" __global__ void sum_char4(const char4* __restrict__ a, int* __restrict__ out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    char4 v = a[i];
    out[i] = (int)v.x + (int)v.y + (int)v.z + (int)v.w;
  }
}
"""

DYN_SHARED_SRC = r"""
extern "C" __global__ void reverse_block(const float* __restrict__ a, float* __restrict__ out, int n) {
  extern __shared__ float tile[];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  tile[threadIdx.x] = i < n ? a[i] : 0.0f;
  __syncthreads();
  int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - threadIdx.x);
  if (j < n) out[j] = tile[threadIdx.x];
}
"""

VADD_SRC = r"""
extern "C" __global__ void vadd(const float* __restrict__ a, const float* __restrict__ b,
                                float* __restrict__ c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
"""

BAD_SRC = """extern "C" __global__ void broken(float* a, int n) {
  int i = threadIdx.x;
  float x = a[i];
  a[i] = x + undefined_thing;
  a[0] = 1.0f;
}
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty cubin cache (disk and memory) for one test."""
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(tmp_path))
    cuda.clear_memory_cache()
    yield tmp_path / "cubin"
    cuda.clear_memory_cache()


@pytest.fixture
def no_driver(monkeypatch):
    """Make the driver look absent, as on a machine with no NVIDIA driver."""

    class Missing:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RuntimeError('"cuda" is an NVIDIA driver library and can only be found via system search')
            return fail

    monkeypatch.setattr(cuda_device, "_drv", Missing())
    monkeypatch.setattr(cuda_device, "_devices", cuda_device._DeviceState())


def _vadd_module(**kw):
    sig = FunctionSignature("vadd", (ParamSpec("A", ("n",), "float32"), ParamSpec("B", ("n",), "float32"),
                                     ParamSpec("C", ("n",), "float32")))
    plan = LaunchPlan((KernelLaunch("vadd", ((DimVar("n") + 255) // 256, 1, 1), (256, 1, 1), 0,
                                    (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))),))
    return CUDAModule(VADD_SRC, [sig], {"vadd": plan}, **kw)


# ------------------------------------------------------------------------------- compilation

@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("src,kernel", [(DP4A_SRC, b"dot_dp4a"), (CHAR4_SRC, b"sum_char4"),
                                        (DYN_SHARED_SRC, b"reverse_block")])
def test_compile_to_cubin(cache_dir, arch, src, kernel):
    cubin = cuda.compile_cuda(src, arch)
    assert cubin.startswith(b"\x7fELF")
    assert kernel in cubin


def test_cubins_differ_per_arch(cache_dir):
    assert cuda.compile_cuda(VADD_SRC, "sm_80") != cuda.compile_cuda(VADD_SRC, "sm_90")


def test_ptx_shows_int8_instructions():
    ptx = cuda.compile_ptx(DP4A_SRC, "sm_80")
    assert ".target sm_80" in ptx and "dp4a.s32.s32" in ptx
    ptx = cuda.compile_ptx(CHAR4_SRC, "sm_90")
    assert "ld.global.nc.v4" in ptx


def test_arch_spellings(cache_dir):
    assert cuda.compile_cuda(VADD_SRC, "sm_90") == cuda.compile_cuda(VADD_SRC, 90)
    assert cuda.compile_cuda(VADD_SRC, "sm_90a").startswith(b"\x7fELF")


def test_old_arch_rejected_clearly():
    with pytest.raises(BuildError, match="sm_75"):
        cuda.compile_cuda(VADD_SRC, "sm_70")


def test_bad_arch_name():
    with pytest.raises(BuildError, match="unknown CUDA architecture"):
        cuda.compile_cuda(VADD_SRC, "volta")


# ------------------------------------------------------------------------------- cache

def test_cache_hit_skips_nvrtc(cache_dir):
    before = cuda.compile_stats()
    first = cuda.compile_cuda(VADD_SRC, "sm_90")
    mid = cuda.compile_stats()
    assert mid["nvrtc_compiles"] == before["nvrtc_compiles"] + 1
    again = cuda.compile_cuda(VADD_SRC, "sm_90")
    after = cuda.compile_stats()
    assert again == first
    assert after["nvrtc_compiles"] == mid["nvrtc_compiles"]
    assert after["memory_hits"] == mid["memory_hits"] + 1
    # the disk cache serves a fresh process (simulated by dropping the in-memory cache)
    cuda.clear_memory_cache()
    from_disk = cuda.compile_cuda(VADD_SRC, "sm_90")
    final = cuda.compile_stats()
    assert from_disk == first
    assert final["nvrtc_compiles"] == mid["nvrtc_compiles"]
    assert final["disk_hits"] == after["disk_hits"] + 1
    files = os.listdir(cache_dir)
    assert len(files) == 1 and files[0].endswith(".cubin")  # no stray temporary files


def test_cache_key_covers_options_and_arch(cache_dir):
    n0 = cuda.compile_stats()["nvrtc_compiles"]
    cuda.compile_cuda(VADD_SRC, "sm_90")
    cuda.compile_cuda(VADD_SRC, "sm_80")
    cuda.compile_cuda(VADD_SRC, "sm_90", options=("-lineinfo",))
    cuda.compile_cuda(VADD_SRC + "\n// changed\n", "sm_90")
    assert cuda.compile_stats()["nvrtc_compiles"] == n0 + 4
    assert len(os.listdir(cache_dir)) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "empty"])
def test_corrupt_cache_entry_ignored(cache_dir, damage):
    good = cuda.compile_cuda(DP4A_SRC, "sm_90")
    (entry,) = list(cache_dir.iterdir())
    data = entry.read_bytes()
    if damage == "garbage":
        entry.write_bytes(b"not a cubin at all")
    elif damage == "truncated":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        entry.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    else:
        entry.write_bytes(b"")
    cuda.clear_memory_cache()
    n0 = cuda.compile_stats()["nvrtc_compiles"]
    again = cuda.compile_cuda(DP4A_SRC, "sm_90")
    assert cuda.compile_stats()["nvrtc_compiles"] == n0 + 1
    assert again.startswith(b"\x7fELF") and again == good
    # the entry was rewritten and is good again
    cuda.clear_memory_cache()
    assert cuda.compile_cuda(DP4A_SRC, "sm_90") == good
    assert cuda.compile_stats()["nvrtc_compiles"] == n0 + 1


def test_an_entry_copied_from_another_kernel_is_not_served(cache_dir):
    vadd = cuda.compile_cuda(VADD_SRC, "sm_90")
    dp4a = cuda.compile_cuda(DP4A_SRC, "sm_90")
    entries = {p.read_bytes(): p for p in cache_dir.iterdir()}
    (vadd_entry,) = [p for data, p in entries.items() if data.endswith(vadd)]
    (dp4a_entry,) = [p for data, p in entries.items() if data.endswith(dp4a)]
    vadd_entry.write_bytes(dp4a_entry.read_bytes())     # a whole, checksummed entry, for other source
    cuda.clear_memory_cache()
    n0 = cuda.compile_stats()["nvrtc_compiles"]
    assert cuda.compile_cuda(VADD_SRC, "sm_90") == vadd
    assert cuda.compile_stats()["nvrtc_compiles"] == n0 + 1


def test_unwritable_cache_dir_still_compiles(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(blocker))  # cubin/ cannot be created under a file
    cuda.clear_memory_cache()
    with pytest.warns(UserWarning, match="not using the cache directory"):
        assert cuda.compile_cuda(VADD_SRC, "sm_90").startswith(b"\x7fELF")
    cuda.clear_memory_cache()


def test_a_cache_directory_others_may_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "cubin").mkdir(parents=True)
    (shared / "cubin").chmod(0o777)
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(shared))
    cuda.clear_memory_cache()
    with pytest.warns(UserWarning, match="others may write to it"):
        assert cuda.compile_cuda(VADD_SRC, "sm_90").startswith(b"\x7fELF")
    assert list((shared / "cubin").iterdir()) == []
    monkeypatch.setenv("MINITVM_CACHE_TRUST", "1")
    cuda.clear_memory_cache()
    cuda.compile_cuda(VADD_SRC, "sm_90")
    assert len(list((shared / "cubin").iterdir())) == 1
    cuda.clear_memory_cache()


def test_a_new_cache_directory_is_private(cache_dir):
    cuda.compile_cuda(VADD_SRC, "sm_90")
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("MINITVM_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert str(cuda.cache_dir()).endswith(os.path.join(".cache", "minitvm", "cubin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cuda.cache_dir() == tmp_path / "minitvm" / "cubin"


# ------------------------------------------------------------------------------- compile errors

def test_compile_error_shows_log_and_source(cache_dir):
    with pytest.raises(BuildError) as info:
        cuda.compile_cuda(BAD_SRC, "sm_90")
    msg = str(info.value)
    assert 'identifier "undefined_thing" is undefined' in msg       # NVRTC's log
    assert "kernel.cu(4): error" in msg
    assert ">> 4 |   a[i] = x + undefined_thing;" in msg           # the offending line, marked
    assert "   1 | extern" in msg and "   7 |" not in msg          # +-3 lines of context
    assert info.value.log and "undefined_thing" in info.value.log
    assert info.value.source == BAD_SRC
    assert not cache_dir.exists() or not list(cache_dir.iterdir())  # failures are not cached


def test_module_build_reports_compile_errors():
    sig = FunctionSignature("broken", (ParamSpec("A", ("n",), "float32"),))
    plan = LaunchPlan((KernelLaunch("broken", (1, 1, 1), (32, 1, 1), 0, (ParamArg(0), DimArg("n"))),))
    with pytest.raises(BuildError, match="undefined_thing"):
        CUDAModule(BAD_SRC, [sig], {"broken": plan})


# ------------------------------------------------------------------------------- devices

def test_device_count_never_raises():
    n = cuda.device_count()
    assert isinstance(n, int) and n >= 0
    assert cuda.has_gpu() == (n > 0)
    if n == 0:
        assert cuda.unavailable_reason()
        with pytest.raises(DeviceError, match="no CUDA device"):
            cuda.require_device(0)


def test_missing_driver_library_is_caught(no_driver):
    assert cuda.device_count() == 0
    assert not cuda.has_gpu()
    assert "could not be loaded" in cuda.unavailable_reason()
    with pytest.raises(DeviceError, match="no CUDA device: the CUDA driver library could not be loaded"):
        cuda.require_device(0)
    with pytest.raises(DeviceError, match="no CUDA device"):
        cuda.synchronize()
    with pytest.raises(DeviceError, match="no CUDA device"):
        cuda.DeviceBuffer(16)


def test_nd_device_exist_without_driver(no_driver):
    import minitvm
    assert minitvm.cpu().exist
    assert not minitvm.cuda().exist


# ------------------------------------------------------------------------------- modules without a GPU

def test_module_builds_without_gpu(no_driver, cache_dir):
    mod = _vadd_module()
    assert mod.cubin.startswith(b"\x7fELF") and b"vadd" in mod.cubin
    assert mod.arch == "sm_90"
    assert "__global__ void vadd" in mod.get_source()
    assert "ld.global" in mod.get_source("ptx")
    a = np.ones(8, "float32")
    with pytest.raises(DeviceError, match="no CUDA device"):
        mod(a, a, a)
    with pytest.raises(DeviceError, match="no CUDA device"):
        mod["vadd"](a, a, a)


def test_module_arch_and_debug_options(cache_dir):
    mod = _vadd_module(arch="sm_80", debug=True)
    assert mod.arch == "sm_80" and mod.debug and mod.cubin.startswith(b"\x7fELF")
    assert mod.cubin != _vadd_module(arch="sm_80", debug=False).cubin  # -lineinfo in debug


def test_debug_from_environment(monkeypatch, cache_dir):
    monkeypatch.setenv("MINITVM_CUDA_DEBUG", "1")
    assert _vadd_module().debug
    monkeypatch.setenv("MINITVM_CUDA_DEBUG", "0")
    assert not _vadd_module().debug


def test_module_pickles(cache_dir):
    mod = _vadd_module()
    again = pickle.loads(pickle.dumps(mod))
    assert again.cubin == mod.cubin and again.arch == mod.arch and list(again.signatures) == ["vadd"]
    assert again.plans == mod.plans


SIG_N = FunctionSignature("f", (ParamSpec("A", ("n",), "float32"), ParamSpec("B", ("n",), "float32")))


@pytest.mark.parametrize("launch,workspaces,match", [
    (KernelLaunch("vadd", ((DimVar("m") + 1) // 2, 1, 1), (64, 1, 1), 0, (ParamArg(0),)), (),
     "uses m, which is not a symbolic dimension"),
    (KernelLaunch("vadd", (DimOp("**", (DimVar("n"), 2)), 1, 1), (64, 1, 1), 0, (ParamArg(0),)), (),
     "unknown operator"),
    (KernelLaunch("vadd", (1, 1, 1), (64, 1, 1), 0, (ParamArg(2),)), (), "out of range"),
    (KernelLaunch("vadd", (1, 1, 1), (64, 1, 1), 0, (WorkspaceArg(0),)), (), "out of range"),
    (KernelLaunch("vadd", (1, 1, 1), (64, 1, 1), 0, (DimArg("k"),)), (), "names no symbolic dimension"),
    (KernelLaunch("vadd", (1, 1, 1), (64, 1, 1), 0, ("tensor:0",)), (), "bad argument"),
    (KernelLaunch("vadd", (1, 1), (64, 1, 1), 0, ()), (), "3 entries"),
    (KernelLaunch("vadd", (1, 1, 1), (64, 32, 1), 0, ()), (), "at most 1024 threads"),
    (KernelLaunch("nope", (1, 1, 1), (64, 1, 1), 0, ()), (), "no kernel named 'nope'"),
    (KernelLaunch("vadd", (1, 1, 1), (64, 1, 1), 0, ()), (4 * DimVar("q"),), "workspace 0 of f"),
])
def test_bad_plans_rejected_at_build(launch, workspaces, match):
    with pytest.raises(BuildError, match=match):
        CUDAModule(VADD_SRC, [SIG_N], {"f": LaunchPlan((launch,), workspaces)})


def test_plan_names_must_match_signatures():
    plan = LaunchPlan((KernelLaunch("vadd", (1, 1, 1), (64, 1, 1), 0, ()),))
    with pytest.raises(BuildError, match="has no launch plan"):
        CUDAModule(VADD_SRC, [SIG_N], {})
    with pytest.raises(BuildError, match="no function of that name"):
        CUDAModule(VADD_SRC, [SIG_N], {"f": plan, "g": plan})


# ------------------------------------------------------------------------------- split compilation

def test_sources_of_several_kernels_compile_in_parallel(cache_dir, monkeypatch):
    seen = []
    real = cuda_compile._nvrtc_compile
    monkeypatch.setattr(cuda_compile, "_nvrtc_compile", lambda src, opts, *a: seen.append(opts) or real(src, opts, *a))
    cuda.compile_cuda(VADD_SRC, "sm_90", cache=False)
    cubin = cuda.compile_cuda(VADD_SRC + DP4A_SRC, "sm_90", cache=False)
    assert "--split-compile=0" not in seen[0] and "--split-compile=0" in seen[1]
    assert b"vadd" in cubin and b"dot_dp4a" in cubin


def test_nvrtc_without_split_compilation_still_compiles(cache_dir, monkeypatch):
    real = cuda_compile._nvrtc_compile

    def old_nvrtc(src, opts, *a):
        if "--split-compile=0" in opts:
            raise BuildError("NVRTC 12.0 failed to compile (NVRTC_ERROR_INVALID_OPTION)")
        return real(src, opts, *a)

    monkeypatch.setattr(cuda_compile, "_nvrtc_compile", old_nvrtc)
    monkeypatch.setitem(cuda_compile._split_compile, "supported", None)
    assert b"dot_dp4a" in cuda.compile_cuda(VADD_SRC + DP4A_SRC, "sm_90", cache=False)
    assert cuda_compile._split_compile["supported"] is False       # not tried again in this process
    assert cuda_compile._split_compile_options(VADD_SRC + DP4A_SRC) == ()
