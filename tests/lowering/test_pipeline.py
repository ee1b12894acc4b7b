"""The lowering pipeline: its pass lists per target, the CUDA result, and the IR dump."""
from __future__ import annotations

import pytest

import minitvm
from minitvm import te
from minitvm.errors import CodegenError
from minitvm.lowering.pipeline import device_passes, lower_device, pipeline, target_kind_arch
from minitvm.target import Target
from minitvm.tir.device import DeviceFunc
from minitvm.tir.stmt import PrimFunc

LOOP_PASSES = ["inject_double_buffer", "inject_pipeline", "lower_if_then_else", "simplify", "vectorize_loops",
               "inject_async_copy", "unroll_loops", "simplify", "hoist_invariant_terms"]
CUDA_PASSES = ["inject_virtual_thread", "split_host_device", "guard_threads", "insert_shared_sync",
               "plan_shared_memory"]


def _vadd(n=64, bind=True):
    a = te.placeholder((n,), name="A")
    b = te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    s = te.create_schedule(c.op)
    if bind:
        bx, tx = s[c].split(c.op.axis[0], factor=32)
        s[c].bind(bx, te.thread_axis("blockIdx.x"))
        s[c].bind(tx, te.thread_axis("threadIdx.x"))
    return s, [a, b, c]


def test_each_target_lists_its_passes_in_order():
    assert [name for name, _ in pipeline("llvm")] == LOOP_PASSES
    assert [name for name, _ in pipeline("cuda -arch=sm_90")] == LOOP_PASSES + CUDA_PASSES
    assert [name for name, _ in device_passes("cuda")] == CUDA_PASSES
    assert device_passes("llvm") == []


def test_targets_are_strings_or_target_objects():
    assert target_kind_arch("llvm") == ("llvm", None)
    assert target_kind_arch("cuda -arch=sm_90") == ("cuda", "sm_90")
    assert target_kind_arch(None) == ("llvm", None)
    assert target_kind_arch(Target("cuda -arch=sm_80")) == ("cuda", "sm_80")


def test_cuda_lowering_carries_the_split_kernels():
    s, args = _vadd()
    f = minitvm.lower(s, args, name="vadd", target=Target("cuda -arch=sm_80"))
    assert isinstance(f, DeviceFunc)
    (k,) = f.kernels
    assert k.name == "vadd_kernel0" and k.grid == (2, 1, 1) and k.block == (32, 1, 1)
    assert k.params == (0, 1, 2) and k.shared.dynamic_bytes == 0
    assert "kernel vadd_kernel0[grid = (2, 1, 1), block = (32, 1, 1)]" in str(f)
    assert isinstance(minitvm.lower(s, args, name="vadd"), PrimFunc)


def test_device_passes_split_lowered_primfuncs_and_keep_split_ones():
    s, args = _vadd()
    f = minitvm.lower(s, args)
    (d,) = lower_device([f], "cuda")
    assert isinstance(d, DeviceFunc) and lower_device(d, "cuda") == [d]
    assert lower_device([f], "llvm") == [f]


def test_unbound_code_is_an_error_of_the_cuda_pipeline():
    s, args = _vadd(bind=False)
    with pytest.raises(CodegenError, match="not bound to GPU threads"):
        minitvm.lower(s, args, target="cuda")


def test_dump_prints_the_ir_after_every_step(capsys):
    s, args = _vadd()
    minitvm.lower(s, args, target="cuda", dump=True)
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("// ---- after ")]
    assert headers == [f"// ---- after {name} ----" for name in ["schedule_ops", "flatten"] + LOOP_PASSES + CUDA_PASSES]
    assert "C[((blockIdx.x * 32) + threadIdx.x)] = " in out and "kernel main_kernel0" in out


def test_dump_is_asked_for_by_the_environment(capsys, monkeypatch):
    s, args = _vadd()
    monkeypatch.setenv("MINITVM_DUMP_IR", "1")
    minitvm.lower(s, args)
    assert "// ---- after unroll_loops ----" in capsys.readouterr().out
    monkeypatch.setenv("MINITVM_DUMP_IR", "0")
    minitvm.lower(s, args)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("MINITVM_DUMP_IR", "1")
    minitvm.lower(s, args, dump=False)
    assert capsys.readouterr().out == ""
