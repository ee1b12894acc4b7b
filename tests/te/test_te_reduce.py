"""Reductions (sum/max/min, where=, custom comm_reducer), shape and index-count errors."""
import numpy as np
import pytest

from minitvm import te
from minitvm.errors import DtypeError, ShapeError
from minitvm.testing import build_run, rand


def test_sum_over_one_axis():
    rng = np.random.default_rng(30)
    n, m = 33, 47
    a = te.placeholder((n, m), name="a")
    k = te.reduce_axis((0, m), name="k")
    b = te.compute((n,), lambda i: te.sum(a[i, k], axis=k), name="b")
    av = rand(rng, (n, m))
    np.testing.assert_allclose(build_run(te.create_schedule(b.op), [a, b], av), av.sum(axis=1), rtol=1e-5)


def test_sum_over_two_axes():
    rng = np.random.default_rng(31)
    a = te.placeholder((5, 6, 7), name="a")
    r1 = te.reduce_axis((0, 5), name="r1")
    r2 = te.reduce_axis((0, 7), name="r2")
    b = te.compute((6,), lambda j: te.sum(a[r1, j, r2], axis=[r1, r2]), name="b")
    av = rand(rng, (5, 6, 7))
    np.testing.assert_allclose(build_run(te.create_schedule(b.op), [a, b], av), av.sum(axis=(0, 2)), rtol=1e-5)


def test_full_reduction_to_one_element():
    rng = np.random.default_rng(32)
    a = te.placeholder((20, 30), "int32", name="a")
    r1 = te.reduce_axis((0, 20), name="r1")
    r2 = te.reduce_axis((0, 30), name="r2")
    b = te.compute((1,), lambda _: te.sum(a[r1, r2], axis=[r1, r2]), name="b")
    av = rand(rng, (20, 30), "int32", -1000, 1000)
    np.testing.assert_array_equal(build_run(te.create_schedule(b.op), [a, b], av), [av.sum()])


@pytest.mark.parametrize("red,ref", [(te.max, np.max), (te.min, np.min)])
@pytest.mark.parametrize("dtype", ["float32", "int32", "int8"])
def test_max_min_over_two_axes(red, ref, dtype):
    rng = np.random.default_rng(33)
    a = te.placeholder((4, 9, 11), dtype, name="a")
    r1 = te.reduce_axis((0, 9), name="r1")
    r2 = te.reduce_axis((0, 11), name="r2")
    b = te.compute((4,), lambda i: red(a[i, r1, r2], axis=[r1, r2]), name="b")
    av = rand(rng, (4, 9, 11), dtype)
    np.testing.assert_array_equal(build_run(te.create_schedule(b.op), [a, b], av), ref(av, axis=(1, 2)))


def test_reduce_axis_with_nonzero_start():
    rng = np.random.default_rng(34)
    a = te.placeholder((6, 20), name="a")
    k = te.reduce_axis((5, 17), name="k")
    b = te.compute((6,), lambda i: te.sum(a[i, k], axis=k), name="b")
    av = rand(rng, (6, 20))
    np.testing.assert_allclose(build_run(te.create_schedule(b.op), [a, b], av), av[:, 5:17].sum(axis=1),
                               rtol=1e-5)


def test_max_with_where_masks_elements():
    """Row-wise max over the strictly-lower triangle (row 0 has no element: the identity, -inf)."""
    rng = np.random.default_rng(35)
    n = 12
    a = te.placeholder((n, n), name="a")
    k = te.reduce_axis((0, n), name="k")
    b = te.compute((n,), lambda i: te.max(a[i, k], axis=k, where=k < i), name="b")
    av = rand(rng, (n, n))
    got = build_run(te.create_schedule(b.op), [a, b], av)
    want = np.array([av[i, :i].max() if i else -np.inf for i in range(n)], "float32")
    np.testing.assert_array_equal(got, want)


def test_min_with_where_int_identity_is_dtype_max():
    rng = np.random.default_rng(36)
    n = 10
    a = te.placeholder((n, n), "int32", name="a")
    k = te.reduce_axis((0, n), name="k")
    b = te.compute((n,), lambda i: te.min(a[i, k], axis=k, where=k > i), name="b")
    av = rand(rng, (n, n), "int32", -100, 100)
    got = build_run(te.create_schedule(b.op), [a, b], av)
    want = np.array([av[i, i + 1:].min() if i < n - 1 else np.iinfo("int32").max for i in range(n)], "int32")
    np.testing.assert_array_equal(got, want)


