"""CUDA schedule for ``topi.nn.dense`` (float) and ``dense_int8`` (with ``dp4a``).

Blocks tile (batch, units); threads keep a register tile; the reduction runs over k-tiles of
data and weight staged in shared memory (4-wide vector loads); for int8 the innermost 4 of
each k-tile are one ``__dp4a``. Knobs: ``tile_y`` / ``tile_x`` ([block, thread, inner]) and
``tile_k`` ([outer, inner]); epilogues (bias, requantize, relu) are inlined into the output.
"""
from __future__ import annotations

from ... import te
from ...errors import ScheduleError
from ..utils import apply_split, check_split, find_op, inline_between, largest_divisor
from .tensor_intrin import dp4a


def default_config(dense) -> dict:
    """Sound knob values for a dense layer of this shape."""
    M, N = (int(d.value) for d in dense.shape)
    K = int(dense.op.reduce_axis[0].dom.extent.value)
    ty = largest_divisor(M, 8)
    yi = largest_divisor(M // ty, 2)
    tx = largest_divisor(N, 32)
    xi = largest_divisor(N // tx, 2)
    if dense.op.input_tensors[0].dtype in ("int8", "uint8"):
        if K % 4:
            raise ScheduleError(f"dense_int8: the reduction length {K} must be a multiple of 4 for dp4a; "
                                "pad the input features")
        kt = 4 * largest_divisor(K // 4, 8)
    else:
        kt = largest_divisor(K, 32)
    return {"tile_y": [M // (ty * yi), ty, yi], "tile_x": [N // (tx * xi), tx, xi], "tile_k": [K // kt, kt]}



def schedule_dense(outs, cfg: dict | None = None):
    """Schedule the dense layer feeding ``outs`` (int8 inputs use dp4a)."""
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    dense = find_op(output, "dense", "schedule_dense").output(0)
    cfg = dict(default_config(dense), **(cfg or {}))
    data, weight = dense.op.input_tensors
    use_dp4a = data.dtype in ("int8", "uint8")
    inline_between(s, dense, output, "schedule_dense")
    if dense.op is output.op:
        dense = s.cache_write(dense, "local")
    else:
        s[dense].set_scope("local")
    AA = s.cache_read(data, "shared", [dense])
    WW = s.cache_read(weight, "shared", [dense])
    i, j = s[output].op.axis
    check_split(cfg, "tile_y", int(i.dom.extent.value), 3)
    check_split(cfg, "tile_x", int(j.dom.extent.value), 3)
    by, ty, yi = apply_split(s, output, i, cfg["tile_y"])
    bx, tx, xi = apply_split(s, output, j, cfg["tile_x"])
    s[output].reorder(by, bx, ty, tx, yi, xi)
    thread_y, thread_x = te.thread_axis("threadIdx.y"), te.thread_axis("threadIdx.x")
    s[output].bind(by, te.thread_axis("blockIdx.y"))
    s[output].bind(bx, te.thread_axis("blockIdx.x"))
    s[output].bind(ty, thread_y)
    s[output].bind(tx, thread_x)
    s[dense].compute_at(s[output], tx)
    (k,) = s[dense].op.reduce_axis
    K = int(k.dom.extent.value)
    check_split(cfg, "tile_k", K, 2)
    ko, ki = apply_split(s, dense, k, cfg["tile_k"])
    ci, cj = s[dense].op.axis
    if use_dp4a:
        if cfg["tile_k"][1] % 4:
            raise ScheduleError(f"knob tile_k: the inner k-tile ({cfg['tile_k'][1]}) must be a multiple of 4 for dp4a")
        kio, k4 = s[dense].split(ki, factor=4)
        s[dense].reorder(ko, kio, ci, cj, k4)
        s[dense].tensorize(k4, dp4a())
    else:
        s[dense].reorder(ko, ki, ci, cj)
        s[dense].unroll(ki)
    s[AA].compute_at(s[dense], ko)
    s[WW].compute_at(s[dense], ko)
    n_ty, n_tx = cfg["tile_y"][1], cfg["tile_x"][1]
    vec = 4 if cfg["tile_k"][1] % 4 == 0 else 1
    for load in (AA, WW):
        fused = s[load].fuse(*s[load].op.axis)
        if vec > 1:
            fused, v = s[load].split(fused, factor=vec)
            s[load].vectorize(v)
        fused, ltx = s[load].split(fused, factor=n_tx)
        fused, lty = s[load].split(fused, factor=n_ty)
        s[load].bind(ltx, thread_x)
        s[load].bind(lty, thread_y)
    return s
