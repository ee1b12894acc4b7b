"""Loop-shaping primitives: split, tile, reorder, fuse, unroll, vectorize, parallel, pragma.

Every schedule is built for LLVM and checked against numpy; outputs are poisoned first so a
loop that misses iterations (or a guard that drops them) shows as NaN / marker values.
"""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.testing import build_run, rand


def elementwise_2d(n=37, m=50, dtype="float32"):
    a = te.placeholder((n, m), dtype, name="A")
    b = te.compute((n, m), lambda i, j: a[i, j] * 3 + j.astype(dtype), name="B")
    return a, b


def ref_2d(av):
    with np.errstate(over="ignore"):
        return av * av.dtype.type(3) + np.arange(av.shape[1]).astype(av.dtype)


def run_2d(s, a, b, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    n, m = [int(x.value) for x in a.shape]
    av = rand(rng, (n, m), dtype) if dtype != "float32" else rand(rng, (n, m))
    got = build_run(s, [a, b], av)
    if dtype == "float32":   # a * 3 + j may be one fused multiply-add (one rounding instead of two)
        np.testing.assert_allclose(got, ref_2d(av), rtol=1e-6, atol=1e-6)
    else:
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(got, ref_2d(av))    # int8 wraps, like numpy


def lowered(s, args):
    return str(minitvm.lower(s, args, simple_mode=True))


# ----------------------------------------------------------------------------------------
# split
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [1, 2, 7, 32, 37, 64])
def test_split_by_factor(factor):
    a, b = elementwise_2d()
    s = te.create_schedule(b.op)
    xo, xi = s[b].split(b.op.axis[0], factor=factor)
    assert s[b].leaf_iter_vars[:2] == [xo, xi]
    run_2d(s, a, b)


@pytest.mark.parametrize("nparts", [1, 3, 5, 37, 50])
def test_split_by_nparts(nparts):
    a, b = elementwise_2d()
    s = te.create_schedule(b.op)
    xo, xi = s[b].split(b.op.axis[0], nparts=nparts)
    text = lowered(s, [a, b])
    assert f"for (i.outer, 0, {nparts}) {{" in text or nparts == 1
    run_2d(s, a, b)


def test_split_divisible_has_no_guard():
    a = te.placeholder((128,), name="A")
    b = te.compute((128,), lambda i: a[i] + 1.0, name="B")
    s = te.create_schedule(b.op)
    s[b].split(b.op.axis[0], factor=32)
    text = lowered(s, [a, b])
    assert "for (i.outer, 0, 4) {" in text and "for (i.inner, 0, 32) {" in text
    assert "if" not in text


@pytest.mark.parametrize("factor,outer", [(32, 4), (7, 15)])
def test_non_divisible_split_is_guarded(factor, outer):
    """100 split by 32 -> 4 x 32 (28 extra iterations), by 7 -> 15 x 7: a likely(...) guard."""
    rng = np.random.default_rng(1)
    a = te.placeholder((100,), "int32", name="A")
    b = te.compute((100,), lambda i: a[i] * 2 - i, name="B")
    s = te.create_schedule(b.op)
    s[b].split(b.op.axis[0], factor=factor)
    text = lowered(s, [a, b])
    assert f"for (i.outer, 0, {outer}) {{" in text
    assert "if (likely(" in text and "< 100" in text
    av = rand(rng, 100, "int32", -10**6, 10**6)
    got = build_run(s, [a, b], av)
    np.testing.assert_array_equal(got, av * 2 - np.arange(100, dtype="int32"))


def test_nested_non_divisible_splits():
    a, b = elementwise_2d(n=41, m=23)
    s = te.create_schedule(b.op)
    xo, xi = s[b].split(b.op.axis[0], factor=6)
    xio, xii = s[b].split(xi, factor=4)            # 6 = 4 + 2: the inner split overhangs too
    yo, yi = s[b].split(b.op.axis[1], nparts=5)
    s[b].reorder(yo, xo, xio, yi, xii)
    run_2d(s, a, b)


