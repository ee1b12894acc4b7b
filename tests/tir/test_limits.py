"""minitvm.tir.limits: how deep and how large a tree minitvm compiles, and what happens past it.

#17 R2 (a 500-term sum) and R3 (200 stages at root) used to end in a raw RecursionError.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.codegen.cuda import codegen_cuda
from minitvm.errors import LimitError, ScheduleError
from minitvm.lowering.pipeline import lower_device
from minitvm.testing import build_run
from minitvm.tir import expr as E
from minitvm.tir import limits
from minitvm.tir.stmt import Buffer, BufferStore, For, PrimFunc
from minitvm.tir.transform.vectorize import vectorize_loops


def test_tree_shape_counts_shared_nodes_as_often_as_they_are_used():
    x = E.Var("x", "float32")
    e = x
    for _ in range(40):
        e = e * e                       # 41 objects, a tree of 2**41 - 1 nodes
    assert limits.tree_shape(e) == (41, 2 ** 41 - 1)


def test_deep_recursion_raises_the_limit_while_it_runs_and_restores_it():
    before = sys.getrecursionlimit()
    seen = []

    @limits.deep_recursion("outer")
    def outer():
        seen.append(sys.getrecursionlimit())
        inner()

    @limits.deep_recursion("inner")
    def inner():
        seen.append(sys.getrecursionlimit())

    outer()
    assert seen[0] == seen[1] >= limits.MAX_DEPTH * limits._FRAMES_PER_LEVEL
    assert sys.getrecursionlimit() == before


def test_a_recursion_error_past_the_checks_becomes_a_limit_error():
    def forever(n):
        return forever(n + 1)

    @limits.deep_recursion("walking the moon")
    def walk():
        forever(0)

    with pytest.raises(LimitError, match="walking the moon: the program nests too deeply"):
        walk()


def _sum_chain(depth, n=16):
    """B[i] = A[i] + A[i]*1 + A[i]*2 + ...: an expression ``depth`` levels deep, leaning left."""
    A = te.placeholder((n,), name="A")

    def body(i):
        e = A[i]
        for t in range(1, depth - 1):
            e = e + A[i] * float(t)
        return e

    return A, te.compute((n,), body, name="B")


@pytest.mark.parametrize("what", ["llvm", "cuda", "print"])
def test_frames_per_level_cover_every_walker(monkeypatch, what):
    """The recursion limit deep_recursion sets, scaled down to a 1,500-deep expression, is enough
    for lowering, both code generators and the printer."""
    depth = 1500
    monkeypatch.setattr(limits, "_HEADROOM", limits._FRAMES_PER_LEVEL * depth + 2_000)
    A, B = _sum_chain(depth)
    s = te.create_schedule(B.op)
    if what == "llvm":
        a = np.random.default_rng(0).standard_normal(16).astype("float32")
        got = build_run(s, [A, B], a)
        np.testing.assert_allclose(got, a * (1 + sum(range(1, depth - 1))), rtol=1e-4)
    elif what == "cuda":
        bx, tx = s[B].split(B.op.axis[0], factor=16)
        s[B].bind(bx, te.thread_axis("blockIdx.x"))
        s[B].bind(tx, te.thread_axis("threadIdx.x"))
        f = minitvm.lower(s, [A, B], target="cuda")
        source, _, _ = codegen_cuda(lower_device([f], "cuda"))
        assert "__global__" in source
    else:
        assert str(minitvm.lower(s, [A, B])).count("A[i]") == depth - 1


def test_a_500_term_sum_builds():
    """R2."""
    A, B = _sum_chain(500)
    a = np.random.default_rng(1).standard_normal(16).astype("float32")
    got = build_run(te.create_schedule(B.op), [A, B], a)
    np.testing.assert_allclose(got, a * (1 + sum(range(1, 499))), rtol=1e-5)


def test_max_depth_lowers_and_prints_in_a_fresh_process():
    """At MAX_DEPTH itself, under Python's default recursion limit and the main thread's stack
    (C frames too: a walker that recursed through C at every level would crash here), with
    every kind of node that nests: arithmetic, calls, casts, min/max and selects."""
    code = textwrap.dedent("""
        import sys
        from minitvm import te, lower
        from minitvm.codegen.llvm import codegen_llvm
        from minitvm.tir.limits import MAX_DEPTH, tree_shape
        assert sys.getrecursionlimit() == 1000
        A = te.placeholder((4,), name="A")
        steps = [lambda x, a: x + a, lambda x, a: te.exp(x), lambda x, a: a - x,
                 lambda x, a: x.astype("float64").astype("float32"), lambda x, a: te.max(x, a),
                 lambda x, a: te.select(a > 0.5, x, a * 2.0)]
        def body(i):
            x = A[i]
            for k in range((MAX_DEPTH - 10) * 6 // 7):   # 7 levels per 6 steps
                x = steps[k % len(steps)](x, A[i])
            return x
        B = te.compute((4,), body, name="B")
        depth = tree_shape(B.op.body[0])[0]
        assert MAX_DEPTH - 20 < depth <= MAX_DEPTH, depth
        f = lower(te.create_schedule(B.op), [A, B])
        assert "fadd" in codegen_llvm([f]).ir
        assert str(f).count("exp(") > MAX_DEPTH // 10
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_deeper_than_max_depth_is_refused_naming_the_compute():
    A = te.placeholder((4,), name="A")

    def body(i):
        x = A[i]
        for _ in range(limits.MAX_DEPTH + 5):
            x = x + 1.0
        return x

    with pytest.raises(LimitError, match=rf"compute Deep: the expression nests {limits.MAX_DEPTH + 7} levels "
                                         rf"deep; minitvm compiles up to {limits.MAX_DEPTH}"):
        te.compute((4,), body, name="Deep")


def test_an_exponential_tree_is_refused_at_once_naming_the_compute():
    """x = x * x thirty times: 31 objects, 2**31 - 1 nodes as a tree (it used to hang)."""
    A = te.placeholder((4,), name="A")

    def body(i):
        x = A[i]
        for _ in range(30):
            x = x * x
        return x

    with pytest.raises(LimitError, match="compute Square: the expression has 3221225471 nodes"):
        te.compute((4,), body, name="Square")


def test_inlining_that_doubles_at_every_stage_is_refused_naming_the_stage(monkeypatch):
    monkeypatch.setattr(limits, "MAX_NODES", 5_000)     # the same check, reached sooner
    A = te.placeholder((4,), name="A")
    t = A
    stages = []
    for k in range(24):
        t = _square(t, f"S{k}")
        stages.append(t)
    s = te.create_schedule(t.op)
    for st in stages[:-1]:
        s[st].compute_inline()
    with pytest.raises(LimitError, match=r"stage S\d+ with its inlined producers: the expression has"):
        minitvm.lower(s, [A, t])


def _square(p, name):
    return te.compute(p.shape, lambda i: p[i] * p[i], name=name)


def _plus_one(p, name):
    return te.compute(p.shape, lambda i: p[i] + 1.0, name=name)


def _chain(n):
    A = te.placeholder((16,), name="A")
    t = A
    for k in range(n):
        t = _plus_one(t, f"S{k}")
    return A, t


def test_a_chain_of_300_root_stages_builds():
    """R3: every root stage's storage encloses the stages after it, 600 statements deep."""
    A, t = _chain(300)
    a = np.random.default_rng(2).standard_normal(16).astype("float32")
    np.testing.assert_allclose(build_run(te.create_schedule(t.op), [A, t], a), a + 300, rtol=1e-5)


def test_nested_if_then_else_reading_tensors_in_its_conditions_is_refused_not_hung():
    """Each read under k conditions that read memory is guarded by all k, so the guards nest
    2**k deep; past MAX_NODES that is an error, at 30 levels in well under a second."""
    A = te.placeholder((16,), name="A")

    def body(i):
        x = A[i]
        for t in range(30):
            x = te.if_then_else(A[i] > float(t), x, A[i] * 2.0)
        return x

    B = te.compute((16,), body, name="B")
    with pytest.raises(LimitError, match="if_then_else lowering: .* use te.select"):
        minitvm.lower(te.create_schedule(B.op), [A, B])


def test_a_hand_built_vector_loop_past_the_lane_limit_is_refused():
    """R4 for IR built without a schedule: the vectorizer names the loop."""
    n = 65536
    a = Buffer("a", (n,), "float32")
    i = E.Var("i")
    loop = For(i, E.const(0), E.const(n), "vectorized", BufferStore(a, E.FloatImm("float32", 1.0), (i,)))
    with pytest.raises(ScheduleError, match=r"loop i: vectorize of 65536 lanes; minitvm vectorizes up to 1024"):
        vectorize_loops(PrimFunc("f", (a,), loop, {}).body)
