"""tensorize: loop nests replaced by tensor intrinsics, and the errors when they don't match."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import TensorizeError
from minitvm.tir import expr as E
from minitvm.tir.stmt import For
from minitvm.topi.generic.tensor_intrin import dp4a

rng = np.random.default_rng(7)


def int8_matmul_nt(M, N, K):
    A = te.placeholder((M, K), "int8", "A")
    B = te.placeholder((N, K), "int8", "B")
    k = te.reduce_axis((0, K), "k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k].astype("int32") * B[j, k].astype("int32"), axis=k),
                   name="C")
    return A, B, C


def run_int8(s, A, B, C):
    f = minitvm.build(s, [A, B, C], "llvm")
    a = rng.integers(-128, 128, [int(x.value) for x in A.shape], dtype=np.int8)
    b = rng.integers(-128, 128, [int(x.value) for x in B.shape], dtype=np.int8)
    c = np.full([int(x.value) for x in C.shape], -777, np.int32)
    f(a, b, c)
    np.testing.assert_array_equal(c, a.astype(np.int32) @ b.astype(np.int32).T)
    return f


def test_dp4a_update_under_outer_reduction():
    A, B, C = int8_matmul_nt(8, 12, 32)
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].tensorize(ki, dp4a())
    text = str(minitvm.lower(s, [A, B, C]))
    assert "dp4a(" in text and "k.inner" not in text
    run_int8(s, A, B, C)


def test_dp4a_whole_reduction_inside_uses_reset():
    A, B, C = int8_matmul_nt(5, 6, 4)
    s = te.create_schedule(C.op)
    s[C].tensorize(C.op.reduce_axis[0], dp4a())
    text = str(minitvm.lower(s, [A, B, C]))
    assert text.count("dp4a(") == 1
    run_int8(s, A, B, C)


def test_tensorize_rejects_wrong_extent():
    A, B, C = int8_matmul_nt(4, 4, 16)
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=8)
    s[C].tensorize(ki, dp4a())
    with pytest.raises(TensorizeError, match="extent 8"):
        minitvm.lower(s, [A, B, C])


def test_tensorize_rejects_wrong_dtype():
    A = te.placeholder((4, 16), "int16", "A")
    B = te.placeholder((4, 16), "int16", "B")
    k = te.reduce_axis((0, 16), "k")
    C = te.compute((4, 4), lambda i, j: te.sum(A[i, k].astype("int32") * B[j, k].astype("int32"), axis=k))
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=4)
    s[C].tensorize(ki, dp4a())
    with pytest.raises(TensorizeError, match="int16"):
        minitvm.lower(s, [A, B, C])


def test_tensorize_rejects_reversed_index_pattern():
    A, B, _ = int8_matmul_nt(4, 4, 16)
    k = te.reduce_axis((0, 16), "k")
    C = te.compute((4, 4), lambda i, j: te.sum(
        A[i, 15 - k].astype("int32") * B[j, k].astype("int32"), axis=k), name="C")
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=4)
    s[C].tensorize(ki, dp4a())
    with pytest.raises(TensorizeError, match="pattern|follow"):
        minitvm.lower(s, [A, B, C])


def test_tensorize_rejects_other_computation():
    A, B, _ = int8_matmul_nt(4, 4, 16)
    k = te.reduce_axis((0, 16), "k")
    C = te.compute((4, 4), lambda i, j: te.sum(A[i, k].astype("int32") + B[j, k].astype("int32"), axis=k))
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=4)
    s[C].tensorize(ki, dp4a())
    with pytest.raises(TensorizeError, match="computes"):
        minitvm.lower(s, [A, B, C])


def test_user_declared_float_dot4_intrinsic():
    """A user intrinsic: 4-wide float dot product written as explicit scalar code."""
    x = te.placeholder((4,), "float32", "x")
    y = te.placeholder((4,), "float32", "y")
    r = te.reduce_axis((0, 4), "r")
    z = te.compute((1,), lambda i: te.sum(x[r] * y[r], axis=r), name="z")
    calls = []

    def lower_fn(ins, outs):
        calls.append((ins, outs))
        acc = outs[0].load()
        for lane in range(4):
            acc = acc + ins[0].load([lane]) * ins[1].load([lane])
        update = outs[0].store(acc)
        return update, outs[0].store(E.const(0.0)), update

    dot4 = te.decl_tensor_intrin(z.op, lower_fn, name="dot4")
    n, K = 6, 12
    A = te.placeholder((n, K), "float32", "A")
    B = te.placeholder((K,), "float32", "B")
    k = te.reduce_axis((0, K), "k")
    C = te.compute((n,), lambda i: te.sum(A[i, k] * B[k], axis=k), name="C")
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=4)
    s[C].tensorize(ki, dot4)
    f = minitvm.build(s, [A, B, C], "llvm")
    assert calls and calls[0][0][0].strides[-1].value == 1
    a = rng.standard_normal((n, K)).astype("float32")
    b = rng.standard_normal(K).astype("float32")
    c = np.full(n, np.nan, "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5)


def test_decl_tensor_intrin_errors():
    x = te.placeholder((4,), "float32", "x")
    z = te.compute((4,), lambda i: x[i] * 2.0)
    with pytest.raises(minitvm.errors.ScheduleError, match="callable"):
        te.decl_tensor_intrin(z.op, None)
    zz = te.compute((4,), lambda i: z[i] + 1.0)
    with pytest.raises(minitvm.errors.ScheduleError, match="placeholder"):
        te.decl_tensor_intrin(zz.op, lambda i, o: None)


def _scale2_intrin():
    """A 2-D intrinsic: ``z[i, j] = 2 * x[i, j]`` over 4 x 4, as explicit loops."""
    x = te.placeholder((4, 4), "int32", "x")
    z = te.compute((4, 4), lambda i, j: x[i, j] * 2, name="z")

    def lower_fn(ins, outs):
        i, j = E.Var("ii"), E.Var("jj")
        store = outs[0].store(ins[0].load([i, j]) * E.const(2), [i, j])
        return For(i, E.const(0), E.const(4), "serial", For(j, E.const(0), E.const(4), "serial", store))

    return te.decl_tensor_intrin(z.op, lower_fn, name="scale2")


def test_4d_stage_feeds_a_2d_intrinsic_through_its_non_unit_axes():
    """C[a, b, c, d] with c of extent 1: the intrinsic's (i, j) pair with (b, d)."""
    A = te.placeholder((3, 4, 1, 4), "int32", "A")
    C = te.compute((3, 4, 1, 4), lambda a, b, c, d: A[a, b, c, d] * 2, name="C")
    s = te.create_schedule(C.op)
    s[C].tensorize(s[C].op.axis[1], _scale2_intrin())
    text = str(minitvm.lower(s, [A, C]))
    assert "for (ii, 0, 4)" in text and "for (b," not in text and "for (d," not in text
    f = minitvm.build(s, [A, C], "llvm")
    a = rng.integers(-1000, 1000, (3, 4, 1, 4), dtype=np.int32)
    c = np.full((3, 4, 1, 4), -7, np.int32)
    f(a, c)
    np.testing.assert_array_equal(c, a * 2)


