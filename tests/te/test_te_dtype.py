"""Dtype rules of the tensor-expression language (see minitvm/dtype.py and docs/te.md).

Both operands of an operator share one dtype; Python literals take the other side's dtype and
must fit it; arithmetic keeps the dtype (int8 + int8 wraps modulo 256); widening is explicit.
"""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import DtypeError
from minitvm.testing import build_run, poison, rand

N = 64


def test_mixing_int8_and_int32_needs_a_cast():
    a = te.placeholder((N,), "int8", name="a")
    b = te.placeholder((N,), "int32", name="b")
    with pytest.raises(DtypeError) as exc:
        te.compute((N,), lambda i: a[i] + b[i], name="c")
    msg = str(exc.value)
    assert "int8" in msg and "int32" in msg
    assert "astype" in msg                       # tells how to fix it


def test_mixing_float_and_int_needs_a_cast():
    x = te.placeholder((N,), "float32", name="x")
    n = te.placeholder((N,), "int32", name="n")
    with pytest.raises(DtypeError, match="float32.*int32|int32.*float32"):
        te.compute((N,), lambda i: x[i] * n[i])


def test_explicit_widening_is_accepted_and_exact():
    rng = np.random.default_rng(1)
    a = te.placeholder((N,), "int8", name="a")
    b = te.placeholder((N,), "int32", name="b")
    c = te.compute((N,), lambda i: a[i].astype("int32") + b[i], name="c")
    assert c.dtype == "int32"
    s = te.create_schedule(c.op)
    av, bv = rand(rng, N, "int8"), rand(rng, N, "int32", -10**6, 10**6)
    np.testing.assert_array_equal(build_run(s, [a, b, c], av, bv), av.astype("int32") + bv)


@pytest.mark.parametrize("value", [128, -129, 1000])
def test_int_literal_that_does_not_fit_int8(value):
    a = te.placeholder((N,), "int8", name="a")
    with pytest.raises(DtypeError, match=str(value)):
        a[0] + value
    with pytest.raises(DtypeError, match="int8"):
        a[0] * value


def test_int_literals_that_fit_take_the_other_dtype():
    a = te.placeholder((N,), "int8", name="a")
    e = a[0] + 127
    assert e.dtype == "int8"
    e = -128 + a[0]
    assert e.dtype == "int8"


def test_float_literal_with_int_expression_raises():
    a = te.placeholder((N,), "int32", name="a")
    with pytest.raises(DtypeError, match="0.5"):
        a[0] * 0.5


def test_sum_over_int8_asks_for_a_cast():
    a = te.placeholder((N,), "int8", name="a")
    k = te.reduce_axis((0, N), name="k")
    with pytest.raises(DtypeError, match="int8") as exc:
        te.compute((1,), lambda i: te.sum(a[k], axis=k), name="s")
    assert "astype" in str(exc.value)


def test_sum_over_int16_also_asks_for_a_cast():
    a = te.placeholder((N,), "int16", name="a")
    k = te.reduce_axis((0, N), name="k")
    with pytest.raises(DtypeError, match="int16"):
        te.sum(a[k], axis=k)


def test_max_over_int8_is_fine():
    """max/min cannot overflow, so they may stay narrow."""
    rng = np.random.default_rng(2)
    a = te.placeholder((4, N), "int8", name="a")
    k = te.reduce_axis((0, N), name="k")
    m = te.compute((4,), lambda i: te.max(a[i, k], axis=k), name="m")
    assert m.dtype == "int8"
    av = rand(rng, (4, N), "int8")
    np.testing.assert_array_equal(build_run(te.create_schedule(m.op), [a, m], av), av.max(axis=1))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_int8_arithmetic_stays_int8_and_wraps(op):
    rng = np.random.default_rng(3)
    a = te.placeholder((N,), "int8", name="a")
    b = te.placeholder((N,), "int8", name="b")
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y}[op]
    c = te.compute((N,), lambda i: fn(a[i], b[i]), name="c")
    assert c.dtype == "int8"
    av, bv = rand(rng, N, "int8"), rand(rng, N, "int8")
    av[:4] = [127, -128, 100, -100]          # make sure some lanes overflow
    bv[:4] = [127, -128, 100, -100]
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    with np.errstate(over="ignore"):
        want = fn(av, bv)                     # numpy int8 arithmetic wraps modulo 256
    assert want.dtype == np.int8
    np.testing.assert_array_equal(got, want)


