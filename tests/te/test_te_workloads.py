"""Whole computations written in the DSL, built for LLVM and checked against numpy:
broadcasting, softmax-like chains, direct conv2d (stride, padding, dilation, groups),
int8 x int8 -> int32 dot products, symbolic batch sizes."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.testing import build_run, poison, rand
from minitvm.topi import testing


# ----------------------------------------------------------------------------------------
# element-wise with broadcasting
# ----------------------------------------------------------------------------------------
def broadcast_add(a, b, name="bcast"):
    """numpy-style broadcasting of two equal-rank tensors with constant shapes."""
    sa = [int(s.value) for s in a.shape]
    sb = [int(s.value) for s in b.shape]
    out = [max(x, y) for x, y in zip(sa, sb)]

    def index(shape, idx):
        return [0 if s == 1 else i for s, i in zip(shape, idx)]

    return te.compute(out, lambda *i: a(*index(sa, i)) + b(*index(sb, i)), name=name)


@pytest.mark.parametrize("sa,sb", [((4, 1), (1, 5)), ((3, 1, 6), (1, 7, 1)), ((8, 9), (1, 9)), ((1,), (13,))])
def test_broadcast_add(sa, sb):
    rng = np.random.default_rng(50)
    a = te.placeholder(sa, name="a")
    b = te.placeholder(sb, name="b")
    c = broadcast_add(a, b)
    av, bv = rand(rng, sa), rand(rng, sb)
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_array_equal(got, av + bv)


def test_broadcast_int8_bias_add_then_clip():
    rng = np.random.default_rng(51)
    x = te.placeholder((6, 10), "int32", name="x")
    bias = te.placeholder((10,), "int32", name="bias")
    y = te.compute((6, 10), lambda i, j: te.max(te.min(x[i, j] + bias[j], 127), -128).astype("int8"), name="y")
    xv = rand(rng, (6, 10), "int32", -300, 300)
    bv = rand(rng, 10, "int32", -50, 50)
    got = build_run(te.create_schedule(y.op), [x, bias, y], xv, bv)
    np.testing.assert_array_equal(got, np.clip(xv + bv, -128, 127).astype("int8"))


def test_softmax_rows():
    """max, exp-sum and divide: three stages with two reductions."""
    rng = np.random.default_rng(52)
    n, m = 9, 31
    x = te.placeholder((n, m), name="x")
    k1 = te.reduce_axis((0, m), name="k1")
    mx = te.compute((n,), lambda i: te.max(x[i, k1], axis=k1), name="mx")
    e = te.compute((n, m), lambda i, j: te.exp(x[i, j] - mx[i]), name="e")
    k2 = te.reduce_axis((0, m), name="k2")
    ssum = te.compute((n,), lambda i: te.sum(e[i, k2], axis=k2), name="ssum")
    y = te.compute((n, m), lambda i, j: e[i, j] / ssum[i], name="y")
    xv = rand(rng, (n, m), lo=-5, hi=5)
    got = build_run(te.create_schedule(y.op), [x, y], xv)
    ev = np.exp(xv - xv.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, ev / ev.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------
# direct conv2d, NCHW, written like TVM topi
# ----------------------------------------------------------------------------------------
def conv2d_nchw(data, weight, stride, padding, dilation, groups, out_dtype=None):
    """``out[n, f, y, x] = sum(pad(data)[n, g*cin_g + rc, y*sh + ry*dh, x*sw + rx*dw] * w[f, rc, ry, rx])``."""
    n, cin, h, w = [int(s.value) for s in data.shape]
    cout, cin_g, kh, kw = [int(s.value) for s in weight.shape]
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    assert cin == cin_g * groups and cout % groups == 0
    cout_g = cout // groups
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    padded = te.compute(
        (n, cin, h + 2 * ph, w + 2 * pw),
        lambda b, c, y, x: te.if_then_else(te.all(y >= ph, y < h + ph, x >= pw, x < w + pw),
                                           data[b, c, y - ph, x - pw], te.const(0, data.dtype)),
        name="pad")
    rc = te.reduce_axis((0, cin_g), name="rc")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")

    def body(b, f, y, x):
        g = f // cout_g
        d = padded[b, g * cin_g + rc, y * sh + ry * dh, x * sw + rx * dw]
        k = weight[f, rc, ry, rx]
        if out_dtype:
            d, k = d.astype(out_dtype), k.astype(out_dtype)
        return te.sum(d * k, axis=[rc, ry, rx])

    out = te.compute((n, cout, oh, ow), body, name="conv")
    return padded, out


def conv2d_ref(data, weight, stride, padding, dilation, groups, acc_dtype=None):
    """The numpy reference (``topi.testing``), accumulated in the data's dtype by default."""
    return testing.conv2d_nchw(data, weight, stride, padding, dilation, groups, acc_dtype or data.dtype)