def test_sum_with_where_counts_positive_entries():
    rng = np.random.default_rng(37)
    a = te.placeholder((8, 64), "int32", name="a")
    k = te.reduce_axis((0, 64), name="k")
    b = te.compute((8,), lambda i: te.sum(a[i, k], axis=k, where=a[i, k] > 0), name="b")
    av = rand(rng, (8, 64), "int32", -50, 50)
    np.testing.assert_array_equal(build_run(te.create_schedule(b.op), [a, b], av), np.where(av > 0, av, 0).sum(1))


def test_where_must_be_bool():
    a = te.placeholder((8,), name="a")
    k = te.reduce_axis((0, 8), name="k")
    with pytest.raises(DtypeError, match="bool"):
        te.sum(a[k], axis=k, where=k)


def test_custom_product_reducer():
    rng = np.random.default_rng(38)
    prod = te.comm_reducer(lambda x, y: x * y, lambda dtype: 1, name="prod")
    a = te.placeholder((7, 9), name="a")
    k = te.reduce_axis((0, 9), name="k")
    b = te.compute((7,), lambda i: prod(a[i, k], axis=k), name="b")
    av = rand(rng, (7, 9), lo=0.5, hi=1.5)
    np.testing.assert_allclose(build_run(te.create_schedule(b.op), [a, b], av), av.prod(axis=1), rtol=1e-5)


def test_custom_product_reducer_int_wraps():
    rng = np.random.default_rng(39)
    prod = te.comm_reducer(lambda x, y: x * y, lambda dtype: 1, name="prod")
    a = te.placeholder((5, 40), "int32", name="a")
    k = te.reduce_axis((0, 40), name="k")
    b = te.compute((5,), lambda i: prod(a[i, k], axis=k), name="b")
    av = rand(rng, (5, 40), "int32", -9, 9)
    av[av == 0] = 3
    with np.errstate(over="ignore"):
        want = np.multiply.reduce(av, axis=1, dtype="int32")
    np.testing.assert_array_equal(build_run(te.create_schedule(b.op), [a, b], av), want)


def test_custom_absmax_reducer_with_dtype_dependent_identity():
    rng = np.random.default_rng(40)
    absmax = te.comm_reducer(lambda x, y: te.max(te.abs(x), te.abs(y)), lambda dtype: 0, name="absmax")
    a = te.placeholder((6, 17), "int16", name="a")
    k = te.reduce_axis((0, 17), name="k")
    b = te.compute((6,), lambda i: absmax(a[i, k], axis=k), name="b")
    av = rand(rng, (6, 17), "int16", -30000, 30000)
    np.testing.assert_array_equal(build_run(te.create_schedule(b.op), [a, b], av), np.abs(av).max(axis=1))


def test_argmax_like_via_two_stages():
    """Max then first index attaining it, with a where= on the second reduction."""
    rng = np.random.default_rng(41)
    a = te.placeholder((5, 30), "int32", name="a")
    k = te.reduce_axis((0, 30), name="k")
    mx = te.compute((5,), lambda i: te.max(a[i, k], axis=k), name="mx")
    k2 = te.reduce_axis((0, 30), name="k2")
    arg = te.compute((5,), lambda i: te.min(k2, axis=k2, where=a[i, k2] == mx[i]), name="arg")
    av = rand(rng, (5, 30), "int32", -20, 20)
    got = build_run(te.create_schedule(arg.op), [a, arg], av)
    np.testing.assert_array_equal(got, av.argmax(axis=1))


def test_reduction_must_be_whole_body():
    a = te.placeholder((8, 8), name="a")
    k = te.reduce_axis((0, 8), name="k")
    with pytest.raises(ShapeError, match="whole body"):
        te.compute((8,), lambda i: te.sum(a[i, k], axis=k) + 1.0, name="bad")


def test_reduce_needs_reduce_axis():
    a = te.placeholder((8, 8), name="a")
    other = te.compute((8,), lambda j: a[j, 0], name="other")
    data_axis = other.op.axis[0]                  # a data-parallel axis, not a te.reduce_axis
    with pytest.raises(ShapeError, match="reduce_axis"):
        te.compute((8,), lambda i: te.sum(a[i, data_axis], axis=data_axis), name="bad")
    with pytest.raises(ShapeError, match="reduce_axis"):
        te.compute((8,), lambda i: te.max(a[i, data_axis], axis=[data_axis]), name="bad")


