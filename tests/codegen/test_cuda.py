"""CUDA C code generation (CPU only): generated text, launch plans, NVRTC compilation, passes.

Kernels are built by hand as lowered PrimFuncs (see ``cuda_kernels.py``); the GPU runs of the
same kernels are in ``tests/gpu/test_cuda_codegen.py``.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from minitvm.codegen.cuda import build_cuda, codegen_cuda
from minitvm.errors import CodegenError
from minitvm.lowering.pipeline import lower_device
from minitvm.runtime.cuda import DimArg, DimExpr, ParamArg, WorkspaceArg
from minitvm.tir import expr as E
from minitvm.tir.functor import Visitor
from minitvm.tir.stmt import (Allocate, AttrStmt, Buffer, Evaluate, For, IfThenElse, PrimFunc,
                              SeqStmt, seq)
from minitvm.tir.transform.thread_sync import insert_shared_sync, is_sync
from minitvm.tir.transform.virtual_thread import inject_virtual_thread

import cuda_kernels as K
import kernel_interp
from cuda_kernels import bind, call, ld, ramp, st, thread

ARCHS = ("sm_80", "sm_90")


def _nvrtc_available() -> bool:
    try:
        from minitvm.runtime.cuda import nvrtc_version
        nvrtc_version()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_nvrtc = pytest.mark.skipif(not _nvrtc_available(), reason="NVRTC is not available")


def gen(*funcs, arch="sm_90"):
    return codegen_cuda(lower_device(list(funcs), f"cuda -arch={arch}"), arch)


def compile_both(source):
    from minitvm.runtime.cuda import compile_cuda
    for arch in ARCHS:
        cubin = compile_cuda(source, arch)
        assert cubin[:4] == b"\x7fELF"


def kernel_text(source, name):
    """The text of kernel ``name`` (from its header to the closing brace at column 0)."""
    start = source.index(f" {name}(")
    start = source.rindex("\n", 0, start) + 1
    end = source.index("\n}", start)
    return source[start:end + 2]


def count_syncs(stmt) -> int:
    n = [0]

    class _V(Visitor):
        def visit_Evaluate(self, s):
            if is_sync(s):
                n[0] += 1

    _V().visit(stmt)
    return n[0]


# ------------------------------------------------------------------------------------------
# whole kernels
# ------------------------------------------------------------------------------------------
@needs_nvrtc
@pytest.mark.parametrize("name", sorted(K.ALL_CASES))
def test_every_gpu_test_kernel_compiles(name):
    """The kernels tests/gpu/test_cuda_codegen.py runs all compile for sm_80 and sm_90."""
    src, plans, sigs = gen(K.ALL_CASES[name]().func)
    assert sigs[0].name in plans
    compile_both(src)


@needs_nvrtc
def test_vadd_guard_symbolic_grid_and_signature():
    case = K.case_vadd()
    src, plans, sigs = gen(case.func)
    text = kernel_text(src, "vadd_kernel0")
    assert "extern \"C\" __global__ void __launch_bounds__(128) vadd_kernel0(" in text
    assert "const float* __restrict__ A" in text and "const float* __restrict__ B" in text
    assert "float* __restrict__ C" in text and "const float* __restrict__ C" not in text
    assert "int n)" in text
    assert re.search(r"if \(.*< n\) \{", text)
    (launch,) = plans["vadd"].launches
    assert launch.kernel == "vadd_kernel0"
    assert launch.block == (128, 1, 1)
    assert isinstance(launch.grid[0], DimExpr) and launch.grid[0].evaluate({"n": 1000}) == 8
    assert launch.grid[1:] == (1, 1)
    assert launch.args == (ParamArg(0), ParamArg(1), ParamArg(2), DimArg("n"))
    assert launch.dynamic_shared_bytes == 0
    (sig,) = sigs
    assert sig.name == "vadd" and sig.shape_vars == ("n",)
    assert [(p.name, p.shape, p.dtype) for p in sig.params] == [("A", ("n",), "float32"),
                                                                ("B", ("n",), "float32"),
                                                                ("C", ("n",), "float32")]
    compile_both(src)


@needs_nvrtc
def test_shared_tile_loop_sync_placement():
    src, plans, _ = gen(K.case_matmul_shared().func)
    lines = [ln.strip() for ln in kernel_text(src, "matmul_shared_kernel0").splitlines()]
    assert sum(ln == "__syncthreads();" for ln in lines) == 2
    loop = next(i for i, ln in enumerate(lines) if ln.startswith("for (int k_outer"))
    store_b = next(i for i, ln in enumerate(lines) if ln.startswith("B_shared["))
    inner = next(i for i, ln in enumerate(lines) if ln.startswith("for (int k_inner"))
    syncs = [i for i, ln in enumerate(lines) if ln == "__syncthreads();"]
    # one barrier between the cooperative load and the compute loop ...
    assert store_b < syncs[0] < inner
    assert lines[inner - 1] == "#pragma unroll" and syncs[0] == inner - 2
    # ... and one at the end of the k_outer body, before the next iteration overwrites the tiles
    close_inner = next(i for i in range(inner + 1, len(lines)) if lines[i] == "}")
    assert syncs[1] == close_inner + 1 and lines[syncs[1] + 1] == "}"
    assert loop < store_b
    assert "__shared__ __align__(16) float A_shared[256];" in lines
    assert plans["matmul_shared"].launches[0].block == (16, 16, 1)
    assert plans["matmul_shared"].launches[0].grid == (4, 4, 1)
    compile_both(src)


@needs_nvrtc
def test_vthread_register_tiling_expands_local_array():
    src, _, _ = gen(K.case_matmul_vthread().func)
    text = kernel_text(src, "matmul_vthread_kernel0")
    assert "float C_local[2];" in text
    body = text[text.index("{"):]
    assert "vthread" not in body and "vx" not in body
    inner = text[text.index("for (int k_inner"):]
    inner = inner[:inner.index("}")]
    assert "C_local[0] = C_local[0] +" in inner and "C_local[1] = C_local[1] +" in inner
    # the A tile does not depend on the vthread: loaded once; the B tile: one store per vthread
    assert text.count("A_shared[(((int)threadIdx.y) * 16) + ((int)threadIdx.x)] =") == 1
    assert text.count("B_shared[(((int)threadIdx.y) * 32)") == 2
    assert text.count("__syncthreads();") == 2
    compile_both(src)


@needs_nvrtc
def test_float4_vector_loads_and_stores():
    src, _, _ = gen(K.case_vector_float4().func)
    assert "float4 v = *(float4*)(A + " in src
    assert "*(float4*)(B + " in src and "r.w = " in src
    compile_both(src)


@needs_nvrtc
def test_char4_vector_add_wraps_and_int4_copy():
    src, _, _ = gen(K.case_vector_char4().func)
    assert "char4 v = *(char4*)(A + " in src and "char4 v_1 = *(char4*)(B + " in src
    assert "r.x = (signed char)(v.x + v_1.x);" in src
    assert re.search(r"\*\(int4\*\)\(D \+ .*\) = \*\(int4\*\)\(A \+ .*\);", src)
    compile_both(src)


@needs_nvrtc
def test_select_between_vector_load_and_zero_is_one_guarded_word_access():
    # as a 32-bit word: a char4 ?: compiles lane by lane into byte permutes
    src, _, _ = gen(K.case_pad_select().func)
    assert re.search(r"\*\(int\*\)\(B \+ .*\) = .* >= 1\) \? \*\(int\*\)\(A \+ .*\) : 0;", src)
    assert "char4" not in src
    compile_both(src)


@needs_nvrtc
def test_unaligned_vector_sizes_fall_back_to_lanes():
    A, B = Buffer("A", (96,), "float32"), Buffer("B", (96,), "float32")
    tx = thread("threadIdx.x")
    body = seq(
        st(B, ramp(tx.var * 3, 3), ld(A, ramp(tx.var * 3, 3))),            # 12 bytes: no float3 access
        st(B, ramp(tx.var, 2, stride=32), ld(A, ramp(tx.var, 2, stride=32))),  # strided: gather/scatter
    )
    f = PrimFunc("lanes", (A, B), bind(tx, 32, body), {})
    src, _, _ = gen(f)
    assert "float3" not in src and "float4" not in src and "float2" not in src
    assert "float r[3];" in src and "A[(((int)threadIdx.x) * 3) + 2]" in src
    assert "B[((int)threadIdx.x) + 32] = r_1[1];" in src
    compile_both(src)


@needs_nvrtc
def test_dp4a_reads_words():
    src, _, _ = gen(K.case_dense_dp4a().func)
    assert re.search(r"__dp4a\(\*\(int\*\)\(A \+ .*\), \*\(int\*\)\(B \+ .*\), C_local\[0\]\)", src)
    compile_both(src)


@needs_nvrtc
def test_dp4a_mixed_signedness_and_packed_operands():
    A = Buffer("A", (64,), "uint8")
    B = Buffer("B", (64,), "int8")
    C = Buffer("C", (16,), "int32")
    tx = thread("threadIdx.x")
    packed = E.Broadcast(E.const(1, "int8"), 4)
    body = seq(st(C, tx.var, call("int32", "dp4a", ld(A, ramp(tx.var * 4, 4)), ld(B, ramp(tx.var * 4, 4)), 0)),
               st(C, tx.var, call("int32", "dp4a", ld(B, ramp(tx.var * 4, 4)), packed, ld(C, tx.var))))
    f = PrimFunc("dp4a_mixed", (A, B, C), bind(tx, 16, body), {})
    src, _, _ = gen(f)
    assert "mt_dp4a_us(*(unsigned int*)(A + " in src
    assert "__dp4a(*(int*)(B + " in src
    compile_both(src)


@needs_nvrtc
def test_int8_arithmetic_is_cast_back_and_round_is_rint():
    src, _, _ = gen(K.case_int8_wrap().func)
    text = kernel_text(src, "int8_wrap_kernel0")
    c_line = next(ln for ln in text.splitlines() if ln.strip().startswith("C["))
    assert c_line.count("(signed char)(") == 3   # *, +, - each wrap to int8
    assert "rintf(" in text and "(signed char)(int)(rintf(" in text
    compile_both(src)


@needs_nvrtc
def test_floor_division_and_modulo():
    src, _, _ = gen(K.case_floordiv().func)
    assert "__device__ __forceinline__ int floordiv_i32(int a, int b)" in src
    assert "floormod_i32(" in src
    text = kernel_text(src, "floordiv_kernel0")
    assert re.search(r"Q8\[.*\] = A\[.*\] >> 3;", text)
    assert re.search(r"R8\[.*\] = A\[.*\] & 7;", text)
    assert "Q3[" in text and "floordiv_i32(A[" in text
    assert "(signed char)floordiv_i32(A8[" in text
    # numpy's answers where C has none: x // 0 == 0, INT_MIN // -1 wraps
    assert "if (b == 0) return 0;\n  if (b == -1) return (int)(0u - (unsigned int)a);" in src
    compile_both(src)


def test_floor_division_of_nonnegative_index_uses_plain_c_operators():
    A, B = Buffer("A", (64,), "float32"), Buffer("B", (64,), "float32")
    tx = thread("threadIdx.x")
    f = PrimFunc("idx", (A, B), bind(tx, 64, st(B, tx.var, ld(A, (tx.var // 3) * 3 + tx.var % 3))), {})
    src, _, _ = gen(f)
    assert "((int)threadIdx.x) / 3" in src and "((int)threadIdx.x) % 3" in src
    assert "floordiv_i32" not in src


@needs_nvrtc
def test_dynamic_shared_memory_above_48kb():
    case = K.case_dynamic_shared()
    src, plans, _ = gen(case.func)
    (launch,) = plans["reverse_blocks"].launches
    assert launch.dynamic_shared_bytes == 65536
    assert "extern __shared__ __align__(16) unsigned char __dyn_shmem[];" in src
    assert "float* S = (float*)(__dyn_shmem + 0);" in src
    assert "__shared__ __align__(16) float S[" not in src
    assert src.count("__syncthreads();") == 1
    assert launch.grid[0].evaluate({"n": 65536}) == 4
    assert launch.args == (ParamArg(0), ParamArg(1))   # n is only used by the grid
    compile_both(src)


def test_shared_memory_over_the_architecture_limit_is_an_error():
    A = Buffer("A", (70000,), "float32")
    S = Buffer("S_big", (70000,), "float32", "shared")
    tx = thread("threadIdx.x")
    f = PrimFunc("big", (A,), Allocate(S, bind(tx, 32, seq(st(S, tx.var, ld(A, tx.var)),
                                                           st(A, tx.var, ld(S, 31 - tx.var))))), {})
    with pytest.raises(CodegenError, match="S_big"):
        gen(f, arch="sm_80")


@needs_nvrtc
def test_half_precision_is_self_contained():
    src, _, _ = gen(K.case_half().func)
    assert "struct __align__(2) mt_half" in src and "#include" not in src
    assert "mt_half{0x3c00}" in src
    compile_both(src)


@needs_nvrtc
def test_half_copy_declares_the_half_type():
    A, B = Buffer("A", (64,), "float16"), Buffer("B", (64,), "float16")
    tx = thread("threadIdx.x")
    src, _, _ = gen(PrimFunc("hcopy", (A, B), bind(tx, 32, st(B, ramp(tx.var * 2, 2), ld(A, ramp(tx.var * 2, 2)))), {}))
    assert "struct __align__(2) mt_half" in src and "*(int*)(B + " in src
    compile_both(src)


@needs_nvrtc
def test_double_buffered_shared_indices_compile():
    n = 1024
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (64,), "float32")
    S = Buffer("S", (2, 64), "float32", "shared")
    tx = thread("threadIdx.x")
    k = E.Var("k")
    acc = Buffer("acc", (1,), "float32", "local")
    nxt = ((k + 1) % 2) * 64 + tx.var
    cur = (k % 2) * 64
    body = seq(
        st(acc, 0, E.const(0.0)),
        st(S, tx.var, ld(A, tx.var)),
        For(k, E.const(0), E.const(n // 64 - 1), "serial", seq(
            AttrStmt(S.data, "double_buffer_write", E.const(1), st(S, nxt, ld(A, (k + 1) * 64 + tx.var))),
            st(acc, 0, ld(acc, 0) + ld(S, cur + (63 - tx.var))),
        )),
        st(B, tx.var, ld(acc, 0)),
    )
    f = PrimFunc("dbuf", (A, B), Allocate(S, bind(tx, 64, Allocate(acc, body))), {})
    src, _, _ = gen(f)
    text = kernel_text(src, "dbuf_kernel0")
    assert "& 1" in text                     # (k + 1) % 2 on a non-negative loop variable
    lines = [ln.strip() for ln in text.splitlines()]
    loop = next(i for i, ln in enumerate(lines) if ln.startswith("for (int k"))
    # a barrier before the loop (prologue load -> first read) and one at the end of each iteration,
    # none between the prefetch store and the read of the other half
    assert lines[loop - 1] == "__syncthreads();"
    assert lines[loop + 1].startswith("S[") and lines[loop + 2].startswith("acc[0] =")
    assert lines[loop + 3] == "__syncthreads();"
    assert text.count("__syncthreads();") == 2
    compile_both(src)


@needs_nvrtc
def test_workspace_and_two_kernels():
    n = E.SizeVar("n")
    A, B = Buffer("A", (n,), "float32"), Buffer("B", (n,), "float32")
    W = Buffer("T_ws", (n,), "float32", "global")
    bx, tx = thread("blockIdx.x"), thread("threadIdx.x")
    bx2, tx2 = thread("blockIdx.x", "bx2"), thread("threadIdx.x", "tx2")
    i = bx.var * 64 + tx.var
    j = bx2.var * 64 + tx2.var
    k1 = bind(bx, (n + 63) // 64, bind(tx, 64, IfThenElse(i < n, st(W, i, ld(A, i) * E.const(2.0)))))
    k2 = bind(bx2, (n + 63) // 64, bind(tx2, 64, IfThenElse(j < n, st(B, j, ld(W, j) + E.const(1.0)))))
    f = PrimFunc("two", (A, B), Allocate(W, seq(k1, k2)), {"shape_vars": (n,)})
    src, plans, _ = gen(f)
    plan = plans["two"]
    assert [L.kernel for L in plan.launches] == ["two_kernel0", "two_kernel1"]
    assert plan.launches[0].args == (ParamArg(0), WorkspaceArg(0), DimArg("n"))
    assert plan.launches[1].args == (ParamArg(1), WorkspaceArg(0), DimArg("n"))
    assert plan.workspaces[0].evaluate({"n": 10}) == 40
    assert "float* __restrict__ T_ws" in kernel_text(src, "two_kernel0")
    compile_both(src)


@needs_nvrtc
def test_several_functions_share_one_source_and_build_cuda():
    src, plans, sigs = gen(K.case_vadd().func, K.case_dense_dp4a().func)
    assert set(plans) == {"vadd", "dense_dp4a"} and [s.name for s in sigs] == ["vadd", "dense_dp4a"]
    mod = build_cuda(lower_device([K.case_vadd().func, K.case_dense_dp4a().func], "cuda -arch=sm_80"), "sm_80")
    assert "vadd_kernel0" in mod.get_source() and "dense_dp4a_kernel0" in mod.get_source()
    assert set(mod.signatures) == {"vadd", "dense_dp4a"}


def test_pragma_auto_unroll_marks_small_loops():
    A = Buffer("A", (64,), "float32")
    tx = thread("threadIdx.x")
    i, j, m = E.Var("i"), E.Var("j"), E.Var("m")
    body = AttrStmt(None, "pragma_auto_unroll_max_step", E.const(16), seq(
        For(i, E.const(0), E.const(4), "serial", For(j, E.const(0), E.const(4), "serial",
                                                     st(A, tx.var + i * 4 + j, E.const(1.0)))),
        For(m, E.const(0), E.const(32), "serial", st(A, tx.var, E.const(2.0))),
    ))
    src, _, _ = gen(PrimFunc("unr", (A,), bind(tx, 1, body), {}))
    lines = [ln.strip() for ln in src.splitlines()]
    at = {ln.split()[2]: k for k, ln in enumerate(lines) if ln.startswith("for (")}
    assert lines[at["i"] - 1] == "#pragma unroll" and lines[at["j"] - 1] == "#pragma unroll"
    assert lines[at["m"] - 1] != "#pragma unroll"


def test_pragma_around_the_kernel_still_applies():
    A = Buffer("A", (64,), "float32")
    tx, i = thread("threadIdx.x"), E.Var("i")
    kernel = bind(tx, 4, For(i, E.const(0), E.const(4), "serial", st(A, tx.var * 4 + i, E.const(1.0))))
    body = AttrStmt(None, "pragma_auto_unroll_max_step", E.const(8), kernel)
    src, _, _ = gen(PrimFunc("unr2", (A,), body, {}))
    assert "#pragma unroll\n  for (int i = 0; i < 4; ++i)" in src


def test_threads_smaller_than_block_are_guarded():
    A = Buffer("A", (64,), "float32")
    S = Buffer("S", (64,), "float32", "shared")
    bx, tx, tx2 = thread("blockIdx.x"), thread("threadIdx.x"), thread("threadIdx.x", "t2")
    body = bind(bx, 1, Allocate(S, seq(bind(tx, 64, st(S, tx.var, ld(A, tx.var))),
                                       bind(tx2, 32, st(A, tx2.var, ld(S, tx2.var + 32))))))
    src, plans, _ = gen(PrimFunc("guard", (A,), body, {}))
    assert plans["guard"].launches[0].block == (64, 1, 1)
    lines = [ln.strip() for ln in src.splitlines()]
    g = lines.index("if (((int)threadIdx.x) < 32) {")
    assert lines[g - 1] == "__syncthreads();"      # the barrier stays outside the guard


def test_shared_buffer_used_by_two_kernels_is_an_error():
    A = Buffer("A", (64,), "float32")
    S = Buffer("S", (64,), "float32", "shared")
    tx, tx2 = thread("threadIdx.x"), thread("threadIdx.x", "t2")
    body = Allocate(S, seq(bind(tx, 64, st(S, tx.var, ld(A, tx.var))),
                           bind(tx2, 32, st(A, tx2.var, ld(S, tx2.var + 32)))))
    with pytest.raises(CodegenError, match="S is allocated outside the thread bindings"):
        gen(PrimFunc("two_kernels", (A,), body, {}))


@needs_nvrtc
def test_tvm_style_nested_bindings_and_shared_allocated_in_the_loop():
    """Fetch stage with its own threadIdx binding inside the compute binding; tile allocated per ko."""
    A, C = Buffer("A", (32, 256), "float32"), Buffer("C", (32, 64), "float32")
    S = Buffer("A_shared", (64,), "float32", "shared")
    acc = Buffer("acc", (1,), "float32", "local")
    bx, tx, tf = thread("blockIdx.x"), thread("threadIdx.x"), thread("threadIdx.x", "tf")
    ko, ki = E.Var("ko"), E.Var("ki")
    loop = For(ko, E.const(0), E.const(4), "serial", Allocate(S, seq(
        bind(tf, 32, seq(st(S, tf.var * 2, ld(A, bx.var * 256 + ko * 64 + tf.var * 2)),
                         st(S, tf.var * 2 + 1, ld(A, bx.var * 256 + ko * 64 + tf.var * 2 + 1)))),
        For(ki, E.const(0), E.const(64), "serial",
            st(acc, 0, ld(acc, 0) + ld(S, ki) * E.Cast("float32", tx.var))),
    )))
    body = bind(bx, 32, bind(tx, 64, Allocate(acc, seq(st(acc, 0, E.const(0.0)), loop,
                                                      st(C, bx.var * 64 + tx.var, ld(acc, 0))))))
    src, plans, _ = gen(PrimFunc("nested", (A, C), body, {}))
    assert plans["nested"].launches[0].block == (64, 1, 1)
    lines = [ln.strip() for ln in kernel_text(src, "nested_kernel0").splitlines()]
    assert "__shared__ __align__(16) float A_shared[64];" in lines
    g = lines.index("if (((int)threadIdx.x) < 32) {")
    close = lines.index("}", g)
    assert lines[close + 1] == "__syncthreads();" and lines[close + 2].startswith("for (int ki")
    assert lines.count("__syncthreads();") == 2
    compile_both(src)


def test_names_never_shadow_math_functions():
    A = Buffer("expf", (8,), "float32")
    tx = thread("threadIdx.x")
    i = E.Var("rintf")
    f = PrimFunc("shadow", (A,), bind(tx, 8, For(i, E.const(0), E.const(1), "serial",
                                                 st(A, tx.var + i, call("float32", "exp", ld(A, tx.var + i))))), {})
    src, _, _ = gen(f)
    assert "float* __restrict__ expf_" in src and "int rintf_ = 0" in src and "expf(expf_[" in src


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
def test_unbound_loop_is_an_error_naming_the_buffer():
    A, C = Buffer("A", (16,), "float32"), Buffer("C", (16,), "float32")
    i = E.Var("i")
    f = PrimFunc("host", (A, C), For(i, E.const(0), E.const(16), "serial", st(C, i, ld(A, i))), {})
    with pytest.raises(CodegenError) as info:
        gen(f)
    msg = str(info.value)
    assert "C" in msg and "s[C].bind(axis, te.thread_axis(\"blockIdx.x\"))" in msg and "loop over i" in msg


def test_symbolic_block_dimension_is_an_error():
    n = E.SizeVar("n")
    A = Buffer("A", (n,), "float32")
    tx = thread("threadIdx.x")
    f = PrimFunc("sym", (A,), bind(tx, n, st(A, tx.var, E.const(0.0))), {"shape_vars": (n,)})
    with pytest.raises(CodegenError, match="threadIdx.x.*constant"):
        gen(f)


def test_parallel_loop_on_gpu_is_an_error():
    A = Buffer("A", (16,), "float32")
    tx, i = thread("threadIdx.x"), E.Var("i")
    f = PrimFunc("par", (A,), bind(tx, 1, For(i, E.const(0), E.const(16), "parallel", st(A, i, E.const(0.0)))), {})
    with pytest.raises(CodegenError, match="parallel"):
        gen(f)


def test_unknown_intrinsic_is_an_error():
    A = Buffer("A", (16,), "float32")
    tx = thread("threadIdx.x")
    f = PrimFunc("unk", (A,), bind(tx, 16, st(A, tx.var, call("float32", "frobnicate", ld(A, tx.var)))), {})
    with pytest.raises(CodegenError, match="frobnicate"):
        gen(f)


# ------------------------------------------------------------------------------------------
# the virtual-thread pass
# ------------------------------------------------------------------------------------------
def test_inject_virtual_thread_expands_locals_and_substitutes():
    A = Buffer("A", (64,), "float32")
    L = Buffer("L", (2,), "float32", "local")
    vt, tx = thread("vthread", "vt"), thread("threadIdx.x")
    k = E.Var("k")
    body = bind(vt, 4, bind(tx, 16, Allocate(L, seq(
        st(L, 0, E.const(0.0)),
        For(k, E.const(0), E.const(8), "serial", st(L, 0, ld(L, 0) + ld(A, vt.var * 16 + tx.var))),
        st(A, vt.var * 16 + tx.var, ld(L, 0)),
    ))))
    out = inject_virtual_thread(body)
    allocs, stores, attrs = [], [], []

    class _V(Visitor):
        def visit_Allocate(self, s):
            allocs.append(s.buffer)
            self.generic_visit(s)

        def visit_BufferStore(self, s):
            stores.append(s)
            self.generic_visit(s)

        def visit_AttrStmt(self, s):
            attrs.append(s.node.thread_tag)
            self.generic_visit(s)

    _V().visit(out)
    assert attrs == ["threadIdx.x"]
    assert [b.shape[0].value for b in allocs] == [8]
    assert len(stores) == 12                     # 4 inits, 4 in the (single) k loop, 4 results
    text = str(out)
    assert "L[6] = 0.0f" in text and "L[6] = (L[6] + A[(48 + threadIdx_x)])" in text
    assert text.count("for (k") == 1


def test_inject_virtual_thread_keeps_invariant_statements_once():
    A = Buffer("A", (64,), "float32")
    S = Buffer("S", (16,), "float32", "shared")
    vt, tx = thread("vthread", "vt"), thread("threadIdx.x")
    body = bind(vt, 2, bind(tx, 16, seq(st(S, tx.var, ld(A, tx.var)), st(A, vt.var * 16 + tx.var, ld(S, tx.var)))))
    out = inject_virtual_thread(body)
    text = str(out)
    assert text.count("S[threadIdx_x] =") == 1
    assert text.count("A[threadIdx_x] = S[threadIdx_x]") == 1 and "A[(16 + threadIdx_x)]" in text


def test_inject_virtual_thread_keeps_untouched_locals_single():
    """A register cache filled independently of the vthread is shared by all copies (TVM's rule)."""
    A, C = Buffer("A", (64,), "float32"), Buffer("C", (64,), "float32")
    AL = Buffer("AL", (4,), "float32", "local")
    CL = Buffer("CL", (4,), "float32", "local")
    vt, tx = thread("vthread", "vt"), thread("threadIdx.x")
    i = E.Var("i")
    body = bind(vt, 2, bind(tx, 8, Allocate(AL, Allocate(CL, seq(
        For(i, E.const(0), E.const(4), "serial", st(AL, i, ld(A, tx.var * 4 + i))),
        For(i, E.const(0), E.const(4), "serial", st(CL, i, ld(AL, i) * E.Cast("float32", vt.var))),
        For(i, E.const(0), E.const(4), "serial", st(C, vt.var * 32 + tx.var * 4 + i, ld(CL, i))),
    )))))
    out = inject_virtual_thread(body)
    sizes = {}

    class _V(Visitor):
        def visit_Allocate(self, s):
            sizes[s.buffer.name] = s.buffer.shape[0].value
            self.generic_visit(s)

    _V().visit(out)
    assert sizes == {"AL": 4, "CL": 8}
    text = str(out)
    assert text.count("AL[i] = A[") == 1 and "CL[(i + 4)] = (AL[i] * float32(1))" in text


def test_vthread_with_symbolic_extent_is_an_error():
    A = Buffer("A", (64,), "float32")
    vt = thread("vthread", "vt")
    with pytest.raises(CodegenError, match="vthread extent"):
        inject_virtual_thread(bind(vt, E.SizeVar("n"), st(A, vt.var, E.const(0.0))))


# ------------------------------------------------------------------------------------------
# the shared-memory sync pass
# ------------------------------------------------------------------------------------------
def _shared_kernel(body_fn, n=64):
    A = Buffer("A", (n,), "float32")
    S = Buffer("S", (n,), "float32", "shared")
    tx = thread("threadIdx.x")
    return bind(tx, n, Allocate(S, body_fn(A, S, tx.var)))


def test_no_barrier_when_each_thread_reads_its_own_element():
    k = _shared_kernel(lambda A, S, t: seq(st(S, t, ld(A, t)), st(A, t, ld(S, t) * E.const(2.0))))
    assert count_syncs(insert_shared_sync(k)) == 0


def test_barrier_between_write_and_read_of_other_threads():
    k = _shared_kernel(lambda A, S, t: seq(st(S, t, ld(A, t)), st(A, t, ld(S, 63 - t))))
    out = insert_shared_sync(k)
    assert count_syncs(out) == 1
    body = out.body.body
    assert isinstance(body, SeqStmt) and is_sync(body.seq[1])


def test_barrier_before_overwriting_what_others_read():
    # read S[63 - t], then write S[t]: a write-after-read hazard
    k = _shared_kernel(lambda A, S, t: seq(st(S, t, ld(A, t)), st(A, t, ld(S, 63 - t)),
                                           st(S, t, E.const(0.0)), st(A, t, ld(A, t) + ld(S, 62 - t))))
    out = insert_shared_sync(k)
    assert count_syncs(out) == 3


def test_divergent_barrier_is_hoisted_by_splitting_the_branch():
    def body(A, S, t):
        return IfThenElse(t < 32, seq(st(S, t, ld(A, t)), st(A, t, ld(S, 31 - t))))
    out = insert_shared_sync(_shared_kernel(body))
    top = out.body.body
    assert isinstance(top, SeqStmt) and len(top.seq) == 3
    assert isinstance(top.seq[0], IfThenElse) and is_sync(top.seq[1]) and isinstance(top.seq[2], IfThenElse)
    assert count_syncs(top.seq[0]) == 0 and count_syncs(top.seq[2]) == 0


def test_divergent_barrier_through_a_loop():
    k = E.Var("k")

    def body(A, S, t):
        return IfThenElse(t < 32, For(k, E.const(0), E.const(4), "serial", seq(
            st(S, t, ld(A, t) + E.Cast("float32", k)), st(A, t, ld(S, 31 - t)))))
    out = insert_shared_sync(_shared_kernel(body))
    loop = out.body.body
    assert isinstance(loop, For)                 # the guard moved inside the loop
    src_syncs = [s for s in loop.body.seq if is_sync(s)]
    assert len(src_syncs) == 2 and all(isinstance(s, (IfThenElse,)) or is_sync(s) for s in loop.body.seq)


def test_divergent_barrier_with_else_branch_is_an_error():
    def body(A, S, t):
        return IfThenElse(t < 32, seq(st(S, t, ld(A, t)), st(A, t, ld(S, 31 - t))), st(A, t, E.const(0.0)))
    with pytest.raises(CodegenError, match="else"):
        insert_shared_sync(_shared_kernel(body))


def test_barrier_in_loop_with_thread_dependent_trip_count_is_an_error():
    k = E.Var("k")

    def body(A, S, t):
        return For(k, E.const(0), t, "serial", seq(st(S, t, ld(A, k)), st(A, t, ld(S, 63 - t))))
    with pytest.raises(CodegenError, match="trip count"):
        insert_shared_sync(_shared_kernel(body))


def test_tree_reduction_syncs_each_step_outside_the_guard():
    s = E.Var("s")

    def body(A, S, t):
        half = E.const(32) // (s + 1)
        return seq(
            st(S, t, ld(A, t)),
            For(s, E.const(0), E.const(6), "serial",
                IfThenElse(t < half, st(S, t, ld(S, t) + ld(S, t + half)))),
            IfThenElse(t < 1, st(A, 0, ld(S, 0))),
        )
    out = insert_shared_sync(_shared_kernel(body))
    seq_ = out.body.body.seq
    assert is_sync(seq_[1])                                  # load -> first step
    loop = seq_[2]
    assert isinstance(loop, For) and is_sync(loop.body.seq[-1])   # end of every step
    assert count_syncs(loop.body.seq[0]) == 0                # never inside the guard
    assert count_syncs(out) == 2                             # the loop's last barrier covers the final read


def test_existing_barriers_are_respected_and_not_doubled():
    sync = Evaluate(E.Call("int32", "syncthreads", ()))
    k = _shared_kernel(lambda A, S, t: seq(st(S, t, ld(A, t)), sync, sync, st(A, t, ld(S, 63 - t))))
    assert count_syncs(insert_shared_sync(k)) == 1


def test_loop_without_cross_iteration_hazard_gets_no_barrier():
    k = E.Var("k")
    body = _shared_kernel(lambda A, S, t: seq(
        For(k, E.const(0), E.const(4), "serial", st(S, t, ld(A, t) + E.Cast("float32", k))),
        st(A, t, ld(S, t))))
    assert count_syncs(insert_shared_sync(body)) == 0


# ------------------------------------------------------------------------------------------
# barrier placement checked by running kernels under random thread schedules
# ------------------------------------------------------------------------------------------
_SMALL = {
    "matmul_shared": lambda: K.case_matmul_shared(16, 16, 32, 8),
    "matmul_vthread": lambda: K.case_matmul_vthread(8, 32, 16, 8, 2),
    "dynamic_shared": lambda: K.case_dynamic_shared(1024, 64),
    "divergent_exchange": lambda: K.case_divergent_exchange(128),
    "pad_select": lambda: K.case_pad_select(512),
    "nan_minmax": lambda: K.case_nan_minmax(128),
}
_SIZES = {"dynamic_shared": {"n": 2048}}


def _interpret(case, sizes, seed):
    rng = np.random.default_rng(seed)
    inputs = case.make_inputs(rng, sizes)
    expected = case.reference([x.copy() for x in inputs])
    arrays = [x.copy() for x in inputs]
    kernel_interp.run_func(case.func, arrays, sizes, seed=seed)
    for i, want in expected.items():
        if case.exact:
            if not np.array_equal(arrays[i], want, equal_nan=True):
                return False
        elif not np.allclose(arrays[i], want, rtol=1e-4, atol=1e-4):
            return False
    return True


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_kernels_are_race_free_under_random_thread_schedules(name):
    case = _SMALL[name]()
    for seed in range(2):
        assert _interpret(case, _SIZES.get(name, case.sizes), seed), f"{name} (seed {seed})"


def test_the_interpreter_catches_missing_barriers(monkeypatch):
    import minitvm.lowering.pipeline as pipeline
    monkeypatch.setattr(pipeline, "insert_shared_sync", lambda s: s)
    assert not _interpret(_SMALL["matmul_shared"](), {}, 0)
    assert not _interpret(_SMALL["dynamic_shared"](), _SIZES["dynamic_shared"], 0)
    with pytest.raises(kernel_interp.Divergence):
        # a barrier left inside the thread-dependent branch: half the block never reaches it
        case = _SMALL["divergent_exchange"]()
        f = case.func
        tx_attr = f.body.body.body
        branch = tx_attr.body
        synced = IfThenElse(branch.condition, seq(branch.then_case.seq[0],
                                                  Evaluate(E.Call("int32", "syncthreads", ())),
                                                  branch.then_case.seq[1]))
        f2 = PrimFunc(f.name, f.params, bind(f.body.node, f.body.value, Allocate(
            f.body.body.buffer, AttrStmt(tx_attr.node, "thread_extent", tx_attr.value, synced))), f.attrs)
        kernel_interp.run_func(f2, case.make_inputs(np.random.default_rng(0), {}), {}, seed=0)


# ------------------------------------------------------------------------------------------
# warp fragments, address_of and the mt_* helpers
# ------------------------------------------------------------------------------------------
def _extern(name, *args):
    return Evaluate(call("int32", "call_extern", E.StringImm(name), *args))


def _frag_kernel(frag_size, body_of):
    """One warp of 32 lanes; ``body_of(frag, out)`` the statements on a warp fragment of ``frag_size`` int32."""
    out = Buffer("out", (32,), "int32")
    frag = Buffer("acc", (frag_size,), "int32", "warp")
    tx = thread("threadIdx.x")
    body = bind(tx, 32, Allocate(frag, body_of(frag, out, tx.var)))
    return PrimFunc("frag", (out,), body, {"shape_vars": ()})


def _zero_and_store(frag, out, tx):
    return seq(_extern("mt_zero_acc", E.address_of(ld(frag, 128), "w")),
               _extern("mt_store_acc", E.address_of(ld(out, 0), "w"), 8, E.address_of(ld(frag, 128), "r")))


def test_warp_fragment_not_a_multiple_of_32_is_an_error_naming_it():
    with pytest.raises(CodegenError, match="warp fragment acc has 48 elements, not a multiple of the 32 lanes"):
        gen(_frag_kernel(48, _zero_and_store))


def test_address_of_a_warp_fragment_is_a_per_lane_register_offset():
    src = gen(_frag_kernel(256, _zero_and_store))[0]
    body = kernel_text(src, "frag_kernel0")
    assert "__align__(16) int acc[8];" in body              # 256 elements: 8 registers a lane
    assert "mt_zero_acc((acc + (128) / 32));" in body
    assert "mt_store_acc((out + 0), 8, (acc + (128) / 32));" in body


def test_mt_helpers_are_included_only_when_used():
    plain = gen(K.case_vadd().func)[0]
    assert "mt_" not in plain and "ldmatrix" not in plain and "cp.async" not in plain
    mma = gen(_frag_kernel(256, _zero_and_store))[0]
    assert "mt_shared_addr" in mma and "mt_cp_async_wait" not in mma


# ------------------------------------------------------------------------------------------
# barriers around address_of accesses
# ------------------------------------------------------------------------------------------
def _shared_reads(first_write):
    """A shared tile written by ``first_write`` (per thread), then read by two ldmatrix calls."""
    S = Buffer("tile", (64 * 48,), "int8", "shared")
    F = Buffer("frag", (1024,), "int8", "warp")
    O = Buffer("o", (32,), "int8")
    tx = thread("threadIdx.x")

    def ldm(f, s):
        return _extern("mt_ldmatrix_a", E.address_of(ld(F, f), "w"), E.address_of(ld(S, s), "r"), 48)

    body = seq(first_write(S, tx.var), ldm(0, 0), ldm(512, 16 * 48), st(O, tx.var, ld(S, tx.var * 3)))
    return bind(tx, 32, Allocate(S, Allocate(F, body)))


def _syncs_before(stmt):
    """For each statement of the kernel's sequence: whether a barrier precedes it."""
    seq_ = stmt
    while not isinstance(seq_, SeqStmt):
        seq_ = seq_.body
    out, sync = [], False
    for s in seq_.seq:
        if is_sync(s):
            sync = True
            continue
        out.append(sync)
        sync = False
    return out


def test_ldmatrix_reads_get_no_barrier_between_them():
    write = lambda S, tx: st(S, tx, E.const(1, "int8"))  # noqa: E731
    placed = insert_shared_sync(_shared_reads(write))
    assert _syncs_before(placed) == [False, True, False, False]
    assert count_syncs(placed) == 1


def test_address_of_write_then_plain_read_gets_a_barrier():
    """A write through ``address_of(..., "w")`` (a cp.async here) orders the plain read after it."""
    write = lambda S, tx: _extern("mt_cp_async16", E.address_of(ld(S, tx * 16), "w"),  # noqa: E731
                                  E.address_of(ld(Buffer("g", (512,), "int8"), tx * 16), "r"), 16)
    S = Buffer("tile", (512,), "int8", "shared")
    O = Buffer("o", (32,), "int8")
    tx = thread("threadIdx.x")
    body = bind(tx, 32, Allocate(S, seq(write(S, tx.var), st(O, tx.var, ld(S, tx.var * 3)))))
    placed = insert_shared_sync(body)
    assert _syncs_before(placed) == [False, True]
    frag = Buffer("f", (256,), "int8", "warp")
    read = _extern("mt_ldmatrix_b", E.address_of(ld(frag, 0), "w"), E.address_of(ld(S, tx.var * 16), "r"), 32)
    body = bind(tx, 32, Allocate(S, seq(read, st(O, tx.var, ld(S, tx.var * 3)))))
    assert count_syncs(insert_shared_sync(body)) == 0
