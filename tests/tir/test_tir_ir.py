"""The loop IR: printing (TVM-style text), structural equality, substitution, and what the
lowering passes leave behind (flat indices, ramps from vectorize, copies from unroll)."""
import re

import numpy as np
import pytest

import minitvm
from minitvm import te, tir
from minitvm.tir import expr as E
from minitvm.tir import stmt as S
from minitvm.testing import build_run, rand


def vector_add(n=1024):
    a = te.placeholder((n,), name="A")
    b = te.placeholder((n,), name="B")
    c = te.compute((n,), lambda i: a[i] + b[i], name="C")
    return a, b, c


# ----------------------------------------------------------------------------------------
# printer
# ----------------------------------------------------------------------------------------
def test_lowered_text_reads_like_tvm():
    a, b, c = vector_add()
    f = minitvm.lower(te.create_schedule(c.op), [a, b, c], simple_mode=True)
    text = str(f)
    assert "for (i, 0, 1024) {" in text
    assert "C[i] = (A[i] + B[i])" in text


def test_printed_function_signature_and_nesting():
    a = te.placeholder((4, 8), "int8", name="A")
    b = te.compute((4, 8), lambda i, j: a[i, j] * 2, name="B")
    text = str(minitvm.lower(te.create_schedule(b.op), [a, b]))
    assert text.splitlines() == [
        "primfn main(A: Buffer(int8, [4, 8]), B: Buffer(int8, [4, 8])) {",
        "  for (i, 0, 4) {",
        "    for (j, 0, 8) {",
        "      B[((i * 8) + j)] = (A[((i * 8) + j)] * 2i8)",
        "    }",
        "  }",
        "}",
    ]


def test_simple_mode_prints_body_only():
    a, b, c = vector_add()
    s = te.create_schedule(c.op)
    full = str(minitvm.lower(s, [a, b, c], simple_mode=False))
    simple = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert full.startswith("primfn main(")
    assert simple.startswith("for (i, 0, 1024) {")


