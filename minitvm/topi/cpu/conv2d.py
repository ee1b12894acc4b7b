"""CPU (LLVM) schedules for convolutions: float ``conv2d_nchw``, int8 ``conv2d_NCHWc_int8``
(``dp4a`` tensorized) and ``deformable_conv2d_nchw``.

Common structure (a register-tiled direct convolution, after TVM's x86 ``conv2d_nchw``):
the output is tiled into ``oc_block`` output channels x ``ow_block`` columns of one row;
(batch, output-channel block, row) are fused into one ``parallel`` loop; each tile
accumulates in a ``local`` buffer (registers after LLVM's scalar replacement), with the whole
reduction (channels, kernel rows, kernel columns) outside the tile loops so each input value
loaded serves ``oc_block`` accumulators. Float tiles vectorize along the columns
(``ow_block`` lanes); element-wise epilogues (bias, relu, residual add, requantize, ...) are
inlined into the copy-out, which is vectorized too. Padding is computed once into its own
buffer (a parallel loop over channels) so the inner loops read plain memory.

Knobs (``cfg`` dicts; defaults from the shape): ``oc_block`` (a divisor of the output
channels, default the largest <= 8, or <= 16 with narrower tiles), ``ow_block`` (columns per
tile: 8 when the width allows, else the largest divisor <= 8 if it is at least 4, else 1).
"""
from __future__ import annotations

from ... import te
from ...errors import ScheduleError
from ...tensor import ComputeOp
from ..utils import as_list, find_op, largest_divisor
from ..generic.injective import inline_injective
from ..generic.tensor_intrin import dp4a





def _ow_block(ow: int, limit: int = 8) -> int:
    """Columns per tile: 8 (one AVX2 vector) when they divide the width, else the largest
    divisor up to 8 (7 for the 28/14/7-wide layers; wider non-power-of-two vectors were
    slower), else 1 (prime widths such as Inception's 149/73/71/17: a scalar tile of
    ``oc_block`` channels measured faster than 8 guarded, unvectorizable columns)."""
    if ow % limit == 0:
        return limit
    d = largest_divisor(ow, limit)
    return d if d >= 4 or d == ow else 1


def _epilogue_and_cache(s, conv, output, what):
    """Inline ops between ``conv`` and ``output``; return the stage that accumulates (local)."""
    reds = inline_injective(s, [output], stop={conv.op})
    if reds:
        raise ScheduleError(f"{what}: {reds[0].name} between the convolution and {output.name} is not element-wise")
    if conv.op is output.op:
        return s.cache_write(output, "local")
    s[conv].set_scope("local")
    return conv


def _schedule_input(s, t):
    """An input computed in the graph (padding, a layout transform): computed once at root,
    its own injective producers inlined, in parallel over its two outer axes."""
    if not isinstance(t.op, ComputeOp) or t.op.reduce_axis:
        return
    inline_injective(s, [t])
    st = s[t]
    axes = list(st.op.axis)
    st.parallel(st.fuse(axes[0], axes[1]) if len(axes) > 1 else axes[0])


def default_config(conv) -> dict:
    """Sound knob values for a conv2d_nchw / deformable conv of this shape."""
    O, OW = int(conv.shape[1].value), int(conv.shape[3].value)
    owb = _ow_block(OW)
    return {"oc_block": largest_divisor(O, 8 if owb >= 8 else 16), "ow_block": owb}


def _tile_float(s, conv, output, acc, cfg):
    """The register-tiled schedule shared by conv2d_nchw and the deformable convolution."""
    N, O, OH, OW = (int(d.value) for d in output.shape)
    ocb, owb = int(cfg["oc_block"]), int(cfg["ow_block"])
    if O % ocb:
        raise ScheduleError(f"knob oc_block={ocb} must divide the {O} output channels")
    n, f, y, x = s[output].op.axis
    fo, fi = s[output].split(f, factor=ocb)
    xo, xi = s[output].split(x, factor=owb)
    s[output].reorder(n, fo, y, xo, fi, xi)
    par = s[output].fuse(n, fo, y)
    s[output].parallel(par)
    s[output].unroll(fi)
    if OW % owb == 0 and owb > 1:
        s[output].vectorize(xi)
    s[acc].compute_at(s[output], xo)
    cn, cf, cy, cx = s[acc].op.axis
    rc, ry, rx = s[acc].op.reduce_axis
    s[acc].reorder(rc, ry, rx, cn, cy, cf, cx)
    s[acc].unroll(cf)
    if OW % owb == 0 and owb > 1:
        s[acc].vectorize(cx)
    return s


