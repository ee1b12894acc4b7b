"""Matrix multiplication ``C[..., i, j] = sum_k A[..., i, k] * B[..., k, j]`` (numpy's matmul of
tensors of rank >= 2: the batch dimensions broadcast)."""
from __future__ import annotations

from ... import te
from ...errors import ShapeError
from ...tir.arith import simplify
from ...tir import expr as E
from .layout import _const


def matmul(A, B, out_dtype: str | None = None, name: str = "C"):
    """``A @ B``; inputs are widened to ``out_dtype`` (default: A's dtype) first. Tensors of rank > 2
    are stacks of matrices whose leading (batch) dimensions broadcast, as in numpy."""
    if A.ndim < 2 or B.ndim < 2:
        raise ShapeError(f"matmul: {A.name} and {B.name} must be at least 2-D, got {A.ndim}-D and {B.ndim}-D")
    if not _same(A.shape[-1], B.shape[-2], simplify):
        raise ShapeError(f"matmul: inner dimensions differ: {A.name} has {A.shape[-1]} columns, "
                         f"{B.name} has {B.shape[-2]} rows")
    out_dtype = out_dtype or A.dtype
    k = te.reduce_axis((0, A.shape[-1]), "k")
    if A.ndim == 2 and B.ndim == 2:
        return te.compute((A.shape[0], B.shape[1]),
                          lambda i, j: te.sum(A[i, k].astype(out_dtype) * B[k, j].astype(out_dtype), axis=k),
                          name=name)
    ba, bb = [_const(d) for d in A.shape[:-2]], [_const(d) for d in B.shape[:-2]]
    if None in ba or None in bb:
        raise ShapeError(f"matmul: the batch dimensions of {A.name} and {B.name} must be static")
    nb = max(len(ba), len(bb))
    ba, bb = [1] * (nb - len(ba)) + ba, [1] * (nb - len(bb)) + bb
    if any(x != y and 1 not in (x, y) for x, y in zip(ba, bb)):
        raise ShapeError(f"matmul: batch dimensions {A.shape[:-2]} of {A.name} and {B.shape[:-2]} of {B.name} "
                         "do not broadcast")
    batch = [max(x, y) for x, y in zip(ba, bb)]

    def rows(t, dims, b):
        """``t``'s batch index for output batch index ``b`` (right-aligned, extent 1 read at 0)."""
        own = t.ndim - 2
        return [E.const(0) if d == 1 and n != 1 else v for v, d, n in zip(b[nb - own:], dims[nb - own:],
                                                                              batch[nb - own:])]

    def f(*i):
        b, r, c = i[:-2], i[-2], i[-1]
        return te.sum(A(*rows(A, ba, b), r, k).astype(out_dtype) * B(*rows(B, bb, b), k, c).astype(out_dtype), axis=k)

    return te.compute(tuple(batch) + (A.shape[-2], B.shape[-1]), f, name=name, tag="batch_matmul")


def _same(a, b, simplify) -> bool:
    d = simplify(a - b)
    return isinstance(d, E.IntImm) and d.value == 0 or a is b