def test_a_reduce_axis_given_twice_is_refused():
    a = te.placeholder((3, 4), name="a")
    k = te.reduce_axis((0, 4), name="k")
    with pytest.raises(ShapeError, match="reduce axis k is given twice"):
        te.compute((3,), lambda i: te.sum(a[i, k], axis=[k, k]), name="twice")


def test_reducers_on_two_expressions_combine_elementwise():
    """As in TVM, ``te.sum(x, y)`` / ``te.max(x, y)`` with an expression as second argument combine."""
    rng = np.random.default_rng(44)
    a = te.placeholder((16,), "int32", name="a")
    b = te.placeholder((16,), "int32", name="b")
    c = te.compute((16,), lambda i: te.sum(a[i], b[i]) * 100 + te.max(a[i], b[i]) - te.min(a[i], 3), name="c")
    av, bv = rand(rng, 16, "int32", -50, 50), rand(rng, 16, "int32", -50, 50)
    got = build_run(te.create_schedule(c.op), [a, b, c], av, bv)
    np.testing.assert_array_equal(got, (av + bv) * 100 + np.maximum(av, bv) - np.minimum(av, 3))


def test_empty_reduce_axis():
    with pytest.raises(ShapeError, match="empty"):
        te.reduce_axis((4, 4), name="k")
    with pytest.raises(ShapeError):
        te.reduce_axis((0, 1, 2), name="k")


# ----------------------------------------------------------------------------------------
# shapes and index counts
# ----------------------------------------------------------------------------------------
def test_too_many_indices_names_the_tensor():
    a = te.placeholder((4, 5), name="weights")
    with pytest.raises(ShapeError, match="weights") as exc:
        a[1, 2, 3]
    assert "2 dimensions" in str(exc.value) and "3 indices" in str(exc.value)


def test_too_few_indices():
    a = te.placeholder((4, 5), name="a")
    with pytest.raises(ShapeError, match="1 indices"):
        te.compute((4,), lambda i: a[i])


def test_compute_function_arity_must_match_shape():
    a = te.placeholder((4, 5), name="a")
    with pytest.raises(ShapeError, match="2 dimensions") as exc:
        te.compute((4, 5), lambda i: a[i, 0], name="bad")
    assert "bad" in str(exc.value)


def test_compute_with_star_args():
    rng = np.random.default_rng(42)
    a = te.placeholder((3, 4, 5), name="a")
    b = te.compute(a.shape, lambda *idx: a(*idx) * 3.0, name="b")
    av = rand(rng, (3, 4, 5))
    np.testing.assert_allclose(build_run(te.create_schedule(b.op), [a, b], av), av * 3, rtol=1e-6)


@pytest.mark.parametrize("shape", [(0,), (4, -1), (3, 0, 2)])
def test_non_positive_shapes(shape):
    with pytest.raises(ShapeError, match="positive"):
        te.placeholder(shape, name="p")
    with pytest.raises(ShapeError, match="positive"):
        te.compute(shape, lambda *i: te.const(1.0), name="c")


def test_float_shape_rejected():
    with pytest.raises((ShapeError, DtypeError)):
        te.placeholder((2.5, 3), name="p")


def test_tensor_properties():
    a = te.placeholder((4, 5), "int8", name="a")
    assert a.ndim == 2 and a.dtype == "int8" and a.name == "a"
    assert [int(s.value) for s in a.shape] == [4, 5]
    b = te.compute((4,), lambda i: a[i, 0].astype("int32"), name="b")
    assert b.op.input_tensors == [a]
    assert len(b.op.axis) == 1 and b.op.reduce_axis == ()


def test_multiple_outputs_from_one_compute():
    rng = np.random.default_rng(43)
    a = te.placeholder((16,), name="a")
    lo, hi = te.compute((16,), lambda i: (a[i] - 1.0, a[i] + 1.0), name="pm")
    assert lo.op is hi.op and lo.value_index == 0 and hi.value_index == 1
    s = te.create_schedule(lo.op)
    av = rand(rng, 16)
    got_lo, got_hi = build_run(s, [a, lo, hi], av)
    np.testing.assert_allclose(got_lo, av - 1, rtol=1e-6)
    np.testing.assert_allclose(got_hi, av + 1, rtol=1e-6)
