"""The SIMT interpreter's warps: int8 tensor-core kernels (``mma.sync``, ``ldmatrix``, ``cp.async``) on the CPU.

The kernels are written by hand in the loop IR the way the CUDA templates lower them: fragments
are ``warp``-scope buffers, the operations ``call_extern("mt_...")`` statements. Inputs are fresh
random int8 over the full range; outputs start poisoned.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from minitvm.tir import expr as E
from minitvm.tir.stmt import Allocate, Buffer, Evaluate, For, IfThenElse, seq

import warp_ops
from cuda_kernels import bind, ld, ramp, st, thread
from kernel_interp import Divergence, WarpError, run_kernel

SHARED_POISON = 77          # every byte of fresh shared memory in the interpreter
FRAGMENT_POISON = -91       # every byte of a fresh warp buffer (0xA5)


def mt(name, *args):
    """``Evaluate(call_extern(name, *args))``: one warp operation."""
    return Evaluate(E.Call("int32", "call_extern", (E.StringImm(name), *(E.convert(a) for a in args))))


def addr(buf, i):
    """``address_of(buf[i])``."""
    return E.Call("handle", "address_of", (ld(buf, i),))


def barrier():
    """``__syncthreads()``."""
    return Evaluate(E.Call("int32", "syncthreads", ()))


def interpret(kernel, arrays, block, seed=0):
    """Run ``kernel`` (one block) on copies of ``arrays`` ({Buffer: array}); the arrays afterwards."""
    out = {b: a.copy() for b, a in arrays.items()}
    run_kernel(kernel, (1, 1, 1), block, {b.data: a.reshape(-1) for b, a in out.items()}, {}, random.Random(seed))
    return out


def int8s(rng, shape):
    """Fresh random int8 over the full range."""
    return rng.integers(-128, 128, shape, dtype=np.int8)


def matmul_nt(a, b):
    """``a @ b.T`` in int32, wrapping."""
    return (a.astype(np.int64) @ b.astype(np.int64).T).astype(np.int32)


def copy_async(dst, src, nbytes, linear, nthreads):
    """Every thread copies its 16-byte chunks of ``src`` into ``dst`` with cp.async, in one group."""
    chunks = nbytes // 16
    i = E.Var("i")
    chunk = i * nthreads + linear
    copy = mt("mt_cp_async16", addr(dst, chunk * 16), addr(src, chunk * 16), 16)
    if chunks % nthreads:
        copy = IfThenElse(chunk < chunks, copy)
    return For(i, E.const(0), E.const(-(-chunks // nthreads)), "serial", copy)


def gemm_kernel(warps=1, k_steps=1, wide=False, wait=True, sync=True):
    """C = A B^T, one warp tile per warp, K = 32 k_steps: A (16 warps, K), B (N, K) int8, C int32.

    The block (32, warps) stages A and B in shared memory with cp.async, then warp ``ty`` loads
    its 16 rows of A and all of B with ldmatrix, one m16n8k32 mma per 8 columns and k-step into
    its accumulators. ``wide``: N = 16, B loaded as two fragments by one ``mt_ldmatrix_b16``.
    """
    tiles = 2 if wide else 1
    M, N, K = 16 * warps, 8 * tiles, 32 * k_steps
    A, B, C = Buffer("A", (M, K), "int8"), Buffer("B", (N, K), "int8"), Buffer("C", (M, N), "int32")
    As = Buffer("A_shared", (M * K,), "int8", "shared")
    Bs = Buffer("B_shared", (N * K,), "int8", "shared")
    a_frag = Buffer("a_frag", (32 * 16,), "int8", "warp")
    b_frag = Buffer("b_frag", (32 * 8 * tiles,), "int8", "warp")
    acc = Buffer("acc", (32 * 4 * tiles,), "int32", "warp")
    ty, tx = thread("threadIdx.y"), thread("threadIdx.x")
    linear, nthreads = tx.var + ty.var * 32, 32 * warps
    ks = E.Var("ks")
    b_load = "mt_ldmatrix_b16" if wide else "mt_ldmatrix_b"
    body = seq(
        copy_async(As, A, M * K, linear, nthreads),
        copy_async(Bs, B, N * K, linear, nthreads),
        mt("mt_cp_async_commit"),
        *([mt("mt_cp_async_wait", 0)] if wait else []),
        *([barrier()] if sync else []),
        *(mt("mt_zero_acc", addr(acc, 128 * j)) for j in range(tiles)),
        For(ks, E.const(0), E.const(k_steps), "serial", seq(
            mt("mt_ldmatrix_a", addr(a_frag, 0), addr(As, ty.var * (16 * K) + ks * 32), K),
            mt(b_load, addr(b_frag, 0), addr(Bs, ks * 32), K),
            *(mt("mt_mma_s8", addr(acc, 128 * j), addr(a_frag, 0), addr(b_frag, 256 * j)) for j in range(tiles)),
        )),
        *(mt("mt_store_acc", addr(C, ty.var * (16 * N) + 8 * j), N, addr(acc, 128 * j)) for j in range(tiles)),
    )
    frags = Allocate(a_frag, Allocate(b_frag, Allocate(acc, body)))
    kernel = Allocate(As, Allocate(Bs, bind(ty, warps, bind(tx, 32, frags))))
    return kernel, (A, B, C), (32, warps, 1)


def run_gemm(warps=1, k_steps=1, wide=False, wait=True, sync=True, seed=0):
    """(C the kernel computed, A B^T) on fresh random inputs."""
    kernel, (A, B, C), block = gemm_kernel(warps, k_steps, wide, wait, sync)
    rng = np.random.default_rng(seed)
    shape_c = [int(d.value) for d in C.shape]
    a, b = int8s(rng, [int(d.value) for d in A.shape]), int8s(rng, [int(d.value) for d in B.shape])
    out = interpret(kernel, {A: a, B: b, C: np.full(shape_c, 0x5EED, np.int32)}, block, seed)
    return out[C], matmul_nt(a, b)


# ------------------------------------------------------------------------------------------
# whole kernels
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_one_tile_cp_async_ldmatrix_mma_store_equals_a_times_b_transposed(seed):
    got, want = run_gemm(seed=seed)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(2))
def test_four_k_steps_accumulate_and_two_warps_compute_their_own_tiles(seed):
    got, want = run_gemm(warps=2, k_steps=4, seed=seed)
    np.testing.assert_array_equal(got, want)


def test_ldmatrix_b16_loads_two_b_fragments_for_two_mma_per_k_step():
    got, want = run_gemm(warps=2, k_steps=2, wide=True)
    np.testing.assert_array_equal(got, want)


def test_a_kernel_that_forgets_the_cp_async_wait_reads_stale_shared_memory():
    got, want = run_gemm(wait=False)
    assert not np.array_equal(got, want)
    assert np.all(got == 32 * SHARED_POISON * SHARED_POISON)      # the copies never landed


def test_without_the_barrier_a_warp_can_load_chunks_another_warp_has_not_waited_for():
    """Each thread's wait covers only its own copies; warp 1's rows of A are partly copied by warp 0."""
    results = [run_gemm(warps=2, k_steps=4, sync=False, seed=seed) for seed in range(3)]
    assert not all(np.array_equal(got, want) for got, want in results)


def test_unwritten_fragments_read_as_the_poison_pattern():
    C = Buffer("C", (16, 8), "int32")
    a_frag = Buffer("a_frag", (512,), "int8", "warp")
    b_frag = Buffer("b_frag", (256,), "int8", "warp")
    acc = Buffer("acc", (128,), "int32", "warp")
    tx = thread("threadIdx.x")
    body = seq(mt("mt_zero_acc", addr(acc, 0)),
               mt("mt_mma_s8", addr(acc, 0), addr(a_frag, 0), addr(b_frag, 0)),
               mt("mt_store_acc", addr(C, 0), 8, addr(acc, 0)))
    kernel = bind(tx, 32, Allocate(a_frag, Allocate(b_frag, Allocate(acc, body))))
    got = interpret(kernel, {C: np.zeros((16, 8), np.int32)}, (32, 1, 1))[C]
    assert np.all(got == 32 * FRAGMENT_POISON * FRAGMENT_POISON)


def test_cp_async_with_nbytes_0_writes_zeros_and_reads_nothing():
    """Lanes 8-31 pass source addresses past the end of A with nbytes 0: their chunks become zeros."""
    A, Out = Buffer("A", (128,), "int8"), Buffer("Out", (512,), "int8")
    S = Buffer("S", (512,), "int8", "shared")
    tx = thread("threadIdx.x")
    t = tx.var
    nbytes = E.Select(t < 8, E.const(16), E.const(0))
    body = seq(mt("mt_cp_async16", addr(S, t * 16), addr(A, t * 16), nbytes),
               mt("mt_cp_async_commit"), mt("mt_cp_async_wait", 0),
               st(Out, ramp(t * 16, 16), ld(S, ramp(t * 16, 16))))
    a = int8s(np.random.default_rng(0), 128)
    got = interpret(Allocate(S, bind(tx, 32, body)), {A: a, Out: np.full(512, 5, np.int8)}, (32, 1, 1))[Out]
    np.testing.assert_array_equal(got, np.concatenate([a, np.zeros(384, np.int8)]))


def test_cp_async_wait_n_completes_all_but_the_n_most_recent_groups():
    A, B = Buffer("A", (512,), "int8"), Buffer("B", (512,), "int8")
    O1, O2, O3 = (Buffer(n, (512,), "int8") for n in ("O1", "O2", "O3"))
    S1, S2 = Buffer("S1", (512,), "int8", "shared"), Buffer("S2", (512,), "int8", "shared")
    tx = thread("threadIdx.x")
    mine = ramp(tx.var * 16, 16)
    body = seq(mt("mt_cp_async16", addr(S1, tx.var * 16), addr(A, tx.var * 16), 16), mt("mt_cp_async_commit"),
               mt("mt_cp_async16", addr(S2, tx.var * 16), addr(B, tx.var * 16), 16), mt("mt_cp_async_commit"),
               mt("mt_cp_async_wait", 1),
               st(O1, mine, ld(S1, mine)), st(O2, mine, ld(S2, mine)),
               mt("mt_cp_async_wait", 0),
               st(O3, mine, ld(S2, mine)))
    rng = np.random.default_rng(1)
    a, b = int8s(rng, 512), int8s(rng, 512)
    zeros = np.zeros(512, np.int8)
    out = interpret(Allocate(S1, Allocate(S2, bind(tx, 32, body))),
                    {A: a, B: b, O1: zeros, O2: zeros, O3: zeros}, (32, 1, 1))
    np.testing.assert_array_equal(out[O1], a)
    assert np.all(out[O2] == SHARED_POISON)             # the most recent group is still in flight
    np.testing.assert_array_equal(out[O3], b)


# ------------------------------------------------------------------------------------------
# divergence and misuse
# ------------------------------------------------------------------------------------------
def _mma_kernel(nthreads, branch):
    """One mma per warp under ``branch(tx, mma statement)``."""
    a_frag = Buffer("a_frag", (512,), "int8", "warp")
    b_frag = Buffer("b_frag", (256,), "int8", "warp")
    acc = Buffer("acc", (128,), "int32", "warp")
    tx = thread("threadIdx.x")

    def mma():
        return mt("mt_mma_s8", addr(acc, 0), addr(a_frag, 0), addr(b_frag, 0))
    return bind(tx, nthreads, Allocate(a_frag, Allocate(b_frag, Allocate(acc, branch(tx.var, mma))))), (nthreads, 1, 1)


@pytest.mark.parametrize("nthreads, branch, message", [
    (32, lambda t, mma: IfThenElse(t < 16, mma()), "lane 16 reached the end of the kernel"),
    (32, lambda t, mma: seq(IfThenElse(t < 16, mma()), barrier()), "lane 16 reached a barrier"),
    (32, lambda t, mma: IfThenElse(t < 16, mma(), mma()), "lane 16 reached another mt_mma_s8 call"),
    (48, lambda t, mma: mma(), "warp 1 has only 16 threads"),
])
def test_lanes_reaching_a_collective_call_unevenly_raise_divergence(nthreads, branch, message):
    kernel, block = _mma_kernel(nthreads, branch)
    with pytest.raises(Divergence, match=message):
        interpret(kernel, {}, block)


def test_misused_warp_calls_name_the_culprit():
    C, G = Buffer("C", (16, 8), "int32"), Buffer("G", (1024,), "int8")
    S = Buffer("S", (1024,), "int8", "shared")
    acc = Buffer("acc", (128,), "int32", "warp")
    a_frag = Buffer("a_frag", (512,), "int8", "warp")
    tx = thread("threadIdx.x")
    arrays = {C: np.zeros((16, 8), np.int32), G: np.zeros(1024, np.int8)}

    def run(stmt):
        interpret(Allocate(S, bind(tx, 32, Allocate(acc, Allocate(a_frag, stmt)))), arrays, (32, 1, 1))
    with pytest.raises(WarpError, match="mt_ldmatrix_a: row stride 40 is not a multiple of 16"):
        run(mt("mt_ldmatrix_a", addr(a_frag, 0), addr(S, 0), 40))
    with pytest.raises(WarpError, match="mt_ldmatrix_a: lane 1 passes S\\[32\\]"):
        run(mt("mt_ldmatrix_a", addr(a_frag, 0), addr(S, tx.var * 32), 32))
    with pytest.raises(WarpError, match="mt_cp_async16: byte 8 of S is not 16-byte aligned"):
        run(mt("mt_cp_async16", addr(S, 8), addr(G, 0), 16))
    with pytest.raises(WarpError, match="mt_store_acc: the int2 stores at C.* are not 8-byte aligned"):
        run(mt("mt_store_acc", addr(C, 0), 7, addr(acc, 0)))
    with pytest.raises(NotImplementedError, match="call_extern 'mt_shuffle'"):
        run(mt("mt_shuffle", addr(acc, 0)))
    with pytest.raises(WarpError, match="acc indexed at 4; a fragment index is 32 x the slot"):
        run(mt("mt_zero_acc", addr(acc, 4)))
    with pytest.raises(WarpError, match="C is a global buffer; this argument is a warp fragment"):
        run(mt("mt_zero_acc", addr(C, 0)))
    with pytest.raises(WarpError, match="warp buffer acc is read or written by a plain load/store"):
        run(st(C, tx.var, ld(acc, tx.var)))


# ------------------------------------------------------------------------------------------
# the emulations against a second reading of the PTX ISA
# ------------------------------------------------------------------------------------------
def fragments_by_loops(a, b, c):
    """Each lane's A (16x32), B (32x8, k by n) and C (16x8) fragment, element by element."""
    fa, fb, fc = np.zeros((32, 16), np.int8), np.zeros((32, 8), np.int8), np.zeros((32, 4), np.int32)
    for lane in range(32):
        group, tid = lane // 4, lane % 4
        for i in range(16):
            row = group if i in (0, 1, 2, 3, 8, 9, 10, 11) else group + 8
            fa[lane, i] = a[row, tid * 4 + i % 4 + (16 if i >= 8 else 0)]
        for i in range(8):
            fb[lane, i] = b[tid * 4 + i % 4 + (16 if i >= 4 else 0), group]
        for i in range(4):
            fc[lane, i] = c[group if i < 2 else group + 8, tid * 2 + i % 2]
    return fa, fb, fc