CONV_CASES = [
    # (n, cin, h, w, cout, k, stride, padding, dilation, groups)
    (1, 3, 10, 10, 4, 3, (1, 1), (1, 1), (1, 1), 1),
    (2, 4, 11, 9, 6, 3, (2, 2), (1, 1), (1, 1), 2),
    (1, 4, 12, 12, 4, 3, (1, 2), (2, 0), (2, 1), 4),       # depthwise, dilation, asymmetric
    (1, 6, 9, 9, 6, 1, (1, 1), (0, 0), (1, 1), 3),
    (1, 2, 7, 8, 4, 5, (3, 2), (2, 2), (1, 1), 1),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "n{}c{}h{}w{}f{}k{}s{}p{}d{}g{}".format(*c))
def test_conv2d_float32(case):
    rng = np.random.default_rng(53)
    n, cin, h, w, cout, k, stride, padding, dilation, groups = case
    data = te.placeholder((n, cin, h, w), name="data")
    weight = te.placeholder((cout, cin // groups, k, k), name="weight")
    pad, out = conv2d_nchw(data, weight, stride, padding, dilation, groups)
    s = te.create_schedule(out.op)
    s[pad].compute_inline()
    dv, wv = rand(rng, data_shape := (n, cin, h, w)), rand(rng, (cout, cin // groups, k, k))
    got = build_run(s, [data, weight, out], dv, wv)
    want = conv2d_ref(dv, wv, stride, padding, dilation, groups)
    assert got.shape == want.shape, data_shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_itervar_arithmetic_like_topi():
    """TVM's IterVar is an expression: ``ry * dh``, ``2 * ry``, ``ry + 1``, ``ry // 2`` all work."""
    rng = np.random.default_rng(63)
    a = te.placeholder((8, 40), "int32", name="a")
    r = te.reduce_axis((0, 4), name="r")
    b = te.compute((8,), lambda i: te.sum(a[i, r * 3 + 2 * r + (r + 1) - (r - 1) + r // 2], axis=r), name="b")
    av = rand(rng, (8, 40), "int32", -100, 100)
    got = build_run(te.create_schedule(b.op), [a, b], av)
    idx = [5 * r + 2 + r // 2 for r in range(4)]
    np.testing.assert_array_equal(got, av[:, idx].sum(axis=1))


def test_conv2d_padding_stage_materialized():
    """Padding kept as its own (root) stage instead of inlined."""
    rng = np.random.default_rng(54)
    data = te.placeholder((1, 2, 6, 6), name="data")
    weight = te.placeholder((3, 2, 3, 3), name="weight")
    pad, out = conv2d_nchw(data, weight, (1, 1), (1, 1), (1, 1), 1)
    dv, wv = rand(rng, (1, 2, 6, 6)), rand(rng, (3, 2, 3, 3))
    got = build_run(te.create_schedule(out.op), [data, weight, out], dv, wv)
    np.testing.assert_allclose(got, conv2d_ref(dv, wv, (1, 1), (1, 1), (1, 1), 1), rtol=1e-5, atol=1e-5)


def test_conv2d_int8_to_int32_bit_exact():
    rng = np.random.default_rng(55)
    shape_d, shape_w = (2, 4, 9, 9), (8, 2, 3, 3)
    data = te.placeholder(shape_d, "int8", name="data")
    weight = te.placeholder(shape_w, "int8", name="weight")
    pad, out = conv2d_nchw(data, weight, (2, 2), (1, 1), (1, 1), 2, out_dtype="int32")
    assert out.dtype == "int32"
    s = te.create_schedule(out.op)
    s[pad].compute_inline()
    dv, wv = rand(rng, shape_d, "int8"), rand(rng, shape_w, "int8")
    got = build_run(s, [data, weight, out], dv, wv)
    np.testing.assert_array_equal(got, conv2d_ref(dv, wv, (2, 2), (1, 1), (1, 1), 2, acc_dtype="int32"))


def test_conv2d_reference_agrees_with_naive_loops():
    """The numpy reference itself, against the definition, on a tiny case."""
    rng = np.random.default_rng(56)
    d = rng.standard_normal((1, 4, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3))
    got = conv2d_ref(d, w, (2, 1), (1, 2), (1, 2), 2)
    oh, ow = got.shape[2:]
    xp = np.pad(d, ((0, 0), (0, 0), (1, 1), (2, 2)))
    for f in range(2):
        g = f // 1
        for y in range(oh):
            for x in range(ow):
                acc = 0.0
                for c in range(2):
                    for ry in range(3):
                        for rx in range(3):
                            acc += xp[0, g * 2 + c, y * 2 + ry, x + rx * 2] * w[f, c, ry, rx]
                assert abs(acc - got[0, f, y, x]) < 1e-9


# ----------------------------------------------------------------------------------------
# int8 x int8 -> int32
# ----------------------------------------------------------------------------------------
def test_int8_dot_product_bit_exact():
    rng = np.random.default_rng(57)
    n = 1000
    a = te.placeholder((n,), "int8", name="a")
    b = te.placeholder((n,), "int8", name="b")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((1,), lambda _: te.sum(a[k].astype("int32") * b[k].astype("int32"), axis=k), name="dot")
    av, bv = rand(rng, n, "int8"), rand(rng, n, "int8")
    av[:8] = -128
    bv[:8] = -128                          # 8 * 16384: large, exact products
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_array_equal(got, [np.dot(av.astype("int32"), bv.astype("int32"))])


@pytest.mark.parametrize("scheduled", [False, True])
def test_int8_matmul_bit_exact(scheduled):
    rng = np.random.default_rng(58)
    m, n, kk = 37, 29, 64
    a = te.placeholder((m, kk), "int8", name="a")
    b = te.placeholder((n, kk), "int8", name="b")          # "NT" layout, as dense layers store weights
    k = te.reduce_axis((0, kk), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, k].astype("int32") * b[j, k].astype("int32"), axis=k),
                   name="c")
    s = te.create_schedule(c.op)
    if scheduled:
        io, jo, ii, ji = s[c].tile(c.op.axis[0], c.op.axis[1], 8, 8)
        ko, ki = s[c].split(k, factor=16)
        s[c].reorder(io, jo, ko, ii, ki, ji)
        s[c].unroll(ki)
    av, bv = rand(rng, (m, kk), "int8"), rand(rng, (n, kk), "int8")
    got = build_run(s, [a, b, c], av, bv)
    np.testing.assert_array_equal(got, av.astype("int32") @ bv.astype("int32").T)


def test_uint8_times_int8_accumulates_in_int32():
    rng = np.random.default_rng(59)
    a = te.placeholder((16, 32), "uint8", name="a")
    b = te.placeholder((32,), "int8", name="b")
    k = te.reduce_axis((0, 32), name="k")
    c = te.compute((16,), lambda i: te.sum(a[i, k].astype("int32") * b[k].astype("int32"), axis=k), name="c")
    av, bv = rand(rng, (16, 32), "uint8"), rand(rng, 32, "int8")
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_array_equal(got, av.astype("int32") @ bv.astype("int32"))


# ----------------------------------------------------------------------------------------
# symbolic shapes
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make_var", [te.var, te.size_var])
def test_symbolic_batch_dense_relu(make_var):
    rng = np.random.default_rng(60)
    batch = make_var("batch")
    x = te.placeholder((batch, 16), name="x")
    w = te.placeholder((8, 16), name="w")
    k = te.reduce_axis((0, 16), name="k")
    y = te.compute((batch, 8), lambda i, j: te.sum(x[i, k] * w[j, k], axis=k), name="y")
    z = te.compute((batch, 8), lambda i, j: te.max(y[i, j], 0.0), name="z")
    s = te.create_schedule(z.op)
    f = minitvm.build(s, [x, w, z])
    wv = rand(rng, (8, 16))
    for bs in (1, 5, 32):
        xv = rand(rng, (bs, 16))
        zv = poison((bs, 8), "float32")
        f(xv, wv, zv)
        np.testing.assert_allclose(zv, np.maximum(xv @ wv.T, 0), rtol=1e-5, atol=1e-6)


def test_symbolic_batch_scheduled_with_non_divisible_split():
    rng = np.random.default_rng(61)
    n = te.size_var("n")
    a = te.placeholder((n, 12), "int32", name="a")
    b = te.compute((n, 12), lambda i, j: a[i, j] * 3 - j, name="b")
    s = te.create_schedule(b.op)
    fused = s[b].fuse(*b.op.axis)
    fo, fi = s[b].split(fused, factor=16)
    s[b].parallel(fo)
    f = minitvm.build(s, [a, b])
    for bs in (3, 10):
        av = rand(rng, (bs, 12), "int32", -1000, 1000)
        bv = poison((bs, 12), "int32")
        f(av, bv)
        np.testing.assert_array_equal(bv, av * 3 - np.arange(12, dtype="int32"))


def test_symbolic_two_dims_and_mismatch():
    rng = np.random.default_rng(62)
    n, m = te.size_var("n"), te.size_var("m")
    a = te.placeholder((n, m), name="a")
    b = te.placeholder((m,), name="b")
    k = te.reduce_axis((0, m), name="k")
    c = te.compute((n,), lambda i: te.sum(a[i, k] * b[k], axis=k), name="c")
    f = minitvm.build(te.create_schedule(c.op), [a, b, c])
    for shape in ((4, 7), (9, 2)):
        av, bv = rand(rng, shape), rand(rng, shape[1])
        cv = poison(shape[0], "float32")
        f(av, bv, cv)
        np.testing.assert_allclose(cv, av @ bv, rtol=1e-5)
    with pytest.raises(minitvm.errors.ShapeError, match="m"):
        f(rand(rng, (4, 7)), rand(rng, 6), poison(4, "float32"))


def test_symbolic_shape_printed_in_lowered_ir():
    n = te.size_var("n")
    a = te.placeholder((n,), name="a")
    b = te.compute((n,), lambda i: a[i] + 1.0, name="b")
    text = str(minitvm.lower(te.create_schedule(b.op), [a, b], simple_mode=True))
    assert "for (i, 0, n) {" in text
