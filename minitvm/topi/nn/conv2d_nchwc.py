"""Convolutions in the CPU's packed layouts (after TVM's x86 ``conv2d_NCHWc``): channels split into
blocks stored innermost, so that one block of output channels is one vector register.

* :func:`conv2d_NCHWc`: data ``NCHW[ib]c``, kernel ``OIHW[ib]i[ob]o`` (shape ``(O/ob, I/ib, KH,
  KW, ib, ob)``) -> ``NCHW[ob]c``; groups 1.
* :func:`depthwise_conv2d_NCHWc`: data ``NCHW[b]c``, kernel ``OIHW[b]o`` (shape ``(C/b, 1, KH, KW,
  b)``) -> ``NCHW[b]c``; one filter per channel (groups = channels).

Both accumulate in ``out_dtype`` (the data's dtype by default; int32 for int8 data).
"""
from __future__ import annotations

from ... import te
from ...errors import ShapeError
from .conv2d import _out_size, _pair, normalize_padding, pad, select_padded_tap
from .layout import _const

NCHWC_TAG = "conv2d_NCHWc"
DEPTHWISE_TAG = "depthwise_conv2d_NCHWc"


def _geometry(data, kernel, stride, padding, dilation, name):
    sh, sw = _pair(stride, "stride", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    H, W = _const(data.shape[2]), _const(data.shape[3])
    KH, KW = _const(kernel.shape[2]), _const(kernel.shape[3])
    OH = _out_size(H, KH, sh, dh, pt, pb, name, "height")
    OW = _out_size(W, KW, sw, dw, pl, pr, name, "width")
    attrs = {"stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw)}
    return (sh, sw), (dh, dw), (pt, pl, pb, pr), (KH, KW), (OH, OW), attrs


def conv2d_NCHWc(data, kernel, stride=1, padding=0, dilation=1, out_dtype=None, name="conv2d_NCHWc",
                 select_padded_taps=False):
    """``out[n, oc, y, x, o] = sum(data[n, ic, y*sh + ry*dh, x*sw + rx*dw, i]
    * kernel[oc, ic, ry, rx, i, o])`` over ``ic``, ``ry``, ``rx``, ``i``."""
    if data.ndim != 5 or kernel.ndim != 6:
        raise ShapeError(f"{name}: data must be NCHW[x]c (5-D) and kernel OIHW[x]i[y]o (6-D), got "
                         f"{data.ndim}-D and {kernel.ndim}-D")
    N, ICc, _, _, ib = (_const(d) for d in data.shape)
    OCc, KICc, _, _, kib, ob = (_const(d) for d in kernel.shape)
    if (KICc, kib) != (ICc, ib):
        raise ShapeError(f"{name}: kernel {kernel.name} has {KICc} x {kib} input channels, data {data.name} "
                         f"{ICc} x {ib} (blocks x block size); groups are not supported")
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (KH, KW), (OH, OW), attrs = _geometry(data, kernel, stride, padding,
                                                                                 dilation, name)
    out_dtype = out_dtype or data.dtype
    padded = pad(data, (0, 0, pt, pl, 0), (0, 0, pb, pr, 0), name=f"{name}_pad")
    ic = te.reduce_axis((0, ICc), "ic_chunk")
    ry = te.reduce_axis((0, KH), "ry")
    rx = te.reduce_axis((0, KW), "rx")
    ibr = te.reduce_axis((0, ib), "ic_block")
    return te.compute(
        (N, OCc, OH, OW, ob),
        lambda n, oc, y, x, o: te.sum(_tap(
            padded[n, ic, y * sh + ry * dh, x * sw + rx * dw, ibr].astype(out_dtype)
            * kernel[oc, ic, ry, rx, ibr, o].astype(out_dtype), y * sh + ry * dh, x * sw + rx * dw,
            (pt, pl, pb, pr), data, select_padded_taps), axis=[ic, ry, rx, ibr]),
        name=name, tag=NCHWC_TAG, attrs=dict(attrs, groups=1))


def depthwise_conv2d_NCHWc(data, kernel, stride=1, padding=0, dilation=1, out_dtype=None,
                           name="depthwise_conv2d_NCHWc", select_padded_taps=False):
    """``out[n, c, y, x, b] = sum(data[n, c, y*sh + ry*dh, x*sw + rx*dw, b] * kernel[c, 0, ry, rx, b])``."""
    if data.ndim != 5 or kernel.ndim != 5:
        raise ShapeError(f"{name}: data must be NCHW[x]c (5-D) and kernel OIHW[x]o (5-D), got "
                         f"{data.ndim}-D and {kernel.ndim}-D")
    N, Cc, _, _, b = (_const(d) for d in data.shape)
    KCc, one, _, _, kb = (_const(d) for d in kernel.shape)
    if (KCc, one, kb) != (Cc, 1, b):
        raise ShapeError(f"{name}: kernel {kernel.name} must be ({Cc}, 1, KH, KW, {b}) for data {data.name} "
                         f"with {Cc} x {b} channels, got {tuple(kernel.shape)}")
    (sh, sw), (dh, dw), (pt, pl, pb, pr), (KH, KW), (OH, OW), attrs = _geometry(data, kernel, stride, padding,
                                                                                 dilation, name)
    out_dtype = out_dtype or data.dtype
    padded = pad(data, (0, 0, pt, pl, 0), (0, 0, pb, pr, 0), name=f"{name}_pad")
    ry = te.reduce_axis((0, KH), "ry")
    rx = te.reduce_axis((0, KW), "rx")
    return te.compute(
        (N, Cc, OH, OW, b),
        lambda n, c, y, x, o: te.sum(_tap(
            padded[n, c, y * sh + ry * dh, x * sw + rx * dw, o].astype(out_dtype)
            * kernel[c, 0, ry, rx, o].astype(out_dtype), y * sh + ry * dh, x * sw + rx * dw,
            (pt, pl, pb, pr), data, select_padded_taps), axis=[ry, rx]),
        name=name, tag=DEPTHWISE_TAG, attrs=dict(attrs, groups=int(Cc * b)))


def _tap(product, py, px, padding, data, select):
    return select_padded_tap(product, py, px, padding, data.shape[2], data.shape[3]) if select else product


__all__ = ["conv2d_NCHWc", "depthwise_conv2d_NCHWc", "NCHWC_TAG", "DEPTHWISE_TAG"]
