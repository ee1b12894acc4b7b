"""CPU schedules and tunable templates of the packed float convolutions of
:mod:`minitvm.topi.nn.conv2d_nchwc` (after TVM's x86 ``conv2d_NCHWc``).

``conv2d_NCHWc`` (data ``NCHW[ib]c``, kernel ``OIHW[ib]i[ob]o``, output ``NCHW[ob]c``): a register
tile of ``ow_block`` output columns x ``oc_block`` blocks of ``ob`` output channels (one vector
register each: 16 floats in a ``zmm``, 8 in a ``ymm``) accumulates over the whole reduction;
each step of the reduction broadcasts one input value per column and loads one weight vector per
channel block, so every load serves ``oc_block`` or ``ow_block`` FMAs. The reduction runs input
channel blocks, kernel rows, kernel columns, then the ``ib`` channels of a block (``unroll_kw``
unrolls the kernel columns). (batch, channel-block group, row) run in parallel; the padding is
computed once; epilogues (bias, relu, residual add, clip ...) are inlined into the vectorized
copy-out.

``depthwise_conv2d_NCHWc`` (data ``NCHW[b]c``, kernel ``OIHW[b]o``): tiles of ``ow_block``
columns of one channel block accumulate in vector registers over the kernel window, which is
unrolled; rows of (batch, channel block) run in parallel. int8 data accumulates in int32.

Knob values come from a config (autotune space, entity or fallback), a dict over the default, or
the dispatch context (``None``): templates ``conv2d_NCHWc.x86`` and ``depthwise_conv2d_NCHWc.x86``,
arguments ``(data_shape, kernel_shape, stride, padding, dilation, groups, dtype, out_dtype)``.
"""
from __future__ import annotations

import numpy as np

from ... import autotune, te
from ...errors import ScheduleError
from ...target import Target
from .. import testing
from ..generic.injective import inline_injective
from ..nn.conv2d_nchwc import DEPTHWISE_TAG, NCHWC_TAG, conv2d_NCHWc, depthwise_conv2d_NCHWc
from ..utils import (as_list, conv_args, conv_workload_args, divisors, find_op, largest_divisor, ops_above,
                     resolve_config)
from .conv2d import _schedule_input

CONV_TEMPLATE = "conv2d_NCHWc.x86"
DEPTHWISE_TEMPLATE = "depthwise_conv2d_NCHWc.x86"
_CONV_KNOBS = ("ow_block", "oc_block", "unroll_kw")
_DEPTHWISE_KNOBS = ("ow_block",)


def vector_registers() -> int:
    """Vector registers of the current target (the host's without one): 32 with AVX-512 (also for
    ``ymm``: AVX512-VL reaches ``ymm16``-``ymm31``), else 16."""
    target = Target.current() or Target("llvm")
    return 32 if "avx512f" in target.features else 16


