"""CUDA schedule for float ``conv2d_nchw`` (direct convolution, after TVM's ``conv2d_direct``).

Blocks tile (output channels, rows, columns); virtual threads and threads split the tile;
padded input and weights are staged through shared memory per reduction tile; each thread
accumulates in registers. Knobs: ``tile_f``, ``tile_y``, ``tile_x`` ([block, vthread,
thread, inner]), ``tile_rc``, ``tile_ry``, ``tile_rx`` ([outer, inner]),
``auto_unroll_max_step``.
"""
from __future__ import annotations

from ... import te
from ...te.tensor import ComputeOp
from ..utils import apply_split, check_split, find_op, inline_between, largest_divisor


def default_config(conv) -> dict:
    """Sound knob values for a conv2d_nchw of this shape."""
    N, O, OH, OW = (int(d.value) for d in conv.shape)
    C, KH, KW = (int(iv.dom.extent.value) for iv in conv.op.reduce_axis)
    tf = largest_divisor(O, 8)
    fi = largest_divisor(O // tf, 4)
    tx = largest_divisor(OW, 8)
    ty = largest_divisor(OH, max(1, 64 // (tf * tx)))
    rci = largest_divisor(C, 8)
    return {"tile_f": [O // (tf * fi), 1, tf, fi], "tile_y": [OH // ty, 1, ty, 1], "tile_x": [OW // tx, 1, tx, 1],
            "tile_rc": [C // rci, rci], "tile_ry": [KH, 1], "tile_rx": [KW, 1], "auto_unroll_max_step": 256}



def schedule_conv2d_nchw(outs, cfg: dict | None = None):
    """Schedule the float convolution feeding ``outs`` (epilogues inlined)."""
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    conv = find_op(output, "conv2d_nchw", "schedule_conv2d_nchw").output(0)
    cfg = dict(default_config(conv), **(cfg or {}))
    pad_data, kernel = conv.op.input_tensors
    if isinstance(pad_data.op, ComputeOp) and "pad" in pad_data.op.tag:
        s[pad_data].compute_inline()
    inline_between(s, conv, output, "schedule_conv2d_nchw")
    if conv.op is output.op:
        conv = s.cache_write(conv, "local")
    else:
        s[conv].set_scope("local")
    AA = s.cache_read(conv.op.input_tensors[0], "shared", [conv])
    WW = s.cache_read(conv.op.input_tensors[1], "shared", [conv])
    n, f, y, x = s[output].op.axis
    for key, ax in (("tile_f", f), ("tile_y", y), ("tile_x", x)):
        check_split(cfg, key, int(ax.dom.extent.value), 4)
    bf, vf, tf, fi = apply_split(s, output, f, cfg["tile_f"])
    by, vy, ty, yi = apply_split(s, output, y, cfg["tile_y"])
    bx, vx, tx, xi = apply_split(s, output, x, cfg["tile_x"])
    bn = s[output].fuse(n, bf)
    s[output].reorder(bn, by, bx, vf, vy, vx, tf, ty, tx, fi, yi, xi)
    s[output].bind(bn, te.thread_axis("blockIdx.z"))
    s[output].bind(by, te.thread_axis("blockIdx.y"))
    s[output].bind(bx, te.thread_axis("blockIdx.x"))
    for v, name in ((vf, "vf"), (vy, "vy"), (vx, "vx")):
        s[output].bind(v, te.thread_axis("vthread", name=name))
    tz_axis, ty_axis, tx_axis = (te.thread_axis("threadIdx.z"), te.thread_axis("threadIdx.y"),
                                 te.thread_axis("threadIdx.x"))
    s[output].bind(tf, tz_axis)
    s[output].bind(ty, ty_axis)
    s[output].bind(tx, tx_axis)
    s[conv].compute_at(s[output], tx)
    s[output].pragma(bn, "auto_unroll_max_step", cfg["auto_unroll_max_step"])
    s[output].pragma(bn, "unroll_explicit", 0)
    cn, cf, cy, cx = s[conv].op.axis
    rc, ry, rx = s[conv].op.reduce_axis
    for key, ax in (("tile_rc", rc), ("tile_ry", ry), ("tile_rx", rx)):
        check_split(cfg, key, int(ax.dom.extent.value), 2)
    rco, rci = apply_split(s, conv, rc, cfg["tile_rc"])
    ryo, ryi = apply_split(s, conv, ry, cfg["tile_ry"])
    rxo, rxi = apply_split(s, conv, rx, cfg["tile_rx"])
    s[conv].reorder(rco, ryo, rxo, rci, ryi, rxi, cn, cf, cy, cx)
    s[AA].compute_at(s[conv], rxo)
    s[WW].compute_at(s[conv], rxo)
    n_tz, n_ty, n_tx = cfg["tile_f"][2], cfg["tile_y"][2], cfg["tile_x"][2]
    for load in (AA, WW):
        fused = s[load].fuse(*s[load].op.axis)
        fused, ltx = s[load].split(fused, factor=n_tx)
        fused, lty = s[load].split(fused, factor=n_ty)
        fused, ltz = s[load].split(fused, factor=n_tz)
        s[load].bind(ltz, tz_axis)
        s[load].bind(lty, ty_axis)
        s[load].bind(ltx, tx_axis)
    return s