def test_split_reduce_axis_non_divisible():
    rng = np.random.default_rng(2)
    a = te.placeholder((9, 100), name="A")
    k = te.reduce_axis((0, 100), name="k")
    b = te.compute((9,), lambda i: te.sum(a[i, k], axis=k), name="B")
    s = te.create_schedule(b.op)
    ko, ki = s[b].split(k, factor=32)
    s[b].reorder(ko, b.op.axis[0], ki)             # reduction outer loop outside the data axis
    av = rand(rng, (9, 100))
    np.testing.assert_allclose(build_run(s, [a, b], av), av.sum(axis=1), rtol=1e-5)


# ----------------------------------------------------------------------------------------
# tile, reorder
# ----------------------------------------------------------------------------------------
def test_tile_orders_outer_then_inner():
    a, b = elementwise_2d(64, 48)
    s = te.create_schedule(b.op)
    xo, yo, xi, yi = s[b].tile(b.op.axis[0], b.op.axis[1], 16, 8)
    assert s[b].leaf_iter_vars == [xo, yo, xi, yi]
    text = lowered(s, [a, b])
    nest = ["for (i.outer, 0, 4) {", "for (j.outer, 0, 6) {", "for (i.inner, 0, 16) {", "for (j.inner, 0, 8) {"]
    pos = [text.index(x) for x in nest]
    assert pos == sorted(pos)
    run_2d(s, a, b)


def test_tile_non_divisible():
    a, b = elementwise_2d(37, 50)
    s = te.create_schedule(b.op)
    s[b].tile(b.op.axis[0], b.op.axis[1], 8, 16)
    run_2d(s, a, b)


def test_reorder_swaps_loops():
    a, b = elementwise_2d(12, 10)
    s = te.create_schedule(b.op)
    i, j = b.op.axis
    s[b].reorder(j, i)
    text = lowered(s, [a, b])
    assert text.index("for (j, 0, 10) {") < text.index("for (i, 0, 12) {")
    run_2d(s, a, b)


def test_reorder_partial_keeps_other_positions():
    a = te.placeholder((4, 5, 6), name="A")
    b = te.compute((4, 5, 6), lambda x, y, z: a[x, y, z] + 1.0, name="B")
    s = te.create_schedule(b.op)
    x, y, z = b.op.axis
    zo, zi = s[b].split(z, factor=2)
    s[b].reorder(zi, x)                            # only x and zi trade places
    assert s[b].leaf_iter_vars == [zi, y, zo, x]
    rng = np.random.default_rng(3)
    av = rand(rng, (4, 5, 6))
    np.testing.assert_allclose(build_run(s, [a, b], av), av + 1, rtol=1e-6)


# ----------------------------------------------------------------------------------------
# fuse
# ----------------------------------------------------------------------------------------
def test_fuse_two_axes():
    a, b = elementwise_2d(7, 9)
    s = te.create_schedule(b.op)
    f = s[b].fuse(*b.op.axis)
    assert s[b].leaf_iter_vars == [f]
    assert "for (i.j.fused, 0, 63) {" in lowered(s, [a, b])
    run_2d(s, a, b)


def test_fuse_then_split_non_divisible():
    a, b = elementwise_2d(7, 9)
    s = te.create_schedule(b.op)
    f = s[b].fuse(*b.op.axis)
    fo, fi = s[b].split(f, factor=10)              # 63 = 6 * 10 + 3
    run_2d(s, a, b, dtype="float32", seed=4)


def test_fuse_three_axes_and_split_vectorize():
    rng = np.random.default_rng(5)
    a = te.placeholder((3, 4, 8), "int32", name="A")
    b = te.compute((3, 4, 8), lambda x, y, z: a[x, y, z] - x * 100 + y * 10 + z, name="B")
    s = te.create_schedule(b.op)
    f = s[b].fuse(*b.op.axis)
    fo, fi = s[b].split(f, factor=8)
    s[b].vectorize(fi)
    assert "ramp(" in lowered(s, [a, b])
    av = rand(rng, (3, 4, 8), "int32", -1000, 1000)
    x, y, z = np.meshgrid(np.arange(3), np.arange(4), np.arange(8), indexing="ij")
    np.testing.assert_array_equal(build_run(s, [a, b], av), av - x * 100 + y * 10 + z)


