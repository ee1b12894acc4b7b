"""The x86 int8 convolution: ``conv2d_NCHWc_int8_x86`` tensorized with ``dot_u8s8``
(``vpdpbusd`` / ``vpmaddubsw`` + ``vpmaddwd`` / plain multiplies, from the target's features).

Layouts: data ``NCHW4c`` (4 input channels: one 32-bit word broadcast to every lane), kernel
``OIHW[L]o4i`` (``L`` output channels x 4 input channels: one 64-byte ``zmm`` for ``L = 16``,
one ``ymm`` for ``L = 8``), output ``NCHW[L]c`` in int32. :func:`x86_lanes` picks ``L`` for a
target: 16 with AVX512-VNNI, else 8.

The instructions multiply unsigned by signed bytes, so int8 activations are shifted into
uint8 (``a + 128``, computed once with the padding, whose value becomes 128) and the
convolution subtracts ``128 * sum(weights)`` of each output channel, computed once from the
kernel (a reduction over the kernel only). ``sum((a + 128) * w) - 128 * sum(w) = sum(a * w)``
holds exactly in int32 (padding: ``(0 + 128) * w - 128 * w = 0``). uint8 data is used as it is.

Schedule: tiles of ``ow_block`` columns x ``oc_block`` blocks of ``L`` channels of one row
accumulate in vector registers over the whole reduction (input-channel blocks, kernel rows and
columns outside the tile, 4 channels per ``dot_u8s8``); (batch, channel-block group, row) run in
parallel; epilogues (the offset correction, bias, requantize, relu, residual add) are inlined
into the vectorized copy-out.
"""
from __future__ import annotations

from ... import te
from ...errors import DtypeError, ScheduleError, ShapeError
from ...target import Target
from ..nn.conv2d import _out_size, _pair, normalize_padding, pad
from ..nn.layout import _const
from ..generic.injective import inline_injective
from ..utils import as_list, find_op, largest_divisor
from .conv2d import _ow_block, _schedule_input
from .tensor_intrin import dot_u8s8

TAG = "conv2d_NCHWc_int8_x86"
COMP_TAG = "conv2d_NCHWc_int8_x86_comp"


def x86_lanes(target=None) -> int:
    """Output channels per ``dot_u8s8`` for ``target`` (default: the current one, else the host):
    16 with AVX512-VNNI (one ``zmm``), else 8 (one ``ymm``)."""
    target = Target(target) if target is not None else (Target.current() or Target("llvm"))
    return 16 if "avx512vnni" in target.features else 8


