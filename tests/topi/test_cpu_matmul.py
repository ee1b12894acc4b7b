"""The packed, register-blocked CPU matmul of topi.cpu.matmul."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import ShapeError
from minitvm.topi.cpu.matmul import matmul_packed, schedule_matmul_packed


@pytest.mark.parametrize("m,n,k,parallel", [(8, 32, 16, False), (6, 20, 9, True)])
def test_packed_matmul_matches_numpy(m, n, k, parallel):
    A = te.placeholder((m, k), name="A")
    B = te.placeholder((k, n), name="B")
    C, PB = matmul_packed(A, B, bn=16)
    f = minitvm.build(schedule_matmul_packed(C, PB, mr=2, kunroll=4, parallel=parallel), [A, B, C])
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((m, k)).astype("float32"), rng.standard_normal((k, n)).astype("float32")
    c = np.full((m, n), np.nan, "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_packed_matmul_rejects_bad_shapes():
    A = te.placeholder((4, 8), name="A")
    with pytest.raises(ShapeError, match="8 columns"):
        matmul_packed(A, te.placeholder((7, 5), name="B"))
    with pytest.raises(ShapeError, match="2-D"):
        matmul_packed(A, te.placeholder((8,), name="B"))
    with pytest.raises(ShapeError, match="bn"):
        matmul_packed(A, te.placeholder((8, 5), name="B"), bn=0)
