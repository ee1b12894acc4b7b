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