def ldmatrix_by_loops(tile, matrices, row_address):
    """``ldmatrix`` of ``matrices`` 8x8 b16 matrices: lane 8j + r supplies row r of matrix j at
    ``row_address(lane)`` = (tile row, byte); lane l receives bytes 4(l % 4).. of row l // 4 of each."""
    out = np.zeros((32, 4 * matrices), np.int8)
    for j in range(matrices):
        rows = []
        for r in range(8):
            row, byte = row_address(8 * j + r)
            rows.append(tile[row, byte:byte + 16])
        for lane in range(32):
            out[lane, 4 * j:4 * j + 4] = rows[lane // 4][4 * (lane % 4):4 * (lane % 4) + 4]
    return out


def test_mma_emulation_matches_the_per_element_fragment_layout():
    rng = np.random.default_rng(2)
    a, b = int8s(rng, (16, 32)), int8s(rng, (32, 8))
    c = rng.integers(-2**20, 2**20, (16, 8), dtype=np.int32)
    fa, fb, fc = fragments_by_loops(a, b, c)
    d = c + a.astype(np.int32) @ b.astype(np.int32)
    np.testing.assert_array_equal(warp_ops.mma_m16n8k32_s8(fa, fb, fc), fragments_by_loops(a, b, d)[2])


def test_ldmatrix_emulations_match_the_per_lane_addresses_and_give_the_mma_fragments():
    rng = np.random.default_rng(3)
    ta, tb, tb16 = int8s(rng, (16, 32)), int8s(rng, (8, 32)), int8s(rng, (16, 32))
    want_a = ldmatrix_by_loops(ta, 4, lambda lane: (lane % 8 + 8 * ((lane // 8) % 2), 16 * (lane // 16)))
    want_b = ldmatrix_by_loops(tb, 2, lambda lane: (lane % 8, 16 * (lane // 8)))
    want_b16 = ldmatrix_by_loops(tb16, 4, lambda lane: (lane % 8 + 8 * (lane // 16), 16 * ((lane // 8) % 2)))
    np.testing.assert_array_equal(warp_ops.ldmatrix_a(ta), want_a)
    np.testing.assert_array_equal(warp_ops.ldmatrix_b(tb), want_b)
    np.testing.assert_array_equal(warp_ops.ldmatrix_b16(tb16), want_b16)
    zeros = np.zeros((16, 8), np.int32)
    fa, fb, _ = fragments_by_loops(ta, tb.T, zeros)
    np.testing.assert_array_equal(want_a, fa)           # ldmatrix .x4 of A is mma's A fragment
    np.testing.assert_array_equal(want_b, fb)           # ldmatrix .x2 of B^T is mma's B fragment
    halves = [fragments_by_loops(ta, tb16[8 * h:8 * h + 8].T, zeros)[1] for h in (0, 1)]
    np.testing.assert_array_equal(want_b16, np.concatenate(halves, axis=1))   # two B fragments


def test_the_accumulator_wraps_around_in_int32():
    rng = np.random.default_rng(4)
    a, b = int8s(rng, (16, 32)), int8s(rng, (32, 8))
    c = np.full((16, 8), 2**31 - 1, np.int64) - rng.integers(0, 2**15, (16, 8))
    c[8:] = -2**31 + rng.integers(0, 2**15, (8, 8))
    exact = c + a.astype(np.int64) @ b.astype(np.int64)
    assert np.any(exact >= 2**31) and np.any(exact < -2**31)
    wrapped = ((exact + 2**31) % 2**32 - 2**31).astype(np.int32)
    fa, fb, fc = fragments_by_loops(a, b, c.astype(np.int32))
    np.testing.assert_array_equal(warp_ops.mma_m16n8k32_s8(fa, fb, fc), fragments_by_loops(a, b, wrapped)[2])