def test_split_then_fuse_inner_with_next():
    a, b = elementwise_2d(12, 10)
    s = te.create_schedule(b.op)
    i, j = b.op.axis
    io, ii = s[b].split(i, factor=5)               # 12 = 3 * 5 - 3: guarded
    f = s[b].fuse(ii, j)
    assert s[b].leaf_iter_vars == [io, f]
    run_2d(s, a, b)


def test_fuse_reduce_axes():
    rng = np.random.default_rng(6)
    a = te.placeholder((5, 6, 7), name="A")
    r1 = te.reduce_axis((0, 6), name="r1")
    r2 = te.reduce_axis((0, 7), name="r2")
    b = te.compute((5,), lambda i: te.sum(a[i, r1, r2], axis=[r1, r2]), name="B")
    s = te.create_schedule(b.op)
    f = s[b].fuse(r1, r2)
    fo, fi = s[b].split(f, factor=8)
    av = rand(rng, (5, 6, 7))
    np.testing.assert_allclose(build_run(s, [a, b], av), av.sum(axis=(1, 2)), rtol=1e-5)


def test_fuse_single_axis_is_identity():
    a, b = elementwise_2d(4, 6)
    s = te.create_schedule(b.op)
    i = b.op.axis[0]
    assert s[b].fuse(i) is i
    run_2d(s, a, b)


# ----------------------------------------------------------------------------------------
# unroll, vectorize, parallel, pragma
# ----------------------------------------------------------------------------------------
def test_unroll_produces_copies():
    a = te.placeholder((16, 4), "int32", name="A")
    b = te.compute((16, 4), lambda i, j: a[i, j] + j, name="B")
    s = te.create_schedule(b.op)
    s[b].unroll(b.op.axis[1])
    text = lowered(s, [a, b])
    assert "for (j," not in text
    for k in range(1, 4):
        assert f"B[((i * 4) + {k})] = " in text
    rng = np.random.default_rng(7)
    av = rand(rng, (16, 4), "int32")
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(build_run(s, [a, b], av), av + np.arange(4, dtype="int32"))


def test_unroll_non_divisible_inner():
    a, b = elementwise_2d(10, 13)
    s = te.create_schedule(b.op)
    jo, ji = s[b].split(b.op.axis[1], factor=4)
    s[b].unroll(ji)
    run_2d(s, a, b)


