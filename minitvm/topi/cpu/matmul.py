"""A blocked, vectorized CPU schedule for ``topi.nn.matmul``."""
from __future__ import annotations

import numpy as np

from ... import autotune, te
from ...errors import ShapeError
from ...tir import expr as E
from ..nn.matmul import matmul
from ..generic import matmul as generic_matmul
from ..utils import largest_divisor
from .injective import schedule_reduce_per_output


def schedule_batch_matmul(outs):
    """CPU schedule of a batched ``topi.nn.matmul`` (tag ``batch_matmul``, epilogues inlined): each block
    of up to 8 output columns accumulates in ``local`` storage, vectorized, at one parallel loop over
    the batch, the rows and the column blocks."""
    return generic_matmul.schedule_batch_matmul(outs, schedule_reduce_per_output)


def schedule_matmul(C, bn: int = 32, kfactor: int = 4, vector: int = 16, parallel: bool = True):
    """Tile C in ``bn x bn`` blocks accumulated in a local buffer, vectorize the inner columns."""
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "local")
    i, j = s[C].op.axis
    io, jo, ii, ji = s[C].tile(i, j, bn, bn)
    s[CC].compute_at(s[C], jo)
    ci, cj = s[CC].op.axis
    (k,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(k, factor=kfactor)
    cjo, cji = s[CC].split(cj, factor=vector)
    s[CC].reorder(ko, ci, ki, cjo, cji)
    s[CC].unroll(ki)
    s[CC].vectorize(cji)
    jio, jii = s[C].split(ji, factor=vector)
    s[C].vectorize(jii)
    if parallel:
        s[C].parallel(io)
    return s


# --------------------------------------------------------------------------------------------
# The tunable template (minitvm.autotune)
# --------------------------------------------------------------------------------------------
def _matmul_reference(inputs, M, N, K, dtype="float32"):
    """numpy ``A @ B`` (accumulated in float64 / int64) for ``check_correctness``."""
    a, b = inputs
    wide = "float64" if np.dtype(dtype).kind == "f" else "int64"
    return [(a.astype(wide) @ b.astype(wide)).astype(dtype)]


@autotune.template("matmul.cpu", reference=_matmul_reference)
def matmul_cpu(cfg, M: int, N: int, K: int, dtype: str = "float32"):
    """Tunable CPU GEMM ``C[M, N] = A[M, K] @ B[K, N]``; returns ``(schedule, [A, B, C])``.

    Knobs: ``tile_y`` / ``tile_x`` — the [outer, inner] split of C's rows / columns (a tile of
    C accumulates in a local buffer); ``tile_k`` — the [outer, inner] split of the reduction
    (inner loop unrolled); ``vectorize`` — vectorize the tile's columns. The fallback (no tuned
    config) is ``schedule_matmul``'s 32 x 32 tiles, k split by 4, vectorized.
    Call ``matmul_cpu(M, N, K, dtype)`` to use the current dispatch context's config.
    """

    A = te.placeholder((M, K), dtype, "A")
    B = te.placeholder((K, N), dtype, "B")
    C = matmul(A, B)
    cfg.define_split("tile_y", M, num_outputs=2, max_factor=64)
    cfg.define_split("tile_x", N, num_outputs=2, max_factor=64)
    cfg.define_split("tile_k", K, num_outputs=2, max_factor=16)
    cfg.define_knob("vectorize", [True, False])
    if cfg.is_fallback:
        ty, tx, tk = largest_divisor(M, 32), largest_divisor(N, 32), largest_divisor(K, 4)
        cfg.fallback_with({"tile_y": [M // ty, ty], "tile_x": [N // tx, tx], "tile_k": [K // tk, tk],
                           "vectorize": True})

    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "local")
    i, j = s[C].op.axis
    io, ii = cfg["tile_y"].apply(s, C, i)
    jo, ji = cfg["tile_x"].apply(s, C, j)
    s[C].reorder(io, jo, ii, ji)
    s[CC].compute_at(s[C], jo)
    ci, cj = s[CC].op.axis
    (k,) = s[CC].op.reduce_axis
    ko, ki = cfg["tile_k"].apply(s, CC, k)
    s[CC].reorder(ko, ci, ki, cj)
    s[CC].unroll(ki)
    if cfg["vectorize"].val:
        s[CC].vectorize(cj)
        s[C].vectorize(ji)
    return s, [A, B, C]


def matmul_packed(A, B, bn: int = 16, name: str = "C"):
    """``A @ B`` with B first repacked into ``[ceil(N/bn), K, bn]`` panels (zero-padded), so the
    innermost loop reads one contiguous row of a panel. Returns ``(C, packed_B)``."""
    if A.ndim != 2 or B.ndim != 2:
        raise ShapeError(f"matmul_packed: {A.name} and {B.name} must be 2-D")
    if bn < 1:
        raise ShapeError(f"matmul_packed: the panel width bn must be positive, got {bn}")
    (m, k), (k2, n) = ([int(d.value) for d in t.shape] for t in (A, B))
    if k != k2:
        raise ShapeError(f"matmul_packed: {A.name} has {k} columns, {B.name} has {k2} rows")
    kk = te.reduce_axis((0, k), name="k")
    PB = te.compute(((n + bn - 1) // bn, k, bn),
                    lambda x, y, z: te.if_then_else(x * bn + z < n, B[y, x * bn + z], E.const(0, B.dtype)),
                    name="packedB")
    C = te.compute((m, n), lambda i, j: te.sum(A[i, kk] * PB[j // bn, kk, j % bn], axis=kk), name=name)
    return C, PB


def schedule_matmul_packed(C, PB, mr: int = 4, kunroll: int = 16, parallel: bool = False):
    """Register blocking for :func:`matmul_packed`: an ``mr x bn`` tile of C accumulates in a
    local buffer over all of k (k unrolled by ``kunroll``), B panels stay cached across row tiles."""
    nr = int(PB.shape[2].value)
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "local")
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[C].reorder(yo, xo, xi, yi)
    s[CC].compute_at(s[C], xo)
    ci, cj = s[CC].op.axis
    (ck,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(ck, factor=kunroll)
    s[CC].reorder(ko, ki, ci, cj)
    s[CC].unroll(ki)
    s[CC].unroll(ci)
    s[CC].vectorize(cj)
    s[C].vectorize(yi)
    s[PB].vectorize(s[PB].op.axis[2])
    if parallel:
        s[C].parallel(yo)
        s[PB].parallel(s[PB].op.axis[0])
    return s