def conv2d_NCHWc_int8_x86(data, kernel, stride=1, padding=0, dilation=1, out_dtype="int32",
                          name="conv2d_NCHWc_int8_x86"):
    """int8 (or uint8) data ``NCHW4c`` x int8 kernel ``OIHW[L]o4i`` -> int32 ``NCHW[L]c``.

    ``out[n, oc, y, x, o] = sum(data[n, ic, y*sh + ry*dh, x*sw + rx*dw, ib]
    * kernel[oc, ic, ry, rx, o, ib])``, computed as unsigned x signed bytes (module docstring).
    """
    if data.ndim != 5 or kernel.ndim != 6:
        raise ShapeError(f"{name}: data must be NCHW4c (5-D) and kernel OIHW[L]o4i (6-D), got "
                         f"{data.ndim}-D and {kernel.ndim}-D")
    if data.dtype not in ("int8", "uint8") or kernel.dtype != "int8":
        raise DtypeError(f"{name}: data must be int8 or uint8 and the kernel int8, got {data.dtype} and "
                         f"{kernel.dtype}")
    if out_dtype != "int32":
        raise DtypeError(f"{name}: accumulates in int32, not {out_dtype}")
    N, ICc, H, W, ib = (_const(d) for d in data.shape)
    OCc, KICc, KH, KW, lanes, kib = (_const(d) for d in kernel.shape)
    if ib != 4 or kib != 4:
        raise ShapeError(f"{name}: data and kernel must pack 4 input channels per block, got {ib} and {kib}")
    if KICc != ICc:
        raise ShapeError(f"{name}: kernel has {KICc} input channel blocks, data {ICc} (groups are not supported)")
    sh, sw = _pair(stride, "stride", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    OH = _out_size(H, KH, sh, dh, pt, pb, name, "height")
    OW = _out_size(W, KW, sw, dw, pl, pr, name, "width")
    signed = data.dtype == "int8"
    if signed:
        data = te.compute(data.shape, lambda *i: (data(*i).astype("int32") + 128).astype("uint8"),
                          name=f"{name}_u8", tag="injective,elemwise")
    padded = pad(data, (0, 0, pt, pl, 0), (0, 0, pb, pr, 0), value=128 if signed else 0, name=f"{name}_pad")
    ic = te.reduce_axis((0, ICc), "ic_chunk")
    ry = te.reduce_axis((0, KH), "ry")
    rx = te.reduce_axis((0, KW), "rx")
    ibr = te.reduce_axis((0, 4), "ic_block")
    attrs = {"stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw), "groups": 1}
    acc = te.compute(
        (N, OCc, OH, OW, lanes),
        lambda n, oc, y, x, o: te.sum(padded[n, ic, y * sh + ry * dh, x * sw + rx * dw, ibr].astype("int32")
                                      * kernel[oc, ic, ry, rx, o, ibr].astype("int32"), axis=[ic, ry, rx, ibr]),
        name=f"{name}_acc" if signed else name, tag=TAG, attrs=attrs)
    if not signed:
        return acc
    kc = te.reduce_axis((0, ICc), "kc")
    ky = te.reduce_axis((0, KH), "ky")
    kx = te.reduce_axis((0, KW), "kx")
    kb = te.reduce_axis((0, 4), "kb")
    comp = te.compute((OCc, lanes),
                      lambda oc, o: te.sum(kernel[oc, kc, ky, kx, o, kb].astype("int32") * 128,
                                           axis=[kc, ky, kx, kb]), name=f"{name}_comp", tag=COMP_TAG)
    return te.compute(acc.shape, lambda n, oc, y, x, o: acc[n, oc, y, x, o] - comp[oc, o], name=name,
                      tag="injective,elemwise", attrs=attrs)


def default_config_x86(acc) -> dict:
    """Sound knob values for a conv2d_NCHWc_int8_x86 of this shape: ``ow_block`` columns per tile
    (8 when they divide the width, see ``_ow_block``) and ``oc_block`` channel blocks per tile
    (2 when the number of blocks is even, else 1)."""
    OCc, OW = int(acc.shape[1].value), int(acc.shape[3].value)
    owb = _ow_block(OW, 8) if OW >= 4 else OW
    return {"ow_block": owb, "oc_block": largest_divisor(OCc, 2)}


def schedule_conv2d_NCHWc_int8_x86(outs, cfg: dict | None = None):
    """CPU schedule of :func:`conv2d_NCHWc_int8_x86` feeding ``outs`` (``dot_u8s8`` tensorized;
    knobs ``ow_block``, ``oc_block``, see :func:`default_config_x86`)."""
    outs = as_list(outs)
    output = outs[0]
    what = "schedule_conv2d_NCHWc_int8_x86 (cpu)"
    s = te.create_schedule([o.op for o in outs])
    acc = find_op(output, TAG, what).output(0)
    cfg = dict(default_config_x86(acc), **(cfg or {}))
    stop, inputs = {acc.op}, list(acc.op.input_tensors)
    for op in _ops_between(output, acc):
        if op.tag == COMP_TAG:
            stop.add(op)
            inputs.extend(op.input_tensors)
            s[op].parallel(s[op].op.axis[0])
    for t in dict.fromkeys(inputs):   # padding, layout transforms: computed once each
        _schedule_input(s, t)
    reds = inline_injective(s, [output], stop=stop)
    if reds:
        raise ScheduleError(f"{what}: {reds[0].name} between the convolution and {output.name} is not element-wise")
    if tuple(str(d) for d in output.shape) != tuple(str(d) for d in acc.shape):
        raise ScheduleError(f"{what}: the output must keep the convolution's packed shape "
                            "(unpack with a separate layout_transform)")
    if acc.op is output.op:
        acc = s.cache_write(output, "local")
    else:
        s[acc].set_scope("local")
    OCc, OW, lanes = int(output.shape[1].value), int(output.shape[3].value), int(output.shape[4].value)
    owb, ocb = int(cfg["ow_block"]), int(cfg["oc_block"])
    if OCc % ocb:
        raise ScheduleError(f"{what}: knob oc_block={ocb} must divide the {OCc} channel blocks")
    n, oc, y, x, ob = s[output].op.axis
    oco, oci = s[output].split(oc, factor=ocb)
    xo, xi = s[output].split(x, factor=owb)
    s[output].reorder(n, oco, y, xo, oci, xi, ob)
    s[output].parallel(s[output].fuse(n, oco, y))
    s[output].vectorize(ob)
    s[acc].compute_at(s[output], xo)
    cn, coc, cy, cx, cob = s[acc].op.axis
    ic, ry, rx, ib = s[acc].op.reduce_axis
    s[acc].reorder(ic, ry, rx, cn, cy, coc, cx, cob, ib)
    s[acc].tensorize(cob, dot_u8s8(lanes))
    if OW % owb == 0:
        s[acc].unroll(cx)
    s[acc].unroll(coc)
    return s


def _ops_between(output, acc):
    """The compute ops from ``output`` back to (not past) ``acc``."""
    seen, stack, found = set(), [output.op], []
    while stack:
        op = stack.pop()
        if op in seen or op is acc.op or not hasattr(op, "reduce_axis"):
            continue
        seen.add(op)
        found.append(op)
        stack.extend(t.op for t in op.input_tensors)
    return found


__all__ = ["conv2d_NCHWc_int8_x86", "schedule_conv2d_NCHWc_int8_x86", "default_config_x86", "x86_lanes"]
