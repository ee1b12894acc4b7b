"""The quantized ops' numpy references: rounding ties, saturation, negatives, type inference."""
from fractions import Fraction

import numpy as np
import pytest

from minitvm.errors import DtypeError, GraphError, ShapeError
from minitvm.graph import Graph, run_reference
from minitvm.graph.quantize import (dequantize_np, multiplier_shift, qadd_np, qadd_params, qconcatenate_np,
                                    quantize_np, requantize_np, requantize_per_channel_np)
from minitvm.topi import testing as topi_testing
from minitvm.topi.nn.elemwise import quantize_multiplier


def _run1(op, x, attrs, extra=()):
    g = Graph("t")
    g.add_input("x", x.shape, x.dtype.name)
    ins = ["x"]
    for i, c in enumerate(extra):
        ins.append(g.add_const(f"c{i}", c))
    g.mark_output(g.add_op(op, ins, attrs))
    g.validate()
    return run_reference(g, {"x": x})[0]


def _round_half_away(fr: Fraction) -> int:
    n = abs(fr)
    q = int(n + Fraction(1, 2))  # floor(|x| + 1/2)
    return q if fr >= 0 else -q


# ---------------------------------------------------------------------------------------- quantize
def test_quantize_ties_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 3.5], np.float32)
    np.testing.assert_array_equal(quantize_np(x, 1.0), [0, 2, 2, 0, -2, -2, 0, 4])
    # scale 0.25: x / 0.25 is exact in float32
    np.testing.assert_array_equal(quantize_np(np.array([0.125, 0.375, -0.375], np.float32), 0.25), [0, 2, -2])


def test_quantize_saturates_and_handles_infinities():
    x = np.array([1000, -1000, 127.4, 127.6, -128.4, -128.6, np.inf, -np.inf], np.float32)
    np.testing.assert_array_equal(quantize_np(x, 1.0), [127, -128, 127, 127, -128, -128, 127, -128])
    assert quantize_np(x, 1.0).dtype == np.int8
    np.testing.assert_array_equal(quantize_np(np.array([3e9, -3e9], np.float32), 1.0, "int32"),
                                  [2 ** 31 - 1, -2 ** 31])


def test_quantize_is_float32_division():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10000).astype(np.float32) * 3
    s = 0.0371
    want = np.clip(np.rint(x / np.float32(s)), -128, 127).astype(np.int8)
    got = _run1("quantize", x, {"scale": s})
    np.testing.assert_array_equal(got, want)


def test_dequantize():
    q = np.array([-128, -1, 0, 1, 127], np.int8)
    got = _run1("dequantize", q, {"scale": 0.1})
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, q.astype(np.float32) * np.float32(0.1))
    big = np.array([2 ** 24 + 1, -(2 ** 31)], np.int32)
    np.testing.assert_array_equal(dequantize_np(big, 2.0), [2.0 ** 25, -(2.0 ** 32)])


def test_quantize_type_errors():
    g = Graph("t")
    g.add_input("i", (4,), "int8")
    g.add_input("f", (4,), "float32")
    with pytest.raises(DtypeError, match="float"):
        g.add_op("quantize", ["i"], {"scale": 1.0})
    with pytest.raises(DtypeError, match="integer"):
        g.add_op("dequantize", ["f"], {"scale": 1.0})
    with pytest.raises(GraphError, match="positive"):
        g.add_op("quantize", ["f"], {"scale": 0.0})


# ---------------------------------------------------------------------------------------- requantize
def test_requantize_matches_topi_testing():
    rng = np.random.default_rng(1)
    acc = np.concatenate([rng.integers(-2 ** 31, 2 ** 31, 5000, dtype=np.int64),
                          rng.integers(-3000, 3000, 5000), [-2 ** 31, 2 ** 31 - 1, 0, 1, -1]]).astype(np.int32)
    for scale in (0.5, 0.013, 1.0, 3.7e-5, 1.9):
        m, s = quantize_multiplier(scale)
        for rounding in ("TONEAREST", "UPWARD"):
            want = topi_testing.requantize(acc, m, s, rounding)
            got = _run1("requantize", acc, {"multiplier": m, "shift": s, "rounding": rounding})
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.int8


def test_requantize_ties_and_saturation():
    m, s = 1 << 30, 0  # scale 0.5
    acc = np.array([1, -1, 3, -3, 5, -5, 1000, -1000, 254, 255, -256, -258], np.int32)
    np.testing.assert_array_equal(requantize_np(acc, m, s, "TONEAREST"),
                                  [1, -1, 2, -2, 3, -3, 127, -128, 127, 127, -128, -128])
    np.testing.assert_array_equal(requantize_np(acc, m, s, "UPWARD"),
                                  [1, 0, 2, -1, 3, -2, 127, -128, 127, 127, -128, -128])


