"""A blocked, vectorized CPU schedule for ``topi.nn.matmul``."""
from __future__ import annotations


def schedule_matmul(C, bn: int = 32, kfactor: int = 4, vector: int = 16, parallel: bool = True):
    """Tile C in ``bn x bn`` blocks accumulated in a local buffer, vectorize the inner columns."""
    from ... import te
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
from ... import autotune  # noqa: E402
from ..utils import largest_divisor  # noqa: E402



def _matmul_reference(inputs, M, N, K, dtype="float32"):
    """numpy ``A @ B`` (accumulated in float64 / int64) for ``check_correctness``."""
    import numpy as np
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
    from ... import te
    from ..nn.matmul import matmul

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
