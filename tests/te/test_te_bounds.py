"""Reads that bound analysis proves out of their tensor are refused when the compute is declared."""
import numpy as np
import pytest

from minitvm import te
from minitvm.errors import ShapeError
from minitvm.testing import build_run


def test_a_read_entirely_outside_the_tensor_is_refused():
    A = te.placeholder((16, 8), "float32", "A")
    with pytest.raises(ShapeError, match=r"index \(i \+ 100\) of A on axis 0 takes values in \[100, 115\], "
                                         r"outside \[0, 15\]"):
        te.compute((16, 8), lambda i, j: A[i + 100, j], name="B")


def test_an_unguarded_read_that_overruns_for_some_iterations_is_refused():
    A = te.placeholder((16, 8), "float32", "A")
    with pytest.raises(ShapeError, match="for some iterations"):
        te.compute((16, 8), lambda i, j: A[i, j + 1], name="B")
    k = te.reduce_axis((0, 9), "k")
    with pytest.raises(ShapeError, match=r"index k of A on axis 1 takes values in \[0, 8\]"):
        te.compute((16,), lambda i: te.sum(A[i, k], axis=k), name="S")


def test_a_guarded_read_is_the_guard_s_business():
    A = te.placeholder((16,), "float32", "A")
    B = te.compute((16,), lambda i: te.if_then_else(i < 15, A[i + 1], 0.0), name="B")
    a = np.random.default_rng(0).standard_normal(16).astype(np.float32)
    got = build_run(te.create_schedule(B.op), [A, B], a)
    np.testing.assert_array_equal(got, np.append(a[1:], 0.0).astype(np.float32))
