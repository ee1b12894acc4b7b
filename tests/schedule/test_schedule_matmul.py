"""Matrix multiplication through the classic CPU schedule steps (TVM's "How to optimize GEMM"):
blocking, loop permutation, vectorization, array packing, write cache, parallel.
Each step is checked against numpy."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.testing import build_run, rand

M, N, K = 96, 80, 64
BN = 16


def matmul(m=M, n=N, k=K, dtype="float32"):
    a = te.placeholder((m, k), dtype, name="A")
    b = te.placeholder((k, n), dtype, name="B")
    kk = te.reduce_axis((0, k), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, kk] * b[kk, j], axis=kk), name="C")
    return a, b, c, kk


def check(s, args, seed=0, m=M, n=N, k=K):
    rng = np.random.default_rng(seed)
    av, bv = rand(rng, (m, k)), rand(rng, (k, n))
    np.testing.assert_allclose(build_run(s, args, av, bv), av @ bv, rtol=1e-5, atol=1e-5)


def test_default():
    a, b, c, k = matmul()
    check(te.create_schedule(c.op), [a, b, c])


def test_blocking():
    a, b, c, k = matmul()
    s = te.create_schedule(c.op)
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 32, 32)
    ko, ki = s[c].split(k, factor=4)
    s[c].reorder(xo, yo, ko, ki, xi, yi)
    check(s, [a, b, c])


def test_vectorize_and_permute():
    a, b, c, k = matmul()
    s = te.create_schedule(c.op)
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 32, BN)
    ko, ki = s[c].split(k, factor=4)
    s[c].reorder(xo, yo, ko, xi, ki, yi)
    s[c].vectorize(yi)
    text = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert f"C[ramp(" in text and f", 1, {BN})]" in text
    check(s, [a, b, c])


def test_array_packing():
    """B repacked as [n/bn, k, bn] so the inner loop reads it contiguously."""
    a, b, _, _ = matmul()
    k = te.reduce_axis((0, K), name="k")
    packed = te.compute((N // BN, K, BN), lambda x, y, z: b[y, x * BN + z], name="packedB")
    c = te.compute((M, N), lambda i, j: te.sum(a[i, k] * packed[j // BN, k, j % BN], axis=k), name="C")
    s = te.create_schedule(c.op)
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 32, BN)
    ko, ki = s[c].split(k, factor=4)
    s[c].reorder(xo, yo, ko, xi, ki, yi)
    s[c].vectorize(yi)
    x, y, z = s[packed].op.axis
    s[packed].vectorize(z)
    s[packed].parallel(x)
    text = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert "packedB[ramp(" in text
    check(s, [a, b, c])


def test_write_cache_packing_parallel():
    """The full tutorial schedule: packed B, local write cache at the tile, unrolled k, parallel."""
    a, b, _, _ = matmul()
    k = te.reduce_axis((0, K), name="k")
    packed = te.compute((N // BN, K, BN), lambda x, y, z: b[y, x * BN + z], name="packedB")
    c = te.compute((M, N), lambda i, j: te.sum(a[i, k] * packed[j // BN, k, j % BN], axis=k), name="C")
    s = te.create_schedule(c.op)
    cc = s.cache_write(c, "local")
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 32, BN)
    s[cc].compute_at(s[c], yo)
    xc, yc = s[cc].op.axis
    (kc,) = s[cc].op.reduce_axis
    ko, ki = s[cc].split(kc, factor=4)
    s[cc].reorder(ko, xc, ki, yc)
    s[cc].unroll(ki)
    s[cc].vectorize(yc)
    s[c].parallel(xo)
    x, y, z = s[packed].op.axis
    s[packed].vectorize(z)
    s[packed].parallel(x)
    text = str(minitvm.lower(s, [a, b, c], simple_mode=True))
    assert "allocate C.local[float32 * 512], storage_scope = local" in text
    assert "parallel for (i.outer" in text
    check(s, [a, b, c])


def test_non_divisible_tiles_with_write_cache():
    m, n, kk = 50, 45, 33
    a, b, c, k = matmul(m, n, kk)
    s = te.create_schedule(c.op)
    cc = s.cache_write(c, "local")
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 16, 8)
    s[cc].compute_at(s[c], yo)
    xc, yc = s[cc].op.axis
    (kc,) = s[cc].op.reduce_axis
    ko, ki = s[cc].split(kc, factor=8)
    s[cc].reorder(ko, xc, ki, yc)
    s[cc].vectorize(yc)
    check(s, [a, b, c], m=m, n=n, k=kk)


@pytest.mark.parametrize("dtype", ["int32", "int8"])
def test_integer_matmul_vectorized_bit_exact(dtype):
    rng = np.random.default_rng(1)
    m, n, kk = 20, 32, 24
    a = te.placeholder((m, kk), dtype, name="A")
    b = te.placeholder((kk, n), dtype, name="B")
    k = te.reduce_axis((0, kk), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, k].astype("int32") * b[k, j].astype("int32"), axis=k),
                   name="C")
    s = te.create_schedule(c.op)
    cc = s.cache_write(c, "local")
    xo, yo, xi, yi = s[c].tile(c.op.axis[0], c.op.axis[1], 4, 16)
    s[cc].compute_at(s[c], yo)
    xc, yc = s[cc].op.axis
    (kc,) = s[cc].op.reduce_axis
    s[cc].reorder(kc, xc, yc)
    s[cc].vectorize(yc)
    lo, hi = (-128, 127) if dtype == "int8" else (-10**4, 10**4)
    av, bv = rand(rng, (m, kk), dtype, lo, hi), rand(rng, (kk, n), dtype, lo, hi)
    got = build_run(s, [a, b, c], av, bv)
    np.testing.assert_array_equal(got, av.astype("int32") @ bv.astype("int32"))
