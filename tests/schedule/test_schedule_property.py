"""Property-based schedules: whatever legal schedule hypothesis draws, the result equals numpy.

Matmul: random split factors (non-divisors included), a random permutation of the six leaf
loops, optional vectorize of the innermost data axis, optional write cache computed at a tile,
optional parallel/unroll. Conv2d: random stride/padding/dilation/groups and a random schedule
(split + reorder of output loops, padding inlined or computed at a loop, split reduction).
The same examples on every run; ``MINITVM_FUZZ_EXAMPLES=N`` runs N fresh ones per test.
CUDA schedules: ``test_schedule_property_cuda.py``.
"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from minitvm import te
from minitvm.testing import build_run, fuzz_settings, rand
from minitvm.topi import testing

SETTINGS = fuzz_settings(25)
FACTORS = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 16, 32])


def _matmul(m, n, k, dtype):
    a = te.placeholder((m, k), dtype, name="A")
    b = te.placeholder((k, n), dtype, name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    return a, b, c


def _split_and_permute(stage, i, j, k, fi, fj, fk, perm):
    io, ii = stage.split(i, factor=fi)
    jo, ji = stage.split(j, factor=fj)
    ko, ki = stage.split(k, factor=fk)
    leaves = [io, ii, jo, ji, ko, ki]
    order = [leaves[p] for p in perm]
    stage.reorder(*order)
    assert stage.leaf_iter_vars == order
    return dict(io=io, ii=ii, jo=jo, ji=ji, ko=ko, ki=ki), order


@SETTINGS
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 24),
       fi=FACTORS, fj=FACTORS, fk=FACTORS, perm=st.permutations(range(6)),
       vectorize=st.booleans(), unroll=st.booleans(), parallel=st.booleans(),
       dtype=st.sampled_from(["float32", "int32"]), seed=st.integers(0, 2**16))
def test_random_matmul_schedule(m, n, k, fi, fj, fk, perm, vectorize, unroll, parallel, dtype, seed):
    a, b, c = _matmul(m, n, k, dtype)
    s = te.create_schedule(c.op)
    i, j = c.op.axis
    axes, order = _split_and_permute(s[c], i, j, c.op.reduce_axis[0], fi, fj, fk, perm)
    if vectorize and order[-1] is axes["ji"]:
        s[c].vectorize(axes["ji"])
    if unroll and order[-2] is not axes["ji"]:
        s[c].unroll(order[-2])
    if parallel and order[0] in (axes["io"], axes["jo"]):
        s[c].parallel(order[0])
    rng = np.random.default_rng(seed)
    av = rand(rng, (m, k), dtype, -100, 100) if dtype == "int32" else rand(rng, (m, k))
    bv = rand(rng, (k, n), dtype, -100, 100) if dtype == "int32" else rand(rng, (k, n))
    got = build_run(s, [a, b, c], av, bv)
    if dtype == "int32":
        np.testing.assert_array_equal(got, av @ bv)
    else:
        np.testing.assert_allclose(got, av @ bv, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 24),
       ti=FACTORS, tj=FACTORS, fk=FACTORS, perm=st.permutations(range(4)),
       at=st.sampled_from(["io", "jo"]), vectorize=st.booleans(), seed=st.integers(0, 2**16))
def test_random_matmul_write_cache(m, n, k, ti, tj, fk, perm, at, vectorize, seed):
    """cache_write + compute_at at a tile loop; the cache stage's own loops permuted at random."""
    a, b, c = _matmul(m, n, k, "float32")
    s = te.create_schedule(c.op)
    cc = s.cache_write(c, "local")
    io, jo, ii, ji = s[c].tile(c.op.axis[0], c.op.axis[1], ti, tj)
    s[cc].compute_at(s[c], io if at == "io" else jo)
    xc, yc = s[cc].op.axis
    (kc,) = s[cc].op.reduce_axis
    ko, ki = s[cc].split(kc, factor=fk)
    leaves = [xc, yc, ko, ki]
    order = [leaves[p] for p in perm]
    s[cc].reorder(*order)
    if vectorize and order[-1] is yc:
        s[cc].vectorize(yc)
    rng = np.random.default_rng(seed)
    av, bv = rand(rng, (m, k)), rand(rng, (k, n))
    np.testing.assert_allclose(build_run(s, [a, b, c], av, bv), av @ bv, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------
# conv2d
# ----------------------------------------------------------------------------------------
def conv2d(data, weight, stride, pad, dil, groups):
    n, cin, h, w = [int(x.value) for x in data.shape]
    cout, cin_g, kh, kw = [int(x.value) for x in weight.shape]
    cout_g = cout // groups
    oh = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    padded = te.compute(
        (n, cin, h + 2 * pad, w + 2 * pad),
        lambda b, c, y, x: te.if_then_else(te.all(y >= pad, y < h + pad, x >= pad, x < w + pad),
                                           data[b, c, y - pad, x - pad], 0.0),
        name="pad")
    rc = te.reduce_axis((0, cin_g), name="rc")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    out = te.compute(
        (n, cout, oh, ow),
        lambda b, f, y, x: te.sum(
            padded[b, f // cout_g * cin_g + rc, y * stride + ry * dil, x * stride + rx * dil]
            * weight[f, rc, ry, rx], axis=[rc, ry, rx]),
        name="conv")
    return padded, out


def conv2d_ref(d, w, stride, pad, dil, groups):
    return testing.conv2d_nchw(d, w, stride, pad, dil, groups, "float64")


@st.composite
def conv_problem(draw):
    groups = draw(st.sampled_from([1, 2]))
    cin_g = draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 3))
    kh = draw(st.sampled_from([1, 2, 3]))
    stride = draw(st.sampled_from([1, 2]))
    pad = draw(st.integers(0, 2))
    dil = draw(st.sampled_from([1, 2]))
    min_hw = max(1, dil * (kh - 1) + 1 - 2 * pad)
    h = draw(st.integers(min_hw, 9))
    w = draw(st.integers(min_hw, 9))
    n = draw(st.integers(1, 2))
    return dict(n=n, cin=cin_g * groups, cout=cout_g * groups, cin_g=cin_g, k=kh, h=h, w=w,
                stride=stride, pad=pad, dil=dil, groups=groups)


