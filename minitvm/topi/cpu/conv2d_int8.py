"""The x86 int8 convolution: ``conv2d_NCHWc_int8_x86`` tensorized with ``dot_u8s8``
(``vpdpbusd`` / ``vpmaddubsw`` + ``vpmaddwd`` / plain multiplies, from the target's features), or
with ``dot_i16`` (one ``vpmaddwd`` per 16 products: CPUs without VNNI) for int16 kernels.

Layouts: data ``NCHW[x]c`` with ``x`` a multiple of 4 (4 input channels: one 32-bit word
broadcast to every lane; ``x`` = 16 reads the previous conv's ``NCHW16c`` output as it is),
kernel ``OIHW[L]o4i`` (``L`` output channels x 4 input channels: one 64-byte ``zmm`` for
``L = 16``, one ``ymm`` for ``L = 8``), output ``NCHW[L]c`` in int32. :func:`x86_lanes` picks
``L`` for a target: 16 with AVX512-VNNI, else 8. An int16 kernel ``OIHW[L]o2i`` (int8 weights
widened) takes 2 input channels a step; the data is widened to int16 once, with the padding, and
needs no offset (``vpmaddwd`` multiplies signed by signed words).

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

from ... import autotune, te
from ...errors import DtypeError, ShapeError
from ...target import Target
from ...tensor import ComputeOp
from .. import testing
from ..nn.conv2d import _out_size, _pair, normalize_padding, pad
from ..nn.layout import _const
from ..utils import conv_args, resolve_config
from .conv2d_nchwc import _begin, define_tile_knobs, register_tile, tile_output_blocks, vector_registers
from .tensor_intrin import dot_i16, dot_u8s8

TAG = "conv2d_NCHWc_int8_x86"
TEMPLATE = "conv2d_NCHWc_int8.x86"
COMP_TAG = "conv2d_NCHWc_int8_x86_comp"


def x86_lanes(target=None) -> int:
    """Output channels per ``dot_u8s8`` for ``target`` (default: the current one, else the host):
    16 with AVX512-VNNI (one ``zmm``), else 8 (one ``ymm``)."""
    target = Target(target) if target is not None else (Target.current() or Target("llvm"))
    return 16 if "avx512vnni" in target.features else 8


def conv2d_NCHWc_int8_x86(data, kernel, stride=1, padding=0, dilation=1, out_dtype="int32",
                          name="conv2d_NCHWc_int8_x86"):
    """int8 (or uint8) data ``NCHW[x]c`` (``x`` a multiple of 4) x int8 kernel ``OIHW[L]o4i`` (or int16
    ``OIHW[L]o2i``) -> int32 ``NCHW[L]c``.

    ``out[n, oc, y, x, o] = sum(data[n, ic, y*sh + ry*dh, x*sw + rx*dw, 4*m + i]
    * kernel[oc, ic*(x/4) + m, ry, rx, o, i])``, computed as unsigned x signed bytes (module docstring).
    """
    if data.ndim != 5 or kernel.ndim != 6:
        raise ShapeError(f"{name}: data must be NCHW[x]c (5-D) and kernel OIHW[L]o4i (6-D), got "
                         f"{data.ndim}-D and {kernel.ndim}-D")
    if data.dtype not in ("int8", "uint8") or kernel.dtype not in ("int8", "int16"):
        raise DtypeError(f"{name}: data must be int8 or uint8 and the kernel int8 (or int16), got {data.dtype} and "
                         f"{kernel.dtype}")
    if out_dtype != "int32":
        raise DtypeError(f"{name}: accumulates in int32, not {out_dtype}")
    N, ICc, H, W, ib = (_const(d) for d in data.shape)
    OCc, KICc, KH, KW, lanes, kib = (_const(d) for d in kernel.shape)
    depth = 2 if kernel.dtype == "int16" else 4      # input channels per dot_i16 / dot_u8s8
    if ib % depth or kib != depth:
        raise ShapeError(f"{name}: the data must pack a multiple of {depth} input channels per block and the kernel "
                         f"{depth}, got {ib} and {kib}")
    words = ib // depth
    if KICc != ICc * words:
        raise ShapeError(f"{name}: kernel has {KICc} blocks of {depth} input channels, data {ICc} x {ib} channels "
                         "(groups are not supported)")
    sh, sw = _pair(stride, "stride", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    OH = _out_size(H, KH, sh, dh, pt, pb, name, "height")
    OW = _out_size(W, KW, sw, dw, pl, pr, name, "width")
    signed = data.dtype == "int8" and depth == 4     # vpdpbusd / vpmaddubsw multiply unsigned data
    if depth == 2:       # vpmaddwd multiplies int16: widened once, with the padding
        data = te.compute(data.shape, lambda *i: data(*i).astype("int16"), name=f"{name}_i16",
                          tag="injective,elemwise")
    if signed:
        data = te.compute(data.shape, lambda *i: (data(*i).astype("int32") + 128).astype("uint8"),
                          name=f"{name}_u8", tag="injective,elemwise")
    padded = pad(data, (0, 0, pt, pl, 0), (0, 0, pb, pr, 0), value=128 if signed else 0, name=f"{name}_pad")
    ic = te.reduce_axis((0, ICc), "ic_chunk")
    ry = te.reduce_axis((0, KH), "ry")
    rx = te.reduce_axis((0, KW), "rx")
    icw = te.reduce_axis((0, words), "ic_word")
    ibr = te.reduce_axis((0, depth), "ic_block")
    attrs = {"stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw), "groups": 1}
    acc = te.compute(
        (N, OCc, OH, OW, lanes),
        lambda n, oc, y, x, o: te.sum(
            padded[n, ic, y * sh + ry * dh, x * sw + rx * dw, icw * depth + ibr].astype("int32")
            * kernel[oc, ic * words + icw, ry, rx, o, ibr].astype("int32"), axis=[ic, ry, rx, icw, ibr]),
        name=f"{name}_acc" if signed else name, tag=TAG, attrs=attrs)
    if not signed:
        return acc
    kc = te.reduce_axis((0, KICc), "kc")
    ky = te.reduce_axis((0, KH), "ky")
    kx = te.reduce_axis((0, KW), "kx")
    kb = te.reduce_axis((0, 4), "kb")
    comp = te.compute((OCc, lanes),
                      lambda oc, o: te.sum(kernel[oc, kc, ky, kx, o, kb].astype("int32") * 128,
                                           axis=[kc, ky, kx, kb]), name=f"{name}_comp", tag=COMP_TAG)
    return te.compute(acc.shape, lambda n, oc, y, x, o: acc[n, oc, y, x, o] - comp[oc, o], name=name,
                      tag="injective,elemwise", attrs=attrs)


def default_config_x86(acc) -> dict:
    """Sound knob values for a conv2d_NCHWc_int8_x86 of this shape: the register tile of
    :func:`~minitvm.topi.cpu.conv2d_nchwc.register_tile` (``ow_block`` columns x ``oc_block``
    channel blocks of ``L`` int32 lanes)."""
    OCc, OW = int(acc.shape[1].value), int(acc.shape[3].value)
    return register_tile(OW, OCc, vector_registers())


def define_knobs_x86(cfg, acc) -> None:
    """Declare the knobs of ``conv2d_NCHWc_int8.x86`` (``ow_block``, ``oc_block``) for ``acc`` on ``cfg``."""
    OCc, OW = int(acc.shape[1].value), int(acc.shape[3].value)
    define_tile_knobs(cfg, OW, OCc, vector_registers(), default_config_x86(acc))


def _workload_args(acc) -> tuple:
    """The template arguments that declare ``acc``: the int8 (or uint8) data before the offset and
    the padding, the kernel, the attributes."""
    data, kernel = acc.op.input_tensors
    while isinstance(data.op, ComputeOp) and data.op.tag in ("injective,pad", "injective,elemwise"):
        data = data.op.input_tensors[0]         # back through the padding and the uint8 offset / int16 widening
    a = acc.op.attrs
    return conv_args([int(d.value) for d in data.shape], [int(d.value) for d in kernel.shape], a["stride"],
                     a["padding"], a["dilation"], 1, data.dtype, "int32")


def _reference(inputs, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="int8",
               out_dtype="int32"):
    """numpy conv2d_NCHWc_int8_x86 of ``inputs = [data, kernel]`` (exact), packed like the output."""
    data, kernel = inputs
    out = testing.conv2d_nchw(testing.unpack_nchwc(data), testing.unpack_oihw(kernel), stride, padding, dilation)
    return [testing.pack_nchwc(out, kernel.shape[4]).astype(out_dtype)]


@autotune.template(TEMPLATE, normalize=conv_args, reference=_reference)
def conv2d_NCHWc_int8_x86_template(cfg, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1,
                                   dtype="int8", out_dtype="int32"):
    """Tunable template: :func:`conv2d_NCHWc_int8_x86` scheduled with ``dot_u8s8`` (the instructions
    of the target's features), or ``dot_i16`` for an int16 kernel (``kernel_shape[-1] == 2``);
    returns ``(schedule, [data, kernel, out])``."""
    data = te.placeholder(data_shape, dtype, "data")
    kernel = te.placeholder(kernel_shape, "int16" if kernel_shape[-1] == 2 else "int8", "kernel")
    out = conv2d_NCHWc_int8_x86(data, kernel, stride, padding, dilation, out_dtype)
    return schedule_conv2d_NCHWc_int8_x86(out, cfg=cfg), [data, kernel, out]


def schedule_conv2d_NCHWc_int8_x86(outs, cfg=None):
    """CPU schedule of :func:`conv2d_NCHWc_int8_x86` feeding ``outs`` (``dot_u8s8`` tensorized;
    knobs ``ow_block``, ``oc_block``: a config, a dict over :func:`default_config_x86`, or None to ask
    the dispatch context for the ``conv2d_NCHWc_int8.x86`` workload)."""
    what = "schedule_conv2d_NCHWc_int8_x86 (cpu)"
    s, output, conv, acc = _begin(outs, TAG, what, side_tag=COMP_TAG)
    cfg = resolve_config(cfg, (TEMPLATE,) + _workload_args(conv), default_config_x86(conv),
                         lambda c: define_knobs_x86(c, conv), ("ow_block", "oc_block"), what, target="llvm")
    lanes = int(output.shape[4].value)
    cn, coc, cy, cx, cob = tile_output_blocks(s, output, acc, cfg, what)
    ic, ry, rx, icw, ib = s[acc].op.reduce_axis
    s[acc].reorder(ic, ry, rx, icw, cn, cy, coc, cx, cob, ib)
    kernel = acc.op.input_tensors[1]
    s[acc].tensorize(cob, dot_i16(lanes) if kernel.dtype == "int16" else dot_u8s8(lanes))
    s[acc].unroll(cx)
    s[acc].unroll(coc)
    return s


__all__ = ["conv2d_NCHWc_int8_x86", "schedule_conv2d_NCHWc_int8_x86", "default_config_x86", "define_knobs_x86",
           "conv2d_NCHWc_int8_x86_template", "x86_lanes", "TEMPLATE"]