def _rowdot_intrin(reset_reads_input):
    """``z[i] = sum_r x[i, r] * y[r]`` over 4 x 4 with its own reset (which may wrongly read x)."""
    x = te.placeholder((4, 4), "int32", "x")
    y = te.placeholder((4,), "int32", "y")
    r = te.reduce_axis((0, 4), "r")
    z = te.compute((4,), lambda i: te.sum(x[i, r] * y[r], axis=r), name="z")

    def lower_fn(ins, outs):
        i = E.Var("ii")
        acc = outs[0].load([i])
        for lane in range(4):
            acc = acc + ins[0].load([i, E.const(lane)]) * ins[1].load([E.const(lane)])
        update = For(i, E.const(0), E.const(4), "serial", outs[0].store(acc, [i]))
        init = ins[0].load([i, E.const(0)]) * E.const(0) if reset_reads_input else E.const(0)
        reset = For(i, E.const(0), E.const(4), "serial", outs[0].store(init, [i]))
        return update, reset, update

    return te.decl_tensor_intrin(z.op, lower_fn, name="rowdot")


def _rowdot_inside_the_reduction(reset_reads_input):
    """C[n] = sum_k A[n, k] * B[k], the intrinsic placed inside the outer k loop: its reset runs alone."""
    A = te.placeholder((8, 12), "int32", "A")
    B = te.placeholder((12,), "int32", "B")
    k = te.reduce_axis((0, 12), "k")
    C = te.compute((8,), lambda n: te.sum(A[n, k] * B[k], axis=k), name="C")
    s = te.create_schedule(C.op)
    no, ni = s[C].split(C.op.axis[0], factor=4)
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(no, ko, ni, ki)
    s[C].tensorize(ni, _rowdot_intrin(reset_reads_input))
    return s, [A, B, C]


def test_tensorized_reset_inside_the_reduction_writes_only_the_output():
    s, (A, B, C) = _rowdot_inside_the_reduction(False)
    f = minitvm.build(s, [A, B, C], "llvm")
    a = rng.integers(-1000, 1000, (8, 12), dtype=np.int32)
    b = rng.integers(-1000, 1000, 12, dtype=np.int32)
    c = np.full(8, -7, np.int32)
    f(a, b, c)
    np.testing.assert_array_equal(c, a @ b)


def test_tensorized_reset_that_reads_an_input_is_refused():
    s, tensors = _rowdot_inside_the_reduction(True)
    with pytest.raises(TensorizeError, match="rowdot: its reset reads an input; a reset may only write the output"):
        minitvm.lower(s, tensors)