def schedule_conv2d_nchw(outs, cfg: dict | None = None):
    """CPU schedule of the float ``conv2d_nchw`` feeding ``outs`` (epilogues inlined)."""
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([o.op for o in outs])
    conv = find_op(output, "conv2d_nchw", "schedule_conv2d_nchw (cpu)").output(0)
    cfg = dict(default_config(conv), **(cfg or {}))
    _schedule_input(s, conv.op.input_tensors[0])
    acc = _epilogue_and_cache(s, conv, output, "schedule_conv2d_nchw (cpu)")
    return _tile_float(s, conv, output, acc, cfg)


def schedule_deformable_conv2d_nchw(outs, cfg: dict | None = None):
    """CPU schedule of ``deformable_conv2d_nchw`` (DCN v1) feeding ``outs``.

    The bilinear samples (``[N, C, KH, KW, OH, OW]``) are computed once, in parallel over
    (batch, channel); the convolution over them is the register-tiled float schedule.
    """
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([o.op for o in outs])
    conv = find_op(output, "deformable_conv2d_nchw", "schedule_deformable_conv2d_nchw (cpu)").output(0)
    cfg = dict(default_config(conv), **(cfg or {}))
    sample = find_op(conv, "deformable_conv2d_sample", "schedule_deformable_conv2d_nchw (cpu)").output(0)
    _schedule_input(s, sample)
    acc = _epilogue_and_cache(s, conv, output, "schedule_deformable_conv2d_nchw (cpu)")
    return _tile_float(s, conv, output, acc, cfg)


def default_config_int8(conv) -> dict:
    """Sound knob values for a conv2d_NCHWc_int8 of this shape."""
    OW = int(conv.shape[3].value)
    return {"ow_block": _ow_block(OW, 8) if OW >= 4 else OW}


def schedule_conv2d_NCHWc_int8(outs, cfg: dict | None = None):
    """CPU schedule of ``conv2d_NCHWc_int8`` feeding ``outs`` with ``dp4a`` on the innermost
    4-channel reduction (the LLVM backend lowers it to vector multiply + horizontal add).

    Tiles of ``ow_block`` columns x the packed output block (4 channels) of one row
    accumulate in int32 registers; (batch, channel block, row) run in parallel; epilogues
    (bias, requantize, relu, residual add, layout transforms of the same shape) are inlined.
    """
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([o.op for o in outs])
    conv = find_op(output, "conv2d_NCHWc_int8", "schedule_conv2d_NCHWc_int8 (cpu)").output(0)
    cfg = dict(default_config_int8(conv), **(cfg or {}))
    for t in conv.op.input_tensors:   # padding, layout transforms of data or weights: computed once
        _schedule_input(s, t)
    acc = _epilogue_and_cache(s, conv, output, "schedule_conv2d_NCHWc_int8 (cpu)")
    if tuple(str(d) for d in output.shape) != tuple(str(d) for d in conv.shape):
        raise ScheduleError("schedule_conv2d_NCHWc_int8 (cpu): the output must keep the convolution's packed shape "
                            "(unpack with a separate layout_transform)")
    OW = int(output.shape[3].value)
    owb = int(cfg["ow_block"])
    n, oc, y, x, ob = s[output].op.axis
    xo, xi = s[output].split(x, factor=owb)
    s[output].reorder(n, oc, y, xo, xi, ob)
    par = s[output].fuse(n, oc, y)
    s[output].parallel(par)
    s[output].vectorize(ob)
    s[acc].compute_at(s[output], xo)
    cn, coc, cy, cx, cob = s[acc].op.axis
    ic, ry, rx, ib = s[acc].op.reduce_axis
    if int(ib.dom.extent.value) % 4:
        raise ScheduleError(f"schedule_conv2d_NCHWc_int8 (cpu): the packed input block ({ib.dom.extent}) must be "
                            "a multiple of 4 for dp4a")
    ibo, ibi = s[acc].split(ib, factor=4)
    s[acc].reorder(ic, ry, rx, ibo, cn, coc, cy, cx, cob, ibi)
    s[acc].tensorize(ibi, dp4a())
    if OW % owb == 0:
        s[acc].unroll(cx)
    s[acc].unroll(cob)
    return s


__all__ = ["schedule_conv2d_nchw", "schedule_conv2d_NCHWc_int8", "schedule_deformable_conv2d_nchw",
           "default_config", "default_config_int8"]
