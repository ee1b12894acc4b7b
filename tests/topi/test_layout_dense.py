"""Packed layouts (parse, transform, round trips) and dense computes on the CPU."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import DtypeError, ShapeError
from minitvm.topi import testing
from minitvm.topi.generic.tensor_intrin import dp4a
from minitvm.topi.nn.dense import dense, dense_int8
from minitvm.topi.nn.layout import Layout, layout_transform

rng = np.random.default_rng(3)


def _run(outs, args, *arrays):
    s = te.create_schedule([o.op for o in outs])
    f = minitvm.build(s, args, "llvm")
    res = [np.full([int(d.value) for d in o.shape], 77, o.dtype) for o in outs]
    f(*arrays, *res)
    return res


def test_layout_parsing():
    lay = Layout.parse("NCHW4c")
    assert lay.primal == ("N", "C", "H", "W") and lay.factor("C") == 4 and lay.factor("H") == 1
    assert Layout.parse("OIHW4o4i").shape({"O": 64, "I": 32, "H": 3, "W": 3}) == (16, 8, 3, 3, 4, 4)
    assert Layout.parse("NCHW16c").shape({"N": 1, "C": 3, "H": 5, "W": 5}) == (1, 1, 5, 5, 16)
    for bad, msg in (("NCHW4", "parse"), ("NCHW4c2c", "at most one"), ("NCHc4c", "positive factor"), ("NCHW4x", "no primal"),
                     ("NC0c", "positive"), ("", "non-empty"), ("NNCHW", "twice")):
        with pytest.raises(ShapeError, match=msg):
            Layout.parse(bad)


@pytest.mark.parametrize("C,factor", [(3, 4), (8, 4), (6, 4), (32, 16), (5, 8)])
def test_nchw_pack_unpack_round_trip(C, factor):
    X = te.placeholder((2, C, 3, 5), "int8", "X")
    P = layout_transform(X, "NCHW", f"NCHW{factor}c")
    U = layout_transform(P, f"NCHW{factor}c", "NCHW", {"C": C})
    x = rng.integers(-128, 128, (2, C, 3, 5), dtype=np.int8)
    p, u = _run([P, U], [X, P, U], x)
    np.testing.assert_array_equal(p, testing.pack_nchwc(x, factor))
    np.testing.assert_array_equal(u, x)


@pytest.mark.parametrize("O,I", [(8, 4), (8, 6), (3, 5)])
def test_oihw_packing(O, I):
    W = te.placeholder((O, I, 3, 2), "int8", "W")
    P = layout_transform(W, "OIHW", "OIHW4o4i")
    w = rng.integers(-128, 128, (O, I, 3, 2), dtype=np.int8)
    (p,) = _run([P], [W, P], w)
    np.testing.assert_array_equal(p, testing.pack_oihw(w))


def test_layout_transform_errors():
    X = te.placeholder((1, 4, 2, 2), "float32", "X")
    with pytest.raises(ShapeError, match="different primal axes"):
        layout_transform(X, "NCHW", "NCDW4c")
    with pytest.raises(ShapeError, match="dimensions"):
        layout_transform(X, "NCHW4c", "NCHW")


@pytest.mark.parametrize("M,N,K", [(4, 10, 16), (1, 7, 64), (3, 5, 12)])
def test_dense_int8_with_dp4a_on_cpu(M, N, K):
    A = te.placeholder((M, K), "int8", "A")
    W = te.placeholder((N, K), "int8", "W")
    C = dense_int8(A, W)
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].tensorize(ki, dp4a())
    f = minitvm.build(s, [A, W, C], "llvm")
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    w = rng.integers(-128, 128, (N, K), dtype=np.int8)
    c = np.full((M, N), 5, np.int32)
    f(a, w, c)
    np.testing.assert_array_equal(c, a.astype(np.int32) @ w.astype(np.int32).T)


def test_dense_float_with_bias():
    A = te.placeholder((3, 8), "float32", "A")
    W = te.placeholder((5, 8), "float32", "W")
    B = te.placeholder((5,), "float32", "B")
    C = dense(A, W, B)
    a, w, b = (rng.standard_normal(s).astype("float32") for s in ((3, 8), (5, 8), (5,)))
    (c,) = _run([C], [A, W, B, C], a, w, b)
    np.testing.assert_allclose(c, a @ w.T + b, rtol=1e-5)


def test_dense_errors():
    A = te.placeholder((3, 8), "float32", "A")
    with pytest.raises(ShapeError, match="input features"):
        dense(A, te.placeholder((5, 7), "float32", "W"))
    with pytest.raises(DtypeError, match="int8"):
        dense_int8(A, te.placeholder((5, 8), "float32", "W"))
    with pytest.raises(DtypeError, match="data is float32"):
        dense(A, te.placeholder((5, 8), "int8", "W"))
