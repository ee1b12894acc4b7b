"""Scalar semantics: floor division/modulo, comparisons and logic, math intrinsics, if_then_else."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.testing import build_run, poison, rand

N = 257   # odd, so vectorized/unrolled code paths get a tail


def _binary_kernel(dtype, fn, n=N, out_dtype=None):
    a = te.placeholder((n,), dtype, name="a")
    b = te.placeholder((n,), dtype, name="b")
    c = te.compute((n,), lambda i: fn(a[i], b[i]), name="c")
    if out_dtype:
        assert c.dtype == out_dtype
    return a, b, c


# ----------------------------------------------------------------------------------------
# floor semantics
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_floordiv_floormod_match_numpy_on_negative_operands(dtype):
    rng = np.random.default_rng(10)
    av = rand(rng, N, dtype, -100, 100)
    bv = rand(rng, N, dtype, -9, 9)
    bv[bv == 0] = 3
    bv[:4] = [2, -2, 2, -2]
    av[:4] = [-7, -7, 7, 7]
    for fn in (lambda x, y: x // y, lambda x, y: x % y):
        a, b, c = _binary_kernel(dtype, fn)
        got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
        np.testing.assert_array_equal(got, fn(av, bv))


@pytest.mark.parametrize("divisor", [1, 2, 3, 8, -3, -8])
def test_floordiv_floormod_by_constant(divisor):
    """Constant divisors go through the simplifier's div/mod rules: they must keep floor semantics."""
    rng = np.random.default_rng(11)
    a = te.placeholder((N,), "int32", name="a")
    q = te.compute((N,), lambda i: a[i] // divisor, name="q")
    r = te.compute((N,), lambda i: a[i] % divisor, name="r")
    av = rand(rng, N, "int32", -1000, 1000)
    s = te.create_schedule([q.op, r.op])
    qv, rv = build_run(s, [a, q, r], av)
    np.testing.assert_array_equal(qv, av // divisor)
    np.testing.assert_array_equal(rv, av % divisor)


def test_floordiv_floormod_of_shifted_index():
    """``(i - 5) // 4`` and ``(i - 5) % 4`` where the index goes negative."""
    n = 40
    a = te.placeholder((n,), "int32", name="a")
    q = te.compute((n,), lambda i: (i - 5) // 4 + a[i] * 0, name="q")
    r = te.compute((n,), lambda i: (i - 5) % 4 + a[i] * 0, name="r")
    s = te.create_schedule([q.op, r.op])
    qv, rv = build_run(s, [a, q, r], rand(np.random.default_rng(24), n, "int32"))
    idx = np.arange(n) - 5
    np.testing.assert_array_equal(qv, idx // 4)
    np.testing.assert_array_equal(rv, idx % 4)


def test_floordiv_by_constant_zero_raises():
    a = te.placeholder((N,), "int32", name="a")
    with pytest.raises(minitvm.errors.DtypeError, match="zero"):
        a[0] // 0
    with pytest.raises(minitvm.errors.DtypeError, match="zero"):
        a[0] % 0


def test_te_floordiv_floormod_helpers():
    rng = np.random.default_rng(12)
    a, b, c = _binary_kernel("int32", lambda x, y: te.floordiv(x, y) * 1000 + te.floormod(x, y))
    av = rand(rng, N, "int32", -500, 500)
    bv = rand(rng, N, "int32", 1, 20) * rng.choice([-1, 1], N).astype("int32")
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_array_equal(got, (av // bv) * 1000 + av % bv)


# ----------------------------------------------------------------------------------------
# comparisons and logic
# ----------------------------------------------------------------------------------------
CMPS = {
    "lt": (lambda x, y: x < y, np.less), "le": (lambda x, y: x <= y, np.less_equal),
    "gt": (lambda x, y: x > y, np.greater), "ge": (lambda x, y: x >= y, np.greater_equal),
    "eq": (lambda x, y: x == y, np.equal), "ne": (lambda x, y: x != y, np.not_equal),
}


@pytest.mark.parametrize("name", sorted(CMPS))
@pytest.mark.parametrize("dtype", ["int8", "int32", "float32"])
def test_comparisons(name, dtype):
    rng = np.random.default_rng(13)
    fn, ref = CMPS[name]
    a, b, c = _binary_kernel(dtype, lambda x, y: te.if_then_else(fn(x, y), 1, 0).astype("int32"))
    av = rand(rng, N, dtype, -3, 3) if dtype != "float32" else rng.integers(-3, 3, N).astype(dtype)
    bv = rand(rng, N, dtype, -3, 3) if dtype != "float32" else rng.integers(-3, 3, N).astype(dtype)
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_array_equal(got, ref(av, bv).astype("int32"))


def test_bool_output_and_logic_operators():
    rng = np.random.default_rng(14)
    a = te.placeholder((N,), "int32", name="a")
    b = te.placeholder((N,), "int32", name="b")
    land = te.compute((N,), lambda i: (a[i] > 0) & (b[i] > 0), name="land")
    lor = te.compute((N,), lambda i: (a[i] > 0) | (b[i] > 0), name="lor")
    lnot = te.compute((N,), lambda i: ~(a[i] > b[i]), name="lnot")
    assert land.dtype == lor.dtype == lnot.dtype == "bool"
    s = te.create_schedule([land.op, lor.op, lnot.op])
    av, bv = rand(rng, N, "int32", -5, 5), rand(rng, N, "int32", -5, 5)
    f = minitvm.build(s, [a, b, land, lor, lnot])
    outs = [np.ones(N, bool), np.zeros(N, bool), np.ones(N, bool)]
    outs[0][:] = ~((av > 0) & (bv > 0))            # poison: the opposite of the expected answer
    outs[1][:] = ~((av > 0) | (bv > 0))
    outs[2][:] = av > bv
    f(av, bv, *outs)
    np.testing.assert_array_equal(outs[0], (av > 0) & (bv > 0))
    np.testing.assert_array_equal(outs[1], (av > 0) | (bv > 0))
    np.testing.assert_array_equal(outs[2], ~(av > bv))


def test_te_all_any():
    rng = np.random.default_rng(15)
    a = te.placeholder((N, 3), "int32", name="a")
    c_all = te.compute((N,), lambda i: te.if_then_else(te.all(a[i, 0] > 0, a[i, 1] > 0, a[i, 2] > 0), 1, 2),
                       name="c_all")
    c_any = te.compute((N,), lambda i: te.if_then_else(te.any(a[i, 0] > 0, a[i, 1] > 0, a[i, 2] > 0), 1, 2),
                       name="c_any")
    av = rand(rng, (N, 3), "int32", -2, 2)
    s = te.create_schedule([c_all.op, c_any.op])
    ga, gy = build_run(s, [a, c_all, c_any], av)
    np.testing.assert_array_equal(ga, np.where((av > 0).all(axis=1), 1, 2))
    np.testing.assert_array_equal(gy, np.where((av > 0).any(axis=1), 1, 2))


def test_te_all_any_of_nothing_and_one():
    assert minitvm.tir.is_const_int(te.all(), 1)
    assert minitvm.tir.is_const_int(te.any(), 0)
    a = te.placeholder((4,), "int32", name="a")
    cond = a[0] > 1
    assert te.all(cond) is cond and te.any(cond) is cond


def test_select_and_elementwise_max_min():
    rng = np.random.default_rng(16)
    a, b, c = _binary_kernel("float32", lambda x, y: te.select(x > y, x - y, te.max(x, y) + te.min(x, y)))
    av, bv = rand(rng, N), rand(rng, N)
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_allclose(got, np.where(av > bv, av - bv, np.maximum(av, bv) + np.minimum(av, bv)),
                               rtol=1e-6)


def test_elementwise_max_with_literal_is_relu():
    rng = np.random.default_rng(17)
    a = te.placeholder((N,), "int8", name="a")
    c = te.compute((N,), lambda i: te.max(a[i], 0), name="relu")
    assert c.dtype == "int8"
    av = rand(rng, N, "int8")
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_array_equal(got, np.maximum(av, 0))


# ----------------------------------------------------------------------------------------
# math intrinsics
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,ref,lo,hi", [
    ("exp", np.exp, -5.0, 5.0),
    ("log", np.log, 0.01, 100.0),
    ("sqrt", np.sqrt, 0.0, 100.0),
    ("tanh", np.tanh, -4.0, 4.0),
    ("floor", np.floor, -10.0, 10.0),
    ("ceil", np.ceil, -10.0, 10.0),
    ("abs", np.abs, -10.0, 10.0),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), -6.0, 6.0),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_math_intrinsics(name, ref, lo, hi, dtype):
    rng = np.random.default_rng(18)
    fn = getattr(te, name)
    a = te.placeholder((N,), dtype, name="a")
    c = te.compute((N,), lambda i: fn(a[i]), name="c")
    assert c.dtype == dtype
    av = rand(rng, N, dtype, lo, hi)
    got = build_run(te.create_schedule(c.op), [a, c], av)
    rtol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, ref(av).astype(dtype), rtol=rtol, atol=rtol)


def test_round_ties_to_even():
    a = te.placeholder((16,), "float32", name="a")
    c = te.compute((16,), lambda i: te.round(a[i]), name="c")
    av = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 4.5,
                   0.49, 0.51, -0.51, 2.6, -7.5, 7.5, 1e7 + 0.5, -3.2], "float32")
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_array_equal(got, np.round(av))       # numpy rounds half to even


def test_power():
    rng = np.random.default_rng(19)
    a = te.placeholder((N,), name="a")
    c = te.compute((N,), lambda i: te.power(a[i], 1.5) + te.power(a[i], a[i]), name="c")
    av = rand(rng, N, "float32", 0.1, 3.0)
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_allclose(got, av ** 1.5 + av ** av, rtol=1e-5)


def test_abs_on_ints_wraps_for_the_most_negative_value():
    rng = np.random.default_rng(20)
    a = te.placeholder((N,), "int8", name="a")
    c = te.compute((N,), lambda i: te.abs(a[i]), name="c")
    av = rand(rng, N, "int8")
    av[0] = -128
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_array_equal(got, np.abs(av))          # numpy: abs(-128) == -128 in int8


# ----------------------------------------------------------------------------------------
# if_then_else guarding out-of-bounds reads (padding)
# ----------------------------------------------------------------------------------------
def test_if_then_else_padding_2d():
    rng = np.random.default_rng(21)
    h, w, p = 13, 9, 2
    a = te.placeholder((h, w), name="a")
    padded = te.compute(
        (h + 2 * p, w + 2 * p),
        lambda y, x: te.if_then_else(te.all(y >= p, y < h + p, x >= p, x < w + p), a[y - p, x - p], -1.0),
        name="pad")
    av = rand(rng, (h, w))
    got = build_run(te.create_schedule(padded.op), [a, padded], av)
    np.testing.assert_array_equal(got, np.pad(av, p, constant_values=-1.0))


def test_if_then_else_padding_reads_outside_a_tiny_buffer():
    """The guarded read would be far out of bounds (a 3-element buffer): it must never happen."""
    a = te.placeholder((3,), "int32", name="a")
    c = te.compute((4096,), lambda i: te.if_then_else(i < 3, a[i], 0) + te.if_then_else(i >= 4093, a[i - 4093], 0),
                   name="c")
    av = np.array([11, -22, 33], "int32")
    got = build_run(te.create_schedule(c.op), [a, c], av)
    want = np.zeros(4096, "int32")
    want[:3] += av
    want[-3:] += av
    np.testing.assert_array_equal(got, want)


def test_if_then_else_padding_scheduled_and_vectorized():
    rng = np.random.default_rng(22)
    n, p = 100, 3
    a = te.placeholder((n,), name="a")
    c = te.compute((n + 2 * p,), lambda i: te.if_then_else(te.all(i >= p, i < n + p), a[i - p] * 2.0, 0.0),
                   name="c")
    s = te.create_schedule(c.op)
    xo, xi = s[c].split(c.op.axis[0], factor=8)
    s[c].vectorize(xi)
    av = rand(rng, n)
    got = build_run(s, [a, c], av)
    np.testing.assert_array_equal(got, np.pad(av * 2, p))


def test_if_then_else_in_consumer_of_inlined_pad():
    """A padded stage inlined into a 3-tap stencil: 1-d 'same' convolution."""
    rng = np.random.default_rng(23)
    n = 50
    a = te.placeholder((n,), name="a")
    pad = te.compute((n + 2,), lambda i: te.if_then_else(te.all(i >= 1, i <= n), a[i - 1], 0.0), name="pad")
    k = te.reduce_axis((0, 3), name="k")
    wts = te.placeholder((3,), name="w")
    out = te.compute((n,), lambda i: te.sum(pad[i + k] * wts[k], axis=k), name="out")
    s = te.create_schedule(out.op)
    s[pad].compute_inline()
    av, wv = rand(rng, n), rand(rng, 3)
    got = build_run(s, [a, wts, out], av, wv)
    np.testing.assert_allclose(got, np.convolve(av, wv[::-1], mode="same"), rtol=1e-5, atol=1e-6)


def test_poison_helper_catches_unwritten_outputs():
    """Sanity check of the test helper itself: NaN/marker sentinels."""
    assert np.isnan(poison((2,), "float32")).all()
    assert (poison((2,), "int8") == -121).all()