def test_vectorize_produces_ramp_and_broadcast():
    a = te.placeholder((16, 32), name="A")
    b = te.compute((16, 32), lambda i, j: a[i, j] * 2.0, name="B")
    s = te.create_schedule(b.op)
    s[b].vectorize(b.op.axis[1])
    text = lowered(s, [a, b])
    assert "B[ramp((i * 32), 1, 32)] = (A[ramp((i * 32), 1, 32)] * broadcast(2.0f, 32))" in text
    rng = np.random.default_rng(8)
    av = rand(rng, (16, 32))
    np.testing.assert_allclose(build_run(s, [a, b], av), av * 2, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int8", "int32", "float32"])
def test_vectorize_split_inner(dtype):
    a, b = elementwise_2d(9, 64, dtype)
    s = te.create_schedule(b.op)
    jo, ji = s[b].split(b.op.axis[1], factor=16)
    s[b].vectorize(ji)
    assert "ramp(" in lowered(s, [a, b])
    run_2d(s, a, b, dtype)


def test_vectorize_non_divisible_falls_back_but_stays_correct():
    a, b = elementwise_2d(9, 50)
    s = te.create_schedule(b.op)
    jo, ji = s[b].split(b.op.axis[1], factor=8)    # guarded: the loop cannot be a plain vector op
    s[b].vectorize(ji)
    run_2d(s, a, b)


def test_vectorize_strided_read():
    """A transposed read: lanes with stride m (a gather) inside a vectorized loop."""
    rng = np.random.default_rng(9)
    a = te.placeholder((16, 24), name="A")
    b = te.compute((24, 16), lambda i, j: a[j, i] + 1.0, name="B")
    s = te.create_schedule(b.op)
    s[b].vectorize(b.op.axis[1])
    assert "ramp(i, 24, 16)" in lowered(s, [a, b])
    av = rand(rng, (16, 24))
    np.testing.assert_allclose(build_run(s, [a, b], av), av.T + 1, rtol=1e-6)


@pytest.mark.parametrize("rounding", ["TONEAREST", "UPWARD"])
def test_vectorize_requantize_lets_and_floor_division_of_values(rounding):
    """requantize binds lets and floor-divides int64 values: all of it becomes vector code
    (not a fallback loop), bit-exact against numpy."""
    from minitvm.topi import testing
    from minitvm.topi.nn.elemwise import quantize_multiplier, requantize
    a = te.placeholder((8, 16), "int32", "A")
    m, sh = quantize_multiplier(0.0123)
    b = requantize(a, m, sh, rounding=rounding)
    s = te.create_schedule(b.op)
    s[b].vectorize(b.op.axis[1])
    text = lowered(s, [a, b])
    assert "int64x16" in text and "vectorized for" not in text and "for (" in text
    av = np.random.default_rng(3).integers(-2 ** 31, 2 ** 31, (8, 16), dtype=np.int64).astype(np.int32)
    got = build_run(s, [a, b], av)
    np.testing.assert_array_equal(got, testing.requantize(av, m, sh, rounding=rounding))


@pytest.mark.parametrize("rounding", ["TONEAREST", "UPWARD"])
def test_vectorize_packed_per_channel_requantize(rounding):
    """Per-channel shifts make ``shift_right`` take vector operands: it vectorizes lane-wise."""
    from minitvm.graph.quantize import multiplier_shift, requantize_per_channel_np
    from minitvm.topi.nn.qnn import requantize_per_channel
    rng = np.random.default_rng(4)
    acc = te.placeholder((2, 3, 5, 4), "int32", "acc")           # NCHW4c with C = 3 * 4, W = 1
    mult = te.placeholder((12,), "int32", "mult")
    shift = te.placeholder((12,), "int32", "shift")
    accv = rng.integers(-2 ** 24, 2 ** 24, (2, 3, 5, 4)).astype(np.int32)
    ms = np.array([multiplier_shift(float(x)) for x in rng.uniform(1e-4, 0.5, 12)], np.int32)
    acc5 = te.compute((2, 3, 5, 1, 4), lambda n, c, h, w, b: acc[n, c, h, b], name="acc5")
    out = requantize_per_channel(acc5, mult, shift, rounding=rounding, packed=True)
    s = te.create_schedule(out.op)
    s[acc5].compute_inline()
    s[out].vectorize(out.op.axis[4])
    text = lowered(s, [acc, mult, shift, out])
    assert "shift_right" in text and "vectorized for" not in text and "unrolled for" not in text
    got = build_run(s, [acc, mult, shift, out], accv, ms[:, 0].copy(), ms[:, 1].copy())
    nchw = accv.transpose(0, 1, 3, 2).reshape(2, 12, 5)
    want = requantize_per_channel_np(nchw, ms[:, 0], ms[:, 1], axis=1, rounding=rounding)
    np.testing.assert_array_equal(got[:, :, :, 0, :], want.reshape(2, 3, 4, 5).transpose(0, 1, 3, 2))


def test_parallel_outer_loop():
    a, b = elementwise_2d(64, 33)
    s = te.create_schedule(b.op)
    io, ii = s[b].split(b.op.axis[0], factor=8)
    s[b].parallel(io)
    assert "parallel for (i.outer, 0, 8) {" in lowered(s, [a, b])
    run_2d(s, a, b)


def test_parallel_fused_non_divisible_with_reduction():
    rng = np.random.default_rng(10)
    a = te.placeholder((13, 11, 20), name="A")
    k = te.reduce_axis((0, 20), name="k")
    b = te.compute((13, 11), lambda i, j: te.sum(a[i, j, k] * a[i, j, k], axis=k), name="B")
    s = te.create_schedule(b.op)
    f = s[b].fuse(*b.op.axis)
    fo, fi = s[b].split(f, factor=16)
    s[b].parallel(fo)
    av = rand(rng, (13, 11, 20))
    np.testing.assert_allclose(build_run(s, [a, b], av), (av * av).sum(axis=2), rtol=1e-5)


def test_pragma_auto_unroll_max_step():
    a = te.placeholder((16, 16), name="A")
    b = te.compute((16, 16), lambda i, j: a[i, j] + 1.0, name="B")
    s = te.create_schedule(b.op)
    io, jo, ii, ji = s[b].tile(b.op.axis[0], b.op.axis[1], 4, 4)
    s[b].pragma(jo, "auto_unroll_max_step", 16)   # 4 x 4 = 16 steps under jo: all unrolled
    text = lowered(s, [a, b])
    assert "for (i.inner" not in text and "for (j.inner" not in text
    assert "for (j.outer, 0, 4) {" in text
    assert text.count("B[") == 16
    rng = np.random.default_rng(11)
    av = rand(rng, (16, 16))
    np.testing.assert_allclose(build_run(s, [a, b], av), av + 1, rtol=1e-6)


def test_pragma_auto_unroll_too_small_keeps_loops():
    a = te.placeholder((16, 16), name="A")
    b = te.compute((16, 16), lambda i, j: a[i, j] + 1.0, name="B")
    s = te.create_schedule(b.op)
    io, jo, ii, ji = s[b].tile(b.op.axis[0], b.op.axis[1], 4, 4)
    s[b].pragma(jo, "auto_unroll_max_step", 8)    # 16 steps > 8: i.inner stays a loop, j.inner unrolled
    text = lowered(s, [a, b])
    assert "for (i.inner, 0, 4) {" in text
    assert "for (j.inner" not in text


def test_annotations_on_split_axes_together():
    """unroll + vectorize + parallel on one stage."""
    a, b = elementwise_2d(32, 64)
    s = te.create_schedule(b.op)
    io, jo, ii, ji = s[b].tile(b.op.axis[0], b.op.axis[1], 4, 16)
    s[b].parallel(io)
    s[b].unroll(ii)
    s[b].vectorize(ji)
    text = lowered(s, [a, b])
    assert "parallel for (i.outer" in text and "ramp(" in text and "for (i.inner" not in text
    run_2d(s, a, b)


def test_pragma_on_a_bound_axis_covers_the_kernel_body():
    # the CUDA templates set auto_unroll_max_step on a block axis
    a = te.placeholder((64, 8), name="A")
    b = te.compute((64, 8), lambda i, j: a[i, j] * 2.0, name="B")
    s = te.create_schedule(b.op)
    bx, tx = s[b].split(b.op.axis[0], factor=16)
    s[b].bind(bx, te.thread_axis("blockIdx.x"))
    s[b].bind(tx, te.thread_axis("threadIdx.x"))
    s[b].pragma(bx, "auto_unroll_max_step", 8)
    s[b].pragma(bx, "unroll_explicit", 0)
    assert "unrolled for (j, 0, 8)" in lowered(s, [a, b])


def test_auto_unroll_keeps_a_loop_that_allocates():
    # unrolled, each copy of the loop would allocate its own shared tile
    a = te.placeholder((64, 32), name="A")
    k = te.reduce_axis((0, 32), name="k")
    b = te.compute((64,), lambda i: te.sum(a[i, k], axis=k), name="B")
    s = te.create_schedule(b.op)
    aa = s.cache_read(a, "shared", [b])
    bx, tx = s[b].split(b.op.axis[0], factor=16)
    ko, ki = s[b].split(k, factor=8)
    s[b].bind(bx, te.thread_axis("blockIdx.x"))
    s[b].bind(tx, te.thread_axis("threadIdx.x"))
    s[aa].compute_at(s[b], ko)
    s[b].pragma(bx, "auto_unroll_max_step", 4096)
    text = lowered(s, [a, b])
    assert text.count("allocate A.shared") == 1
    assert "for (k.outer, 0, 4)" in text and "unrolled for (k.outer" not in text