def test_requantize_input_checks():
    g = Graph("t")
    g.add_input("x", (4,), "int8")
    with pytest.raises(DtypeError, match="int32"):
        g.add_op("requantize", ["x"], {"multiplier": 1 << 30, "shift": 0})
    g.add_input("y", (4,), "int32")
    with pytest.raises(GraphError, match="Q31"):
        g.add_op("requantize", ["y"], {"multiplier": 2 ** 31, "shift": 0})
    with pytest.raises(GraphError, match="shift"):
        g.add_op("requantize", ["y"], {"multiplier": 1 << 30, "shift": 40})
    with pytest.raises(GraphError, match="rounding"):
        g.add_op("requantize", ["y"], {"multiplier": 1 << 30, "shift": 0, "rounding": "DOWN"})


def test_requantize_per_channel():
    rng = np.random.default_rng(2)
    acc = rng.integers(-50000, 50000, (2, 3, 4, 4)).astype(np.int32)
    scales = [0.001, 0.0137, 2.5e-4]
    ms = np.array([multiplier_shift(s) for s in scales], np.int32)
    got = _run1("requantize_per_channel", acc, {"axis": 1}, extra=(ms[:, 0].copy(), ms[:, 1].copy()))
    for c in range(3):
        np.testing.assert_array_equal(got[:, c], requantize_np(acc[:, c], ms[c, 0], ms[c, 1]))
    np.testing.assert_array_equal(
        requantize_per_channel_np(acc, ms[:, 0], ms[:, 1], axis=1, rounding="UPWARD")[:, 2],
        requantize_np(acc[:, 2], ms[2, 0], ms[2, 1], "UPWARD"))
    g = Graph("t")
    g.add_input("x", (2, 3), "int32")
    g.add_const("m", np.ones(2, np.int32))
    g.add_const("s", np.zeros(3, np.int32))
    with pytest.raises(ShapeError, match="one per channel"):
        g.add_op("requantize_per_channel", ["x", "m", "s"])


def test_multiplier_shift_extremes():
    assert multiplier_shift(1.0) == (1 << 30, -1)
    m, s = multiplier_shift(1e-12)  # below 2**-32: shift capped at 31, multiplier shrinks
    assert s == 31 and 1 <= m < 2 ** 31
    assert abs(m / 2 ** 62 - 1e-12) / 1e-12 < 1e-3
    for sc in (0.3, 1e-5, 123.0):
        m, s = multiplier_shift(sc)
        assert 2 ** 30 <= m < 2 ** 31 and abs(m / 2.0 ** (31 + s) - sc) / sc < 1e-9
    for bad in (0.0, -1.0, float("inf"), 2.0 ** 30):
        with pytest.raises(ValueError):
            multiplier_shift(bad)


# ---------------------------------------------------------------------------------------- qadd
def _qadd_exact(a, b, ma, sa, mb, sb, rounding="TONEAREST"):
    out = []
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
        v = Fraction(x * ma, 2 ** (31 + sa)) + Fraction(y * mb, 2 ** (31 + sb))
        if rounding == "TONEAREST":
            q = _round_half_away(v)
        else:
            q = int(np.floor(v + Fraction(1, 2)))
        out.append(min(127, max(-128, q)))
    return np.array(out).reshape(a.shape)


def test_qadd_exact_single_rounding():
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, 2000).astype(np.int8)
    b = rng.integers(-128, 128, 2000).astype(np.int8)
    for sa, sb in ((0.7, 0.3), (0.013, 1.7), (1.0, 1.0), (2.0, 1e-6)):
        p = qadd_params(sa, sb)
        for rounding in ("TONEAREST", "UPWARD"):
            got = qadd_np(a, b, p["a_multiplier"], p["a_shift"], p["b_multiplier"], p["b_shift"], rounding)
            want = _qadd_exact(a, b, p["a_multiplier"], p["a_shift"], p["b_multiplier"], p["b_shift"], rounding)
            np.testing.assert_array_equal(got, want)