@SETTINGS
@given(p=conv_problem(), fy=FACTORS, fx=FACTORS, ff=st.sampled_from([1, 2, 3]),
       perm=st.permutations(range(5)), pad_mode=st.sampled_from(["root", "inline", "at_x", "at_f"]),
       split_rc=st.booleans(), vectorize=st.booleans(), seed=st.integers(0, 2**16))
def test_random_conv2d_schedule(p, fy, fx, ff, perm, pad_mode, split_rc, vectorize, seed):
    data = te.placeholder((p["n"], p["cin"], p["h"], p["w"]), name="data")
    weight = te.placeholder((p["cout"], p["cin_g"], p["k"], p["k"]), name="weight")
    padded, out = conv2d(data, weight, p["stride"], p["pad"], p["dil"], p["groups"])
    s = te.create_schedule(out.op)
    b, f, y, x = out.op.axis
    rc, ry, rx = out.op.reduce_axis
    fo, fi = s[out].split(f, factor=ff)
    yo, yi = s[out].split(y, factor=fy)
    xo, xi = s[out].split(x, factor=fx)
    reduce_outer = list(s[out].split(rc, factor=2)) if split_rc else [rc]
    inner = [fi, yi, xi, ry, rx]
    order = [inner[q] for q in perm]
    s[out].reorder(b, fo, yo, xo, *reduce_outer, *order)
    if vectorize and order[-1] is xi:
        s[out].vectorize(xi)
    if pad_mode == "inline":
        s[padded].compute_inline()
    elif pad_mode == "at_x":
        s[padded].compute_at(s[out], xo)
    elif pad_mode == "at_f":
        s[padded].compute_at(s[out], fo)
    elif vectorize:
        s[padded].vectorize(padded.op.axis[-1])
    rng = np.random.default_rng(seed)
    dv = rand(rng, (p["n"], p["cin"], p["h"], p["w"]))
    wv = rand(rng, (p["cout"], p["cin_g"], p["k"], p["k"]))
    got = build_run(s, [data, weight, out], dv, wv)
    want = conv2d_ref(dv, wv, p["stride"], p["pad"], p["dil"], p["groups"])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv_reference_matches_direct_definition():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((1, 2, 5, 6))
    w = rng.standard_normal((4, 1, 3, 3))
    got = conv2d_ref(d, w, 2, 1, 2, 2)
    xp = np.pad(d, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for f in range(4):
        for y in range(got.shape[2]):
            for x in range(got.shape[3]):
                acc = sum(xp[0, f // 2, y * 2 + ry * 2, x * 2 + rx * 2] * w[f, 0, ry, rx]
                          for ry in range(3) for rx in range(3))
                assert abs(acc - got[0, f, y, x]) < 1e-9
