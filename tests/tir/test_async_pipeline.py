"""Software pipelines of shared-memory fills (``Stage.pipeline(n)``, ``tir.transform.async_pipeline``):
the ring's structure, which fills become ``cp.async``, and a small shared-memory GEMM that the
SIMT interpreter runs bit-exactly with 2 to 4 stages (and reads stale shared memory without the wait)."""
import dataclasses
import os
import re
import sys

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import ScheduleError
from minitvm.tir import expr as E
from minitvm.tir.functor import Mutator
from minitvm.tir.stmt import Evaluate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402

rng = np.random.default_rng(21)
M, N, KT, STEPS = 8, 8, 32, 5      # an 8 x 8 block, 64 threads; 5 k-steps of 32


def _matmul(stages, vector=4, padded_rows=0):
    """``C = A @ B`` (int32) in one block of 8 x 8 threads, A and B tiles staged in shared memory
    per k-step and filled ``vector`` elements a thread; ``padded_rows`` of A's rows are zeros
    that the fill writes (the select of a padded tensor)."""
    K = KT * STEPS
    A = te.placeholder((M - padded_rows, K), "int32", "A")
    B = te.placeholder((K, N), "int32", "B")
    Ap = te.compute((M, K), lambda i, k: te.if_then_else(i < M - padded_rows, A[i, k], E.const(0, "int32")),
                    name="A_pad") if padded_rows else A
    k = te.reduce_axis((0, K), "k")
    C = te.compute((M, N), lambda i, j: te.sum(Ap[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    if padded_rows:
        s[Ap].compute_inline()
    AS = s.cache_read(Ap, "shared", [C])
    BS = s.cache_read(B, "shared", [C])
    tx, ty = te.thread_axis("threadIdx.x"), te.thread_axis("threadIdx.y")
    i, j = s[C].op.axis
    s[C].bind(i, ty)
    s[C].bind(j, tx)
    ko, _ = s[C].split(s[C].op.reduce_axis[0], factor=KT)
    for S in (AS, BS):
        s[S].compute_at(s[C], ko)
        if stages > 1:
            s[S].pipeline(stages)
        fused = s[S].fuse(*s[S].op.axis)
        fused, lanes = s[S].split(fused, factor=vector)
        s[S].vectorize(lanes)
        fused, t = s[S].split(fused, factor=N)
        s[S].bind(t, tx)
        fused, t = s[S].split(fused, factor=M)
        s[S].bind(t, ty)
    return s, [A, B, C]


def _lines(stmt):
    return [ln.strip() for ln in str(stmt).splitlines()]


def _run(f, tensors, seed=0):
    a = rng.integers(-1000, 1000, [int(d.value) for d in tensors[0].shape], dtype=np.int32)
    b = rng.integers(-1000, 1000, [int(d.value) for d in tensors[1].shape], dtype=np.int32)
    c = np.full((M, N), -7, np.int32)
    kernel_interp.run_func(f, [a, b, c], seed=seed)
    pad = M - a.shape[0]
    want = np.vstack([a, np.zeros((pad, a.shape[1]), np.int32)]) @ b
    return c, want


# --- Stage.pipeline's arguments ------------------------------------------------------------------

@pytest.mark.parametrize("stages", [0, 1, 9, 2.0, True, "3"])
def test_pipeline_stage_count_must_be_an_int_from_2_to_8(stages):
    s, (A, B, C) = _matmul(1)
    AS = s.stages[[st.name for st in s.stages].index("A.shared")]
    with pytest.raises(ScheduleError, match=f"pipeline of stage A.shared: stages must be an int from 2 to 8, "
                                            f"got {re.escape(repr(stages))}"):
        AS.pipeline(stages)


def test_pipeline_of_a_placeholder_is_refused():
    A = te.placeholder((4,), "int32", "A")
    C = te.compute((4,), lambda i: A[i] + 1, name="C")
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="pipeline: stage A is a placeholder"):
        s[A].pipeline(2)


def test_pipeline_and_double_buffer_are_exclusive():
    s, _ = _matmul(1)
    AS = s.stages[[st.name for st in s.stages].index("A.shared")]
    AS.double_buffer()
    with pytest.raises(ScheduleError, match="A.shared: it is already double-buffered"):
        AS.pipeline(2)


# --- the lowered structure -----------------------------------------------------------------------

@pytest.mark.parametrize("stages", [2, 3, 4])
def test_ring_prologue_wait_barrier_guarded_fill_and_final_wait(stages):
    s, tensors = _matmul(stages)
    lines = _lines(minitvm.lower(s, tensors).body)
    text = "\n".join(lines)
    assert f"allocate A.shared[int32 * {stages * M * KT}]" in text
    assert f"allocate B.shared[int32 * {stages * KT * N}]" in text
    loop = next(i for i, ln in enumerate(lines) if ln.startswith("for (k.outer"))
    prologue, body = lines[:loop], lines[loop + 1:]
    # the prologue fills slots 0 .. n-2, one commit each
    assert sum(ln == "call_extern('mt_cp_async_commit')" for ln in prologue) == stages - 1
    assert sum("'mt_cp_async16'" in ln for ln in prologue) == 2 * (stages - 1)
    # the loop: wait(n-2), barrier, the fill of step k+n-1 guarded, commit, then the compute
    assert body[0] == f"call_extern('mt_cp_async_wait', {stages - 2})"
    assert body[1] == "syncthreads()"
    assert body[2] == f"if (((k.outer + {stages - 1}) < {STEPS})) {{"
    fill_end = body.index("call_extern('mt_cp_async_commit')")
    assert sum("'mt_cp_async16'" in ln for ln in body[2:fill_end]) == 2
    assert any(f"% {stages})" in ln for ln in body[2:fill_end])
    # the compute reads slot k % n (its address hoisted out of the k.inner loop)
    inner = next(i for i in range(fill_end + 1, len(body)) if body[i].startswith("for (k.inner"))
    assert all(ln.startswith("inv") for ln in body[fill_end + 1:inner])
    assert f"((k.outer % {stages}) * 256)" in "\n".join(body[fill_end + 1:inner + 2])
    # after the loop: nothing left in flight, then a barrier (what follows may reuse the ring's bytes)
    assert lines[-2:] == ["call_extern('mt_cp_async_wait', 0)", "syncthreads()"]
    assert text.count("mt_cp_async_wait") == 2


def test_fill_narrower_than_16_bytes_stays_a_plain_store_in_the_ring():
    s, tensors = _matmul(3, vector=2)
    text = str(minitvm.lower(s, tensors).body)
    assert "mt_cp_async16" not in text and "A.shared[ramp(" in text
    assert "mt_cp_async_wait" in text
    c, want = _run(minitvm.lower(s, tensors), tensors)
    np.testing.assert_array_equal(c, want)


def test_padded_fill_is_a_cp_async_with_zero_fill():
    s, tensors = _matmul(2, padded_rows=3)
    text = str(minitvm.lower(s, tensors).body)
    assert "call_extern('mt_cp_async16', address_of(A_pad.shared[" in text
    # the zero fill reads nothing, so the source address needs no guard
    assert "address_of(A[((threadIdx.y * 160) + (threadIdx.x * 4))], 1), select((threadIdx.y < 5), 16, 0))" in text
    assert "address_of(A[select(" not in text
    c, want = _run(minitvm.lower(s, tensors), tensors)
    np.testing.assert_array_equal(c, want)


# --- bit-exact through the interpreter -----------------------------------------------------------

@pytest.mark.parametrize("stages", [1, 2, 3, 4])
def test_pipelined_matmul_bit_exact_in_interpreter(stages):
    s, tensors = _matmul(stages)
    f = minitvm.lower(s, tensors)
    for seed in (0, 1):
        c, want = _run(f, tensors, seed)
        np.testing.assert_array_equal(c, want)


class _DropLoopWaits(Mutator):
    """Replace the in-loop ``mt_cp_async_wait`` by a no-op (the final wait(0) stays)."""

    def visit_Evaluate(self, node):
        v = node.value
        if isinstance(v, E.Call) and v.args and getattr(v.args[0], "value", None) == "mt_cp_async_wait" \
                and not E.is_const_int(v.args[1], 0):
            return Evaluate(E.const(0))
        return node


@pytest.mark.parametrize("stages", [3, 4])
def test_without_the_wait_the_kernel_reads_stale_shared_memory(stages):
    s, tensors = _matmul(stages)
    f = minitvm.lower(s, tensors)
    broken = dataclasses.replace(f, body=_DropLoopWaits().visit(f.body))
    assert str(broken).count("mt_cp_async_wait") == 1
    c, want = _run(broken, tensors)
    assert (c != want).any()