def test_qadd_ties_saturation_graph():
    half = {"a_multiplier": 1 << 30, "a_shift": 0, "b_multiplier": 1 << 30, "b_shift": 0}  # 0.5 each
    a = np.array([1, -1, 0, 127, -128, 3], np.int8)
    b = np.array([0, 0, -1, 127, -128, 0], np.int8)
    np.testing.assert_array_equal(qadd_np(a, b, **half), [1, -1, -1, 127, -128, 2])
    np.testing.assert_array_equal(qadd_np(a, b, **half, rounding="UPWARD"), [1, 0, 0, 127, -128, 2])
    one = {"a_multiplier": 1 << 30, "a_shift": -1, "b_multiplier": 1 << 30, "b_shift": -1}  # 1.0 each
    np.testing.assert_array_equal(qadd_np(a, b, **one), [1, -1, -1, 127, -128, 3])
    g = Graph("t")
    g.add_input("a", (2, 6), "int8")
    g.add_input("b", (6,), "int8")  # broadcasts
    g.mark_output(g.add_op("qadd", ["a", "b"], half))
    out = run_reference(g, {"a": np.stack([a, a]), "b": b})[0]
    np.testing.assert_array_equal(out[1], [1, -1, -1, 127, -128, 2])
    with pytest.raises(GraphError, match="overflow"):
        g.add_op("qadd", ["a", "b"], {**half, "b_shift": 24})
    g.add_input("c", (6,), "int32")
    with pytest.raises(DtypeError, match="int8"):
        g.add_op("qadd", ["a", "c"], half)


def test_qadd_params_far_apart_scales():
    p = qadd_params(1.0, 1e-12)
    assert abs((31 + p["a_shift"]) - (31 + p["b_shift"])) <= 23
    a = np.array([5, -7], np.int8)
    np.testing.assert_array_equal(qadd_np(a, np.array([127, -128], np.int8), **p), [5, -7])


# ---------------------------------------------------------------------------------------- qconcatenate
def test_qconcatenate():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 2, 3, 3)).astype(np.int8)
    y = rng.integers(-128, 128, (1, 3, 3, 3)).astype(np.int8)
    ident = (1 << 30, -1)
    m, s = multiplier_shift(0.37)
    got = qconcatenate_np([x, y], [ident[0], m], [ident[1], s], axis=1)
    np.testing.assert_array_equal(got[:, :2], x)
    np.testing.assert_array_equal(got[:, 2:], requantize_np(y.astype(np.int32), m, s))
    m2, s2 = multiplier_shift(3.0)  # upscaling saturates
    np.testing.assert_array_equal(qconcatenate_np([y], [m2], [s2]), np.clip(y.astype(int) * 3, -128, 127))
    g = Graph("t")
    g.add_input("x", x.shape, "int8")
    g.add_input("y", y.shape, "int8")
    g.mark_output(g.add_op("qconcatenate", ["x", "y"], {"multipliers": [ident[0], m], "shifts": [ident[1], s]}))
    assert g.node(g.outputs[0]).type.shape == (1, 5, 3, 3)
    np.testing.assert_array_equal(run_reference(g, {"x": x, "y": y})[0], got)
    with pytest.raises(GraphError, match="2 inputs"):
        g.add_op("qconcatenate", ["x", "y"], {"multipliers": [m], "shifts": [s]})


def test_existing_ops_accept_int8():
    x = np.array([[[[-3, 5], [7, -128]]]], np.int8)
    np.testing.assert_array_equal(_run1("relu", x, {}), np.maximum(x, 0))
    np.testing.assert_array_equal(_run1("max_pool2d", x, {"pool_size": 2}), [[[[7]]]])
    np.testing.assert_array_equal(_run1("max_pool2d", x, {"pool_size": 2, "padding": 1, "strides": 2}),
                                  [[[[-3, 5], [7, -128]]]])


@pytest.mark.parametrize("params", [
    {"a_multiplier": 1 << 30, "a_shift": -1, "b_multiplier": 1 << 30, "b_shift": -1},   # 1.0 + 1.0: int32 add
    {"a_multiplier": 1 << 30, "a_shift": -2, "b_multiplier": 1 << 30, "b_shift": -1},   # 2.0 + 1.0: int32 too
    {"a_multiplier": 1 << 30, "a_shift": 0, "b_multiplier": 1 << 30, "b_shift": 0},     # 0.5 + 0.5: int64, rounded
    {"a_multiplier": 1518500250, "a_shift": 0, "b_multiplier": 1 << 30, "b_shift": -1},
], ids=["equal-scales", "integer-factors", "halves", "general"])
def test_compiled_qadd_equals_the_reference(params):
    """The compiled qadd (an exact int32 sum where both rescales are integers) gives qadd_np's bits."""
    import minitvm
    from minitvm import te
    from minitvm.topi.nn.qnn import qadd
    A, B = te.placeholder((256,), "int8", "A"), te.placeholder((256,), "int8", "B")
    C = qadd(A, B, **params)
    f = minitvm.build(te.create_schedule(C.op), [A, B, C], "llvm")
    a = np.arange(-128, 128, dtype=np.int8)
    b = np.random.default_rng(5).permutation(a)
    c = minitvm.nd.array(np.full(256, 99, np.int8))
    f(minitvm.nd.array(a), minitvm.nd.array(b), c)
    np.testing.assert_array_equal(c.numpy(), qadd_np(a, b, **params))
