"""Property-based CUDA schedules, run in the SIMT interpreter (tests/codegen/kernel_interp.py):
whatever legal GPU schedule hypothesis draws, the kernel's result equals numpy.

Matmul: block and thread splits of both data axes by any factors (non-divisors included), an
optional register tile, optional shared-memory stages of A and B filled cooperatively per
k-tile (with or without double buffering: the barriers are what this exercises; the
interpreter runs the threads between barriers in a random order), an optional local
accumulator, unrolled and vectorized inner loops. Injective: a padded, shifted copy whose loops
are fused, split by any thread count and bound, with an optional vectorized inner part.
Outputs are poisoned, so an unwritten element shows. The same examples on every run;
``MINITVM_FUZZ_EXAMPLES=N`` runs N fresh ones per test.
"""
import os
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minitvm
from minitvm import te
from minitvm.testing import fuzz_settings, poison, rand

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402

SMALL = st.sampled_from([1, 2, 3, 4, 8])


def _bind(stage, axis, tag):
    stage.bind(axis, te.thread_axis(tag))


@fuzz_settings(25)
@given(m=st.integers(1, 20), n=st.integers(1, 20), k=st.integers(1, 12),
       ty=SMALL, tx=st.sampled_from([1, 2, 4, 8, 16]), ri=st.sampled_from([1, 2]), rj=st.sampled_from([1, 2, 4]),
       kt=st.sampled_from([1, 2, 4, 5]), shared=st.booleans(), double=st.booleans(), local=st.booleans(),
       unroll=st.booleans(), vectorize=st.booleans(), dtype=st.sampled_from(["float32", "int32"]),
       seed=st.integers(0, 2 ** 16))
def test_random_cuda_matmul_schedule(m, n, k, ty, tx, ri, rj, kt, shared, double, local, unroll, vectorize,
                                     dtype, seed):
    a = te.placeholder((m, k), dtype, name="A")
    b = te.placeholder((k, n), dtype, name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    s = te.create_schedule(c.op)
    if shared:
        aa = s.cache_read(a, "shared", [c])
        bb = s.cache_read(b, "shared", [c])
    cl = s.cache_write(c, "local") if local else c
    i, j = s[c].op.axis
    by, i = s[c].split(i, factor=ty * ri)
    bx, j = s[c].split(j, factor=tx * rj)
    thy, ii = s[c].split(i, factor=ri)
    thx, ji = s[c].split(j, factor=rj)
    s[c].reorder(by, bx, thy, thx, ii, ji)
    _bind(s[c], by, "blockIdx.y")
    _bind(s[c], bx, "blockIdx.x")
    _bind(s[c], thy, "threadIdx.y")
    _bind(s[c], thx, "threadIdx.x")
    if local:
        s[cl].compute_at(s[c], thx)
        ci, cj = s[cl].op.axis
        (kk,) = s[cl].op.reduce_axis
        ko, ki = s[cl].split(kk, factor=kt)
        s[cl].reorder(ko, ki, ci, cj)
        inner = (ki, ci, cj)
        if unroll:
            s[cl].unroll(ci)
        if vectorize:
            s[c].vectorize(ji)          # the copy-out
    else:
        (kk,) = s[c].op.reduce_axis
        ko, ki = s[c].split(kk, factor=kt)
        s[c].reorder(by, bx, thy, thx, ko, ki, ii, ji)
        inner = (ki, ii, ji)
        if unroll:
            s[c].unroll(ii)
    if shared:
        for t in (aa, bb):
            s[t].compute_at(s[cl], ko)
            fused = s[t].fuse(*s[t].op.axis)
            rest, fx = s[t].split(fused, factor=tx)
            _, fy = s[t].split(rest, factor=ty)
            _bind(s[t], fx, "threadIdx.x")
            _bind(s[t], fy, "threadIdx.y")
            if double:
                s[t].double_buffer()
    assert inner                        # the register loops stay serial unless drawn otherwise
    f = minitvm.lower(s, [a, b, c], name="mm", target="cuda")
    rng = np.random.default_rng(seed)
    av = rand(rng, (m, k), dtype, -50, 50) if dtype == "int32" else rand(rng, (m, k))
    bv = rand(rng, (k, n), dtype, -50, 50) if dtype == "int32" else rand(rng, (k, n))
    cv = poison((m, n), dtype)
    kernel_interp.run_func(f, [av, bv, cv], seed=seed)
    if dtype == "int32":
        np.testing.assert_array_equal(cv, av @ bv)
    else:
        np.testing.assert_allclose(cv, av @ bv, rtol=1e-5, atol=1e-5)


@fuzz_settings(30)
@given(h=st.integers(1, 12), w=st.integers(1, 12), pad=st.integers(0, 2), shift=st.integers(-2, 2),
       threads=st.sampled_from([1, 3, 4, 32, 64]), vec=st.sampled_from([1, 2, 4]),
       dtype=st.sampled_from(["float32", "int8", "int32"]), seed=st.integers(0, 2 ** 16))
def test_random_cuda_injective_schedule(h, w, pad, shift, threads, vec, dtype, seed):
    """out[y, x] = A[y - pad, x - pad + shift] inside A, else 0: guarded reads, fused and bound loops.
    (A shift that moves every read outside A is refused at te.compute, guarded or not: #17 R8.)"""
    shift = max(-(w - 1), min(w - 1, shift))
    a = te.placeholder((h, w), dtype, name="A")
    oh, ow = h + 2 * pad, w + 2 * pad
    zero = 0.0 if dtype == "float32" else 0

    def f(y, x):
        sy, sx = y - pad, x - pad + shift
        return te.if_then_else(te.all(sy >= 0, sy < h, sx >= 0, sx < w), a[sy, sx] * 2, zero)

    out = te.compute((oh, ow), f, name="P")
    s = te.create_schedule(out.op)
    fused = s[out].fuse(*s[out].op.axis)
    if vec > 1:
        fused, vi = s[out].split(fused, factor=vec)
        s[out].vectorize(vi)
    bx, tx = s[out].split(fused, factor=threads)
    _bind(s[out], bx, "blockIdx.x")
    _bind(s[out], tx, "threadIdx.x")
    fn = minitvm.lower(s, [a, out], name="pad", target="cuda")
    rng = np.random.default_rng(seed)
    av = rand(rng, (h, w), dtype, -60, 60) if dtype != "float32" else rand(rng, (h, w))
    ov = poison((oh, ow), dtype)
    kernel_interp.run_func(fn, [av, ov], seed=seed)
    want = np.zeros((oh, ow), av.dtype)
    for y in range(oh):
        for x in range(ow):
            sy, sx = y - pad, x - pad + shift
            if 0 <= sy < h and 0 <= sx < w:
                want[y, x] = av[sy, sx] * 2
    np.testing.assert_array_equal(ov, want)
