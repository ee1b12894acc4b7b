"""Loop unrolling (tir/transform/unroll.py): copies while they stay small, a plain loop past that.

#17 R9: a fused loop of 196 iterations, unrolled, with a stage computed at it: the copies held
196 loop nests and allocations, and LLVM -O3 spent 6-89 s on them (this schedule: 5.5 s
before, 0.3 s after, on the 2-core development machine, 2026-12-07).
"""
import numpy as np

import minitvm
from minitvm import te
from minitvm.testing import build_run
from minitvm.tir.functor import post_order_visit
from minitvm.tir.stmt import For
from minitvm.tir.transform import unroll


def _loops(f):
    found = []
    post_order_visit(f.body, lambda n: found.append(n) if isinstance(n, For) else None)
    return found


def _chain():
    """Four stages of 9x28; the output's fused (j, i.inner) loop unrolled, T1 computed at it."""
    H, W = 9, 28
    A = te.placeholder((H, W), name="A")
    T0 = te.compute((H, W), lambda i, j: A[i, j] * 1.5 + 1.0, name="T0")
    T1 = te.compute((H, W), lambda i, j: T0[i, j] / 3.0, name="T1")
    T2 = te.compute((H, W), lambda i, j: T1[i, j] * 1.5 + 1.0, name="T2")
    T3 = te.compute((H, W), lambda i, j: te.max(T2[i, j], 0.5), name="T3")
    s = te.create_schedule(T3.op)
    io, ii = s[T3].split(T3.op.axis[0], factor=7)
    s[T3].reorder(T3.op.axis[1], ii, io)
    fused = s[T3].fuse(T3.op.axis[1], ii)
    s[T3].unroll(fused)
    s[T0].compute_inline()
    s[T2].compute_inline()
    s[T1].compute_at(s[T3], fused)
    return s, A, T3


def test_an_unrolled_loop_holding_loop_nests_and_storage_stays_a_loop():
    s, A, T3 = _chain()
    f = minitvm.lower(s, [A, T3])
    outer = _loops(f)[-1]                       # post order: the outermost loop comes last
    assert outer.loop_var.name == "j.i.inner.fused" and outer.kind == "serial"
    assert len(_loops(f)) == 3                  # not 196 copies of T1's and T3's inner loops
    a = np.random.default_rng(0).standard_normal((9, 28)).astype("float32")
    np.testing.assert_allclose(build_run(s, [A, T3], a), np.maximum((a * 1.5 + 1) / 3 * 1.5 + 1, 0.5),
                               rtol=1e-6)


def test_small_unrolled_loops_are_still_copied():
    A = te.placeholder((8, 4), name="A")
    B = te.compute((8, 4), lambda i, j: A[i, j] + 1.0, name="B")
    s = te.create_schedule(B.op)
    s[B].unroll(B.op.axis[1])
    f = minitvm.lower(s, [A, B])
    assert [lp.loop_var.name for lp in _loops(f)] == ["i"]


def test_copies_past_the_node_budget_stay_a_loop(monkeypatch):
    monkeypatch.setattr(unroll, "MAX_UNROLLED_NODES", 40)
    A = te.placeholder((8, 4), name="A")
    B = te.compute((8, 4), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    s = te.create_schedule(B.op)
    s[B].unroll(B.op.axis[1])
    f = minitvm.lower(s, [A, B])
    assert [(lp.loop_var.name, lp.kind) for lp in _loops(f)] == [("j", "serial"), ("i", "serial")]