def register_tile(OW: int, blocks: int, registers: int) -> dict:
    """Default ``ow_block`` x ``oc_block`` of a register-tiled convolution: the most accumulators up
    to ``registers / 2``, so that the broadcast inputs and the weight vectors of a step stay in
    registers too (28 of 32 ``zmm`` as accumulators spilled: measured 2x slower), with at most a
    quarter of the registers as columns (a divisor of the width) and up to 4 channel blocks (a
    divisor of ``blocks``); more columns on a tie."""
    best = (0, 0, 0)
    for owb in (d for d in divisors(OW) if d <= registers // 4):
        ocb = largest_divisor(blocks, max(1, min(4, registers // 2 // owb)))
        best = max(best, (owb * ocb, owb, ocb))
    return {"ow_block": best[1], "oc_block": best[2]}


def define_tile_knobs(cfg, OW: int, blocks: int, registers: int, default: dict) -> None:
    """``ow_block`` (divisors of the width) and ``oc_block`` (divisors of the channel blocks, up to
    4) on ``cfg``; configs with more accumulators than ``registers - 2`` are skipped."""
    cfg.define_knob("ow_block", [d for d in divisors(OW) if d <= 32])
    cfg.define_knob("oc_block", [d for d in divisors(blocks) if d <= 4])
    cfg.multi_filter(lambda c: c["ow_block"].val * c["oc_block"].val <= registers - 2)
    if cfg.is_fallback:
        cfg.fallback_with(default)


# -------------------------------------------------------------------- conv2d_NCHWc
def default_config(conv) -> dict:
    """Sound knob values for a conv2d_NCHWc of this shape (see :func:`register_tile`)."""
    OCc, OW = int(conv.shape[1].value), int(conv.shape[3].value)
    return dict(register_tile(OW, OCc, vector_registers()), unroll_kw=False)


def define_knobs(cfg, conv) -> None:
    """Declare the knobs of ``conv2d_NCHWc.x86`` for ``conv`` on ``cfg``."""
    OCc, OW = int(conv.shape[1].value), int(conv.shape[3].value)
    cfg.define_knob("unroll_kw", [False, True])
    define_tile_knobs(cfg, OW, OCc, vector_registers(), default_config(conv))


def _reference(inputs, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="float32",
               out_dtype="float32"):
    """numpy conv2d_NCHWc of ``inputs = [data, kernel]`` (float64 sums), packed like the output."""
    data, kernel = inputs
    w = kernel.transpose(0, 5, 1, 4, 2, 3)
    w = w.reshape(w.shape[0] * w.shape[1], w.shape[2] * w.shape[3], *w.shape[4:])
    acc = np.float64 if np.dtype(dtype).kind == "f" else np.int64
    out = testing.conv2d_nchw(testing.unpack_nchwc(data), w, stride, padding, dilation, groups, acc)
    return [testing.pack_nchwc(out, kernel.shape[5]).astype(out_dtype)]


@autotune.template(CONV_TEMPLATE, normalize=conv_args, reference=_reference)
def conv2d_NCHWc_x86(cfg, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="float32",
                     out_dtype="float32"):
    """Tunable template: :func:`~minitvm.topi.nn.conv2d_nchwc.conv2d_NCHWc` scheduled for the CPU;
    returns ``(schedule, [data, kernel, out])``."""
    data = te.placeholder(data_shape, dtype, "data")
    kernel = te.placeholder(kernel_shape, dtype, "kernel")
    out = conv2d_NCHWc(data, kernel, stride, padding, dilation, out_dtype)
    return schedule_conv2d_NCHWc(out, cfg=cfg), [data, kernel, out]


def _begin(outs, tag, what, side_tag=None):
    """(schedule, output, conv, local accumulator stage) with inputs computed once and epilogues
    inlined. Ops tagged ``side_tag`` that the epilogue reads (the int8 template's correction, a
    reduction over the kernel alone) are computed once too, in parallel, with their inputs."""
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([o.op for o in outs])
    conv = find_op(output, tag, what).output(0)
    stop, inputs = {conv.op}, list(conv.op.input_tensors)
    for op in ops_above(output, conv) if side_tag else ():
        if op.tag == side_tag:
            stop.add(op)
            inputs.extend(op.input_tensors)
            s[op].parallel(s[op].op.axis[0])
    for t in dict.fromkeys(inputs):      # padding, layout transforms: computed once each
        _schedule_input(s, t)
    reds = inline_injective(s, [output], stop=stop)
    if reds:
        raise ScheduleError(f"{what}: {reds[0].name} between the convolution and {output.name} is not element-wise")
    if tuple(str(d) for d in output.shape) != tuple(str(d) for d in conv.shape):
        raise ScheduleError(f"{what}: the output must keep the convolution's packed shape "
                            "(unpack with a separate layout_transform)")
    if conv.op is output.op:
        acc = s.cache_write(output, "local")
    else:
        s[conv].set_scope("local")
        acc = conv
    return s, output, conv, acc


def check_divides(knob, value, extent, what, axis):
    """Knob ``knob`` must be a positive int dividing ``extent`` (a ScheduleError naming it otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or extent % value:
        raise ScheduleError(f"{what}: knob {knob}={value!r} must be a positive divisor of the {extent} {axis}")


def schedule_conv2d_NCHWc(outs, cfg=None):
    """CPU schedule of the conv2d_NCHWc feeding ``outs`` (knobs ``ow_block``, ``oc_block``,
    ``unroll_kw``; ``cfg`` as in the module docstring)."""
    what = "schedule_conv2d_NCHWc (cpu)"
    s, output, conv, acc = _begin(outs, NCHWC_TAG, what)
    cfg = resolve_config(cfg, (CONV_TEMPLATE,) + conv_workload_args(conv), default_config(conv),
                         lambda c: define_knobs(c, conv), _CONV_KNOBS, what, target="llvm")
    cn, coc, cy, cx, cob = tile_output_blocks(s, output, acc, cfg, what)
    ic, ry, rx, ib = s[acc].op.reduce_axis
    s[acc].reorder(ic, ry, rx, ib, cn, cy, coc, cx, cob)
    s[acc].vectorize(cob)
    s[acc].unroll(cx)
    s[acc].unroll(coc)
    if cfg["unroll_kw"]:
        s[acc].unroll(rx)
    return s


def tile_output_blocks(s, output, acc, cfg, what: str):
    """The register tiling of a packed conv's output (NCHW[x]c): blocks of ``oc_block`` channel
    blocks by ``ow_block`` columns, the rest parallel, the channel lanes vectorized; ``acc`` (the
    accumulator stage) computed per block. Returns ``acc``'s spatial axes ``(n, oc, y, x, lanes)``."""
    OCc, OW = int(output.shape[1].value), int(output.shape[3].value)
    owb, ocb = cfg["ow_block"], cfg["oc_block"]
    check_divides("ow_block", owb, OW, what, "output columns")
    check_divides("oc_block", ocb, OCc, what, "output channel blocks")
    n, oc, y, x, ob = s[output].op.axis
    oco, oci = s[output].split(oc, factor=ocb)
    xo, xi = s[output].split(x, factor=owb)
    s[output].reorder(n, oco, y, xo, oci, xi, ob)
    s[output].parallel(s[output].fuse(n, oco, y))
    s[output].vectorize(ob)
    s[acc].compute_at(s[output], xo)
    return s[acc].op.axis


# -------------------------------------------------------------------- depthwise
def default_config_depthwise(conv) -> dict:
    """Sound knob values for a depthwise_conv2d_NCHWc: ``ow_block`` columns (as many as the
    registers hold, a divisor of the width)."""
    OW = int(conv.shape[3].value)
    return {"ow_block": largest_divisor(OW, vector_registers() // 2)}


def define_knobs_depthwise(cfg, conv) -> None:
    """Declare the knobs of ``depthwise_conv2d_NCHWc.x86`` for ``conv`` on ``cfg``."""
    OW = int(conv.shape[3].value)
    cfg.define_knob("ow_block", [d for d in divisors(OW) if d <= 32])
    if cfg.is_fallback:
        cfg.fallback_with(default_config_depthwise(conv))


def _reference_depthwise(inputs, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1,
                         dtype="float32", out_dtype="float32"):
    """numpy depthwise_conv2d_NCHWc of ``inputs = [data, kernel]`` (exact sums), packed like the output."""
    data, kernel = inputs
    Cc, _, KH, KW, b = kernel.shape
    w = kernel[:, 0].transpose(0, 3, 1, 2).reshape(Cc * b, 1, KH, KW)
    acc = np.float64 if np.dtype(dtype).kind == "f" else np.int64
    out = testing.conv2d_nchw(testing.unpack_nchwc(data), w, stride, padding, dilation, Cc * b, acc)
    return [testing.pack_nchwc(out, b).astype(out_dtype)]


@autotune.template(DEPTHWISE_TEMPLATE, normalize=conv_args, reference=_reference_depthwise)
def depthwise_conv2d_NCHWc_x86(cfg, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1,
                               dtype="float32", out_dtype="float32"):
    """Tunable template: :func:`~minitvm.topi.nn.conv2d_nchwc.depthwise_conv2d_NCHWc` scheduled for
    the CPU; returns ``(schedule, [data, kernel, out])``."""
    data = te.placeholder(data_shape, dtype, "data")
    kernel = te.placeholder(kernel_shape, dtype, "kernel")
    out = depthwise_conv2d_NCHWc(data, kernel, stride, padding, dilation, out_dtype)
    return schedule_depthwise_conv2d_NCHWc(out, cfg=cfg), [data, kernel, out]


def schedule_depthwise_conv2d_NCHWc(outs, cfg=None):
    """CPU schedule of the depthwise_conv2d_NCHWc feeding ``outs`` (knob ``ow_block``)."""
    what = "schedule_depthwise_conv2d_NCHWc (cpu)"
    s, output, conv, acc = _begin(outs, DEPTHWISE_TAG, what)
    cfg = resolve_config(cfg, (DEPTHWISE_TEMPLATE,) + conv_workload_args(conv), default_config_depthwise(conv),
                         lambda c: define_knobs_depthwise(c, conv), _DEPTHWISE_KNOBS, what, target="llvm")
    OW = int(output.shape[3].value)
    owb = cfg["ow_block"]
    check_divides("ow_block", owb, OW, what, "output columns")
    n, c, y, x, b = s[output].op.axis
    xo, xi = s[output].split(x, factor=owb)
    s[output].reorder(n, c, y, xo, xi, b)
    s[output].parallel(s[output].fuse(n, c, y))
    s[output].vectorize(b)
    s[acc].compute_at(s[output], xo)
    cn, cc, cy, cx, cb = s[acc].op.axis
    ry, rx = s[acc].op.reduce_axis
    s[acc].reorder(cn, cc, cy, ry, rx, cx, cb)
    s[acc].vectorize(cb)
    s[acc].unroll(cx)
    s[acc].unroll(rx)
    return s


__all__ = ["conv2d_NCHWc_x86", "schedule_conv2d_NCHWc", "default_config", "define_knobs",
           "depthwise_conv2d_NCHWc_x86", "schedule_depthwise_conv2d_NCHWc", "default_config_depthwise",
           "define_knobs_depthwise", "register_tile", "define_tile_knobs", "vector_registers", "check_divides",
           "CONV_TEMPLATE", "DEPTHWISE_TEMPLATE"]