def test_expression_printing():
    x, y = te.var("x"), te.var("y")
    assert str(x * 32 + y) == "((x * 32) + y)"
    assert str(te.min(x, y)) == "min(x, y)"
    assert str(x // 4 - x % 4) == "((x // 4) - (x % 4))"
    assert str(te.const(1.5)) == "1.5f"
    assert str(te.const(3, "int64")) == "3i64"
    assert str(te.const(True)) == "True"
    assert str(x.astype("float32")) == "float32(x)"
    assert str(te.if_then_else(x < y, x, y)) == "if_then_else((x < y), x, y)"
    assert str(E.Ramp(x, te.const(1), 4)) == "ramp(x, 1, 4)"
    assert str(E.Broadcast(te.const(0.0), 8)) == "broadcast(0.0f, 8)"


def test_printed_allocate_reduction_and_guard():
    a = te.placeholder((10, 6), name="A")
    k = te.reduce_axis((0, 6), name="k")
    r = te.compute((10,), lambda i: te.sum(a[i, k], axis=k), name="R")
    o = te.compute((10,), lambda i: r[i] * 2.0, name="O")
    s = te.create_schedule(o.op)
    io, ii = s[o].split(o.op.axis[0], factor=4)
    s[r].compute_at(s[o], io)
    text = str(minitvm.lower(s, [a, o], simple_mode=True))
    assert "allocate R[float32 * 4], storage_scope = global" in text
    assert "R[i] = 0.0f" in text
    assert "for (k, 0, 6) {" in text
    assert "if (likely(" in text


def test_thread_binding_prints_attr_lines():
    a, b, c = vector_add()
    s = te.create_schedule(c.op)
    bx, tx = s[c].split(c.op.axis[0], factor=64)
    s[c].bind(bx, te.thread_axis("blockIdx.x"))
    s[c].bind(tx, te.thread_axis("threadIdx.x"))
    text = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert "// attr [iter_var(blockIdx.x, blockIdx.x)] thread_extent = 16" in text
    assert "// attr [iter_var(threadIdx.x, threadIdx.x)] thread_extent = 64" in text
    assert "C[((blockIdx.x * 64) + threadIdx.x)]" in text


def test_lowered_function_structure():
    a, b, c = vector_add(16)
    f = minitvm.lower(te.create_schedule(c.op), [a, b, c], name="vadd")
    assert isinstance(f, S.PrimFunc) and f.name == "vadd"
    assert [p.name for p in f.params] == ["A", "B", "C"]
    assert isinstance(f.body, S.For) and f.body.extent.value == 16
    store = f.body.body
    assert isinstance(store, S.BufferStore) and store.buffer is f.params[2]
    assert len(store.indices) == 1                      # flattened: one index per access


def test_symbolic_shape_vars_recorded():
    n = te.size_var("n")
    a = te.placeholder((n, 3), name="A")
    b = te.compute((n, 3), lambda i, j: a[i, j] + 1.0, name="B")
    f = minitvm.lower(te.create_schedule(b.op), [a, b])
    assert [v.name for v in f.attrs["shape_vars"]] == ["n"]
    assert "for (i, 0, n) {" in str(f)
    assert "B[((i * 3) + j)]" in str(f)


# ----------------------------------------------------------------------------------------
# structural equality, substitution, visitors
# ----------------------------------------------------------------------------------------
def test_structural_equal():
    x, y = te.var("x"), te.var("y")
    assert tir.structural_equal(x * 2 + 1, x * 2 + 1)
    assert not tir.structural_equal(x * 2 + 1, y * 2 + 1)          # variables by identity
    assert not tir.structural_equal(x * 2 + 1, x * 2 + 2)
    assert not tir.structural_equal(x + 1, x - 1)
    assert not tir.structural_equal(te.const(1, "int32"), te.const(1, "int64"))
    assert not tir.structural_equal(x, te.var("x"))                # same name, different variable
    a = te.placeholder((4,), name="A")
    assert tir.structural_equal(a[x] + 1.0, a[x] + 1.0)


def test_structural_equal_statements():
    x = te.var("x")
    buf = S.Buffer("A", (8,), "float32")
    s1 = S.For(x, te.const(0), te.const(8), "serial", S.BufferStore(buf, te.const(1.0), (x,)))
    s2 = S.For(x, te.const(0), te.const(8), "serial", S.BufferStore(buf, te.const(1.0), (x,)))
    s3 = S.For(x, te.const(0), te.const(8), "unrolled", S.BufferStore(buf, te.const(1.0), (x,)))
    assert tir.structural_equal(s1, s2)
    assert not tir.structural_equal(s1, s3)


def test_expression_python_equality_is_identity():
    """``a == b`` builds an EQ node; its truth value is identity (dict keys keep working)."""
    x = te.var("x")
    eq = x == x
    assert isinstance(eq, E.EQ) and bool(eq)
    assert not bool(x == te.var("x"))
    d = {x: 1}
    assert d[x] == 1


def test_substitute():
    x, y = te.var("x"), te.var("y")
    out = tir.substitute(x * 2 + y, {x: y + 1})
    assert tir.structural_equal(out, (y + 1) * 2 + y)
    same = x * 2 + y
    assert tir.substitute(same, {te.var("z"): y}) is same         # untouched trees are shared


def test_substitute_in_statement():
    x, i = te.var("x"), te.var("i")
    buf = S.Buffer("A", (8,), "int32")
    stmt = S.BufferStore(buf, x * 3, (i,))
    out = tir.substitute(stmt, {x: te.const(7), i: te.const(2)})
    assert str(out) == "A[2] = (7 * 3)"


def test_collect_vars_and_uses_var():
    x, y, z = te.var("x"), te.var("y"), te.var("z")
    e = te.max(x + y, 3)
    assert tir.collect_vars(e) == {x, y}
    assert tir.uses_var(e, x) and not tir.uses_var(e, z)


def test_mutator_rewrites_and_visitor_counts():
    x = te.var("x")
    e = (x + 1) * (x + 1)

    class Count(tir.Visitor):
        n = 0

        def visit_Var(self, node):
            Count.n += 1

    Count().visit(e)
    assert Count.n == 2

    class PlusToMinus(tir.Mutator):
        def visit_Add(self, node):
            return E.Sub(self.visit(node.a), self.visit(node.b))

    assert str(PlusToMinus().visit(e)) == "((x - 1) * (x - 1))"


# ----------------------------------------------------------------------------------------
# passes visible in the output: vectorize, unroll, flatten
# ----------------------------------------------------------------------------------------
def test_vectorize_produces_ramp_in_printed_ir():
    a, b, c = vector_add(64)
    s = te.create_schedule(c.op)
    xo, xi = s[c].split(c.op.axis[0], factor=8)
    s[c].vectorize(xi)
    text = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert "C[ramp((i.outer * 8), 1, 8)] = (A[ramp((i.outer * 8), 1, 8)] + B[ramp((i.outer * 8), 1, 8)])" in text
    assert "for (i.inner" not in text
    rng = np.random.default_rng(0)
    av, bv = rand(rng, 64), rand(rng, 64)
    np.testing.assert_allclose(build_run(s, [a, b, c], av, bv), av + bv, rtol=1e-6)


def test_vectorize_broadcasts_loop_invariant_values():
    a = te.placeholder((8, 16), name="A")
    v = te.placeholder((8,), name="V")
    c = te.compute((8, 16), lambda i, j: a[i, j] * v[i], name="C")
    s = te.create_schedule(c.op)
    s[c].vectorize(c.op.axis[1])
    text = str(minitvm.lower(s, [a, v, c], simple_mode=True))
    assert "broadcast(V[i], 16)" in text


def test_vectorize_lowered_ramp_nodes():
    a, b, c = vector_add(32)
    s = te.create_schedule(c.op)
    s[c].vectorize(c.op.axis[0])
    f = minitvm.lower(s, [a, b, c])
    store = f.body
    assert isinstance(store, S.BufferStore)
    idx = store.indices[0]
    assert isinstance(idx, E.Ramp) and idx.lanes == 32 and E.is_const_int(idx.stride, 1)
    assert store.value.dtype == "float32x32"


def test_unrolled_loop_appears_as_copies():
    a, b, c = vector_add(12)
    s = te.create_schedule(c.op)
    xo, xi = s[c].split(c.op.axis[0], factor=3)
    s[c].unroll(xi)
    text = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert "for (i.inner" not in text
    assert "C[(i.outer * 3)] = " in text
    assert "C[((i.outer * 3) + 1)] = " in text
    assert "C[((i.outer * 3) + 2)] = " in text
    assert len(re.findall(r"^\s+C\[", text, re.M)) == 3


def test_unroll_keeps_for_when_not_explicit():
    """Lowered for CUDA (no explicit unrolling): the loop stays, marked unrolled."""
    a, b, c = vector_add(12)
    s = te.create_schedule(c.op)
    xo, xi = s[c].split(c.op.axis[0], factor=3)
    s[c].unroll(xi)
    s[c].bind(xo, te.thread_axis("threadIdx.x"))
    f = minitvm.lower(s, [a, b, c], target="cuda")
    assert "unrolled for (i.inner, 0, 3) {" in str(f)


def test_flatten_uses_region_relative_indices():
    """An intermediate computed per row is stored in a one-row buffer indexed from 0."""
    a = te.placeholder((6, 5), name="A")
    b = te.compute((6, 5), lambda i, j: a[i, j] + 1.0, name="B")
    c = te.compute((6, 5), lambda i, j: b[i, 4 - j], name="C")
    s = te.create_schedule(c.op)
    s[b].compute_at(s[c], c.op.axis[0])
    text = str(minitvm.lower(s, [a, c], simple_mode=True))
    assert "allocate B[float32 * 5]" in text
    assert "B[j] = (A[((i * 5) + j)] + 1.0f)" in text
    assert re.search(r"C\[\(\(i \* 5\) \+ j\)\] = B\[(\(4 - j\)|\(\(j \* -1\) \+ 4\))\]", text), text
    rng = np.random.default_rng(1)
    av = rand(rng, (6, 5))
    np.testing.assert_allclose(build_run(s, [a, c], av), (av + 1)[:, ::-1], rtol=1e-6)


def test_simplifier_removes_trivial_guards_and_loops():
    a = te.placeholder((16,), name="A")
    b = te.compute((16,), lambda i: a[i] * 2.0, name="B")
    s = te.create_schedule(b.op)
    xo, xi = s[b].split(b.op.axis[0], factor=16)          # one outer iteration: loop disappears
    text = str(minitvm.lower(s, [a, b], simple_mode=True))
    assert "i.outer" not in text and "if" not in text
    assert "for (i.inner, 0, 16) {" in text
