"""``topi.utils.cooperative_fetch``: the shared-memory fetch loop of the CUDA templates."""
import pytest

pytest.importorskip("cuda.bindings")

import minitvm  # noqa: E402
from minitvm import te  # noqa: E402
from minitvm.errors import ScheduleError  # noqa: E402
from minitvm.topi.utils import cooperative_fetch  # noqa: E402


def test_helper_without_vector_and_with_tags():
    A = te.placeholder((64, 64), "float32", "A")
    B = te.compute((64, 64), lambda i, j: A[i, j] * 2.0, name="B")
    s = te.create_schedule(B.op)
    AA = s.cache_read(A, "shared", [B])
    i, j = s[B].op.axis
    bi, ti = s[B].split(i, factor=16)
    bj, tj = s[B].split(j, factor=16)
    s[B].reorder(bi, bj, ti, tj)
    s[B].bind(bi, te.thread_axis("blockIdx.y"))
    s[B].bind(bj, te.thread_axis("blockIdx.x"))
    s[B].bind(ti, te.thread_axis("threadIdx.y"))
    s[B].bind(tj, te.thread_axis("threadIdx.x"))
    s[AA].compute_at(s[B], bj)
    rest = cooperative_fetch(s, AA, [(16, "threadIdx.x"), (16, "threadIdx.y")])
    assert rest in s[AA].leaf_iter_vars and s[AA].leaf_iter_vars[0] is rest
    src = minitvm.build(s, [A, B], "cuda -arch=sm_90").get_source()
    assert "__shared__" in src and "A_shared[(((int)threadIdx.y) * 16) + ((int)threadIdx.x)] = A[" in src


def test_helper_rejects_bad_counts():
    A = te.placeholder((8, 8), "float32", "A")
    B = te.compute((8, 8), lambda i, j: A[i, j] + 1.0, name="B")
    s = te.create_schedule(B.op)
    AA = s.cache_read(A, "shared", [B])
    with pytest.raises(ScheduleError, match="vector"):
        cooperative_fetch(s, AA, [(4, "threadIdx.x")], vector=0)
    with pytest.raises(ScheduleError, match="thread counts"):
        cooperative_fetch(s, AA, [(0, "threadIdx.x")])
