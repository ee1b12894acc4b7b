"""Matrix multiplication ``C[i, j] = sum_k A[i, k] * B[k, j]``."""
from __future__ import annotations

from ... import te
from ...errors import ShapeError
from ...tir.arith import simplify
from ...tir import expr as E


def matmul(A, B, out_dtype: str | None = None, name: str = "C"):
    """``A @ B`` for 2-D tensors; inputs are widened to ``out_dtype`` (default: A's dtype) first."""
    if A.ndim != 2 or B.ndim != 2:
        raise ShapeError(f"matmul: {A.name} and {B.name} must be 2-D, got {A.ndim}-D and {B.ndim}-D")
    if not _same(A.shape[1], B.shape[0], simplify):
        raise ShapeError(f"matmul: inner dimensions differ: {A.name} has {A.shape[1]} columns, "
                         f"{B.name} has {B.shape[0]} rows")
    out_dtype = out_dtype or A.dtype
    k = te.reduce_axis((0, A.shape[1]), "k")
    return te.compute((A.shape[0], B.shape[1]),
                      lambda i, j: te.sum(A[i, k].astype(out_dtype) * B[k, j].astype(out_dtype), axis=k),
                      name=name)


def _same(a, b, simplify) -> bool:
    d = simplify(a - b)
    return isinstance(d, E.IntImm) and d.value == 0 or a is b