def test_uint8_wraps():
    rng = np.random.default_rng(4)
    a = te.placeholder((N,), "uint8", name="a")
    c = te.compute((N,), lambda i: a[i] + 200, name="c")
    av = rand(rng, N, "uint8")
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_array_equal(got, (av + np.uint8(200)).astype("uint8"))


def test_narrowing_cast_wraps():
    rng = np.random.default_rng(5)
    a = te.placeholder((N,), "int32", name="a")
    c = te.compute((N,), lambda i: a[i].astype("int8"), name="c")
    av = rand(rng, N, "int32", -100000, 100000)
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_array_equal(got, av.astype("int8"))


def test_float_to_int_cast_truncates_toward_zero():
    rng = np.random.default_rng(6)
    a = te.placeholder((N,), "float32", name="a")
    c = te.compute((N,), lambda i: a[i].astype("int32"), name="c")
    av = rand(rng, N, "float32", -50.0, 50.0)
    got = build_run(te.create_schedule(c.op), [a, c], av)
    np.testing.assert_array_equal(got, np.trunc(av).astype("int32"))


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint8"])
def test_true_division_on_ints_raises(dtype):
    a = te.placeholder((N,), dtype, name="a")
    with pytest.raises(DtypeError, match="//"):
        a[0] / a[1]
    with pytest.raises(DtypeError):
        a[0] / 2


def test_true_division_on_floats():
    rng = np.random.default_rng(7)
    a = te.placeholder((N,), name="a")
    b = te.placeholder((N,), name="b")
    c = te.compute((N,), lambda i: a[i] / b[i], name="c")
    av, bv = rand(rng, N), rand(rng, N, lo=0.5, hi=2.0)
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_allclose(got, av / bv, rtol=1e-6)


def test_comparisons_give_bool_and_logic_needs_bool():
    a = te.placeholder((N,), "int32", name="a")
    assert (a[0] < a[1]).dtype == "bool"
    with pytest.raises(DtypeError, match="bool"):
        a[0] & a[1]
    with pytest.raises(DtypeError, match="bool"):
        ~a[0]


def test_expression_has_no_python_truth_value():
    a = te.placeholder((N,), "int32", name="a")
    with pytest.raises(DtypeError, match="if_then_else"):
        if a[0] < 3:
            pass


def test_if_then_else_branches_must_agree():
    a = te.placeholder((N,), "int32", name="a")
    x = te.placeholder((N,), "float32", name="x")
    with pytest.raises(DtypeError, match="int32.*float32|float32.*int32"):
        te.if_then_else(a[0] > 0, a[0], x[0])
    with pytest.raises(DtypeError, match="bool"):
        te.if_then_else(a[0], a[0], a[1])


def test_math_intrinsics_need_floats():
    a = te.placeholder((N,), "int32", name="a")
    for fn in (te.exp, te.log, te.sqrt, te.tanh, te.round, te.floor):
        with pytest.raises(DtypeError, match="astype"):
            fn(a[0])


def test_unknown_dtype():
    with pytest.raises(DtypeError, match="float31"):
        te.placeholder((4,), "float31")


def test_index_must_be_an_integer():
    a = te.placeholder((N,), name="a")
    x = te.placeholder((N,), name="x")
    with pytest.raises(DtypeError, match="integer"):
        te.compute((N,), lambda i: a[x[i]])


def test_numpy_dtype_objects_are_accepted():
    a = te.placeholder((N,), np.int16, name="a")
    assert a.dtype == "int16"
    b = te.placeholder((N,), np.dtype("float64"), name="b")
    assert b.dtype == "float64"


def test_int16_and_int64_arithmetic_bit_exact():
    rng = np.random.default_rng(8)
    a = te.placeholder((N,), "int16", name="a")
    b = te.placeholder((N,), "int64", name="b")
    c = te.compute((N,), lambda i: a[i] * a[i] + 7, name="c")       # wraps in int16
    d = te.compute((N,), lambda i: b[i] * 3 - (b[i] // 5), name="d")
    av = rand(rng, N, "int16")
    bv = rand(rng, N, "int64", -2**60, 2**60)
    s = te.create_schedule([c.op, d.op])
    f = minitvm.build(s, [a, b, c, d])
    cv, dv = poison(N, "int16"), poison(N, "int64")
    f(av, bv, cv, dv)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(cv, av * av + np.int16(7))
        np.testing.assert_array_equal(dv, bv * 3 - bv // 5)
