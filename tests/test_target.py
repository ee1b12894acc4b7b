"""minitvm.Target: parsing, the canonical string, features per architecture, limits, contexts."""
import pickle

import pytest

import minitvm
from minitvm.errors import BuildError
from minitvm.target import DeviceLimits, Target, cuda_limits


def test_exported_from_the_package():
    assert minitvm.Target is Target


@pytest.mark.parametrize("text, kind, arch", [
    ("cuda -arch=sm_90", "cuda", "sm_90"), ("cuda -arch=sm_80", "cuda", "sm_80"),
    ("cuda  -arch=80", "cuda", "sm_80"), ("cuda -arch=sm_90a", "cuda", "sm_90a")])
def test_cuda_parsing(text, kind, arch):
    t = Target(text)
    assert (t.kind, t.arch, t.limits.max_threads_per_block) == (kind, arch, 1024)


def test_cuda_without_arch_takes_the_present_gpu_or_sm90():
    from minitvm.runtime import cuda
    want = cuda.device_arch(0) if cuda.device_count() > 0 else "sm_90"
    assert Target("cuda").arch == want


def test_llvm_parsing():
    t = Target("llvm -mcpu=znver3 -mattr=-fma -opt-level=2")
    assert (t.kind, t.arch, t.mcpu, t.mattr, t.opt_level, t.limits) == ("llvm", None, "znver3", "-fma", 2, None)
    host = Target("llvm")
    assert (host.mcpu, host.opt_level) == ("", 3)


@pytest.mark.parametrize("text", ["cuda", "cuda -arch=sm_75", "llvm", "llvm -mcpu=znver3",
                                  "llvm -mcpu=icelake-server -mattr=+avx2 -opt-level=1"])
def test_canonical_string_round_trip(text):
    t = Target(text)
    assert Target(str(t)) == t
    assert hash(Target(str(t))) == hash(t)
    assert pickle.loads(pickle.dumps(t)) == t
    assert Target(t) is t


def test_parsed_once_and_immutable():
    assert Target("cuda -arch=sm_80") is Target("cuda   -arch=sm_80")
    with pytest.raises(AttributeError, match="immutable"):
        Target("llvm").kind = "cuda"
    assert Target("cuda -arch=sm_80") != Target("cuda -arch=sm_90")
    assert len({Target("cuda -arch=sm_80"), Target("cuda -arch=80")}) == 1


@pytest.mark.parametrize("arch, have, lack", [
    ("sm_61", {"dp4a"}, {"ldmatrix", "mma_s8", "cp_async"}),
    ("sm_75", {"dp4a", "ldmatrix", "mma_s8", "mma_s8_m8n8k16"}, {"cp_async", "mma_s8_m16n8k32"}),
    ("sm_80", {"dp4a", "ldmatrix", "mma_s8", "mma_s8_m8n8k16", "mma_s8_m16n8k32", "cp_async"}, set()),
    ("sm_90", {"dp4a", "ldmatrix", "mma_s8", "mma_s8_m16n8k32", "cp_async"}, set()),
])
def test_cuda_features_per_arch(arch, have, lack):
    features = Target(f"cuda -arch={arch}").features
    assert have <= features and not (lack & features)


@pytest.mark.parametrize("mcpu, have, lack", [
    ("znver3", {"avx2", "fma"}, {"avx512f", "avx512vnni", "avxvnni"}),
    ("icelake-server", {"avx2", "fma", "avx512f", "avx512vnni"}, {"avxvnni"}),
    ("alderlake", {"avx2", "fma", "avxvnni"}, {"avx512f", "avx512vnni"}),
    ("x86-64", set(), {"avx2", "fma", "avx512f"}),
])
def test_llvm_features_of_a_named_cpu(mcpu, have, lack):
    features = Target(f"llvm -mcpu={mcpu}").features
    assert have <= features and not (lack & features)
    assert "fma" not in Target(f"llvm -mcpu={mcpu} -mattr=-fma").features


def test_llvm_features_of_the_host():
    import llvmlite.binding as llvm
    host = llvm.get_host_cpu_features()
    features = Target("llvm").features
    for name in ("avx2", "avx512f", "fma"):
        assert (name in features) == bool(host.get(name, False))


def test_limits():
    limits = Target("cuda -arch=sm_90").limits
    assert isinstance(limits, DeviceLimits)
    assert limits.max_block_dims == (1024, 1024, 64)
    assert limits.max_grid_dims == (2**31 - 1, 65535, 65535)
    assert limits.max_static_shared_bytes == 48 * 1024
    assert (limits.max_registers_per_thread, limits.warp_size) == (255, 32)
    assert limits.max_shared_bytes_per_block == 232448
    assert Target("cuda -arch=sm_86").limits.max_shared_bytes_per_block == 101376
    assert Target("cuda -arch=sm_75").limits.max_shared_bytes_per_block is None
    assert cuda_limits("sm_80") == Target("cuda -arch=sm_80").limits


def test_context_manager_nesting():
    assert Target.current() is None
    cuda, cpu = Target("cuda -arch=sm_80"), Target("llvm")
    with cuda:
        assert Target.current() is cuda
        with cpu as inner:
            assert inner is cpu and Target.current() is cpu
        assert Target.current() is cuda
    assert Target.current() is None


@pytest.mark.parametrize("text, culprit", [
    ("opencl", "unknown kind 'opencl'"), ("", "unknown kind ''"), ("llvmx", "unknown kind 'llvmx'"),
    ("cuda -mcpu=znver3", "bad option '-mcpu=znver3'"), ("llvm -frobnicate=1", "bad option '-frobnicate=1'"),
    ("llvm -opt-level=5", "-opt-level=5"), ("cuda -arch=smx", "unknown CUDA architecture 'smx'"),
    ("llvm -mcpu=not-a-cpu", "not-a-cpu"), ("cuda -arch", "bad option '-arch'"),
])
def test_bad_strings_name_the_part_and_what_is_accepted(text, culprit):
    with pytest.raises(BuildError) as info:
        Target(text)
    msg = str(info.value)
    assert culprit in msg and repr(text) in msg
    if "opt-level" not in text and "not-a-cpu" not in text:
        assert "accepted: 'cuda', 'cuda -arch=sm_XY'" in msg


def test_not_a_string():
    with pytest.raises(BuildError, match="expected a str or a Target"):
        Target(90)


def test_build_accepts_a_target():
    from minitvm import te
    a = te.placeholder((4,), name="A")
    b = te.compute((4,), lambda i: a[i] + 1.0, name="B")
    mod = minitvm.build(te.create_schedule(b.op), [a, b], target=Target("llvm"))
    assert mod is not None


def test_build_defaults_to_the_current_target():
    from minitvm import te
    a = te.placeholder((4,), name="A")
    b = te.compute((4,), lambda i: a[i] + 1.0, name="B")
    with pytest.raises(BuildError, match="bad option"):
        Target("llvm -mcpu")
    with Target("cuda -arch=sm_90"):
        with pytest.raises(Exception, match="GPU threads"):  # a CUDA build of an unbound loop
            minitvm.build(te.create_schedule(b.op), [a, b])
