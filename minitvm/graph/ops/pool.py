"""Pooling ops: ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d``, ``global_max_pool2d``, and
the numpy reference :func:`pool2d_np`, and their topi computes."""
from __future__ import annotations

import numpy as np

from ...topi.nn import pooling as topi_pooling
from ..types import TensorType
from .common import _acc, _cast, _check_layout, _op, _pool_out
from .registry import REQUIRED, Attr, OpDef, register_op
from .strategy import register_compute


# ====================================================================== pooling
_POOL_ATTRS = (
    Attr("pool_size", "pair", REQUIRED, "window (kh, kw)"),
    Attr("strides", "pair", (1, 1), "stride (sh, sw)"),
    Attr("padding", "pad4", (0, 0, 0, 0), "padding (top, left, bottom, right)"),
    Attr("ceil_mode", "bool", False, "round the output size up"),
)


def _pool_infer(ctx, types, attrs, packed_ok=False):
    t = types[0]
    packed = packed_ok and t.ndim == 5 and t.layout.startswith("NCHW") and t.layout.endswith("c")
    nhwc = packed_ok and t.ndim == 4 and t.layout == "NHWC"
    if t.ndim != 4 and not packed:
        raise ctx.shape_error(f"data must be 4-D NCHW{' (or NHWC) or 5-D NCHW[x]c' if packed_ok else ''}, got {t}")
    if not packed and not nhwc:
        _check_layout(ctx, t, "NCHW", "data")
    kh, kw = attrs["pool_size"]
    sh, sw = attrs["strides"]
    pt, pl, pb, pr = attrs["padding"]
    if nhwc:
        N, H, W, C = t.shape
    else:
        N, C, H, W = t.shape[:4]
    OH = _pool_out(ctx, H, kh, sh, pt, pb, attrs["ceil_mode"], "height")
    OW = _pool_out(ctx, W, kw, sw, pl, pr, attrs["ceil_mode"], "width")
    if nhwc:
        return TensorType((N, OH, OW, C), t.dtype, t.layout)
    return TensorType((N, C, OH, OW) + tuple(t.shape[4:]), t.dtype, t.layout)


def _packed_pool_np(x, fn, layout="NCHW"):
    """Apply an NCHW pooling ``fn`` to an NCHW, NHWC or NCHW[x]c array (channel blocks pooled alike)."""
    if layout == "NHWC":
        return fn(x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    if x.ndim == 4:
        return fn(x)
    N, Cc, H, W, c = x.shape
    y = fn(x.transpose(0, 1, 4, 2, 3).reshape(N, Cc * c, H, W))
    return y.reshape(N, Cc, c, *y.shape[2:]).transpose(0, 1, 3, 4, 2)


def pool2d_np(x, kind, pool_size, strides, padding, out_hw, count_include_pad=False):
    """numpy reference 2-D pooling (``kind`` "max" or "avg") producing ``out_hw`` outputs.

    Max pooling ignores padding; average pooling divides by the number of input elements in
    the window (``count_include_pad``: by the window clipped to the padded input).
    """
    from numpy.lib.stride_tricks import sliding_window_view
    N, C, H, W = x.shape
    kh, kw = pool_size
    sh, sw = strides
    pt, pl, pb, pr = padding
    OH, OW = out_hw
    eb = max(0, (OH - 1) * sh + kh - (H + pt + pb))
    er = max(0, (OW - 1) * sw + kw - (W + pl + pr))
    pads = ((0, 0), (0, 0), (pt, pb + eb), (pl, pr + er))
    if kind == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = np.pad(x, pads, constant_values=fill)
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
        return win.max(axis=(-2, -1))
    xp = np.pad(x.astype(np.float64), pads)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
    s = win.sum(axis=(-2, -1))
    mask = np.zeros(xp.shape[2:])
    if count_include_pad:
        mask[:H + pt + pb, :W + pl + pr] = 1
    else:
        mask[pt:pt + H, pl:pl + W] = 1
    cnt = sliding_window_view(mask, (kh, kw))[::sh, ::sw][:OH, :OW].sum(axis=(-2, -1))
    return s / np.maximum(cnt, 1)


@_op("max_pool2d", ("data",), _POOL_ATTRS,
     doc="2-D max pooling (NCHW, or NHWC / packed NCHW[x]c after layout rewriting); padding never wins.")
def _maxpool_infer(ctx, types, attrs):
    return _pool_infer(ctx, types, attrs, packed_ok=True)


_maxpool_infer.compute(lambda i, a, o: _cast(_packed_pool_np(
    i[0], lambda x: pool2d_np(x, "max", a["pool_size"], a["strides"], a["padding"],
                              o.shape[1:3] if o.layout == "NHWC" else o.shape[2:4]), o.layout), o.dtype))


@_op("avg_pool2d", ("data",),
     _POOL_ATTRS + (Attr("count_include_pad", "bool", False, "count padding in the divisor"),),
     doc="2-D average pooling (NCHW).")
def _avgpool_infer(ctx, types, attrs):
    return _pool_infer(ctx, types, attrs)


_avgpool_infer.compute(lambda i, a, o: _cast(pool2d_np(i[0], "avg", a["pool_size"], a["strides"], a["padding"],
                                                       o.shape[2:], a["count_include_pad"]), o.dtype))


def _global_pool_infer(ctx, types, attrs):
    t = types[0]
    if t.ndim != 4:
        raise ctx.shape_error(f"data must be 4-D NCHW or NHWC, got {t}")
    if t.layout == "NHWC":
        return TensorType((t.shape[0], 1, 1, t.shape[3]), t.dtype, t.layout)
    _check_layout(ctx, t, "NCHW", "data")
    return TensorType(t.shape[:2] + (1, 1), t.dtype, t.layout)


def _hw(o):
    """The H and W axes of a global pool's output type (NHWC or NCHW)."""
    return (1, 2) if o.layout == "NHWC" else (2, 3)


register_op(OpDef("global_avg_pool2d", ("data",), (), _global_pool_infer,
                  lambda i, a, o: _cast(i[0].astype(_acc(i[0].dtype)).mean(axis=_hw(o), keepdims=True), o.dtype),
                  doc="Mean over H and W -> [N, C, 1, 1] (NHWC data: [N, 1, 1, C])."))
register_op(OpDef("global_max_pool2d", ("data",), (), _global_pool_infer,
                  lambda i, a, o: _cast(i[0].max(axis=_hw(o), keepdims=True), o.dtype),
                  doc="Max over H and W -> [N, C, 1, 1] (NHWC data: [N, 1, 1, C])."))


# ====================================================================== computes (te)
def _max_pool2d_te(node, ins, name):
    a = node.attrs
    return topi_pooling.max_pool2d(ins[0], a["pool_size"], a["strides"], a["padding"], a["ceil_mode"],
                                   layout=node.type.layout or "NCHW")


def _avg_pool2d_te(node, ins, name):
    a = node.attrs
    return topi_pooling.avg_pool2d(ins[0], a["pool_size"], a["strides"], a["padding"], a["ceil_mode"],
                                   a["count_include_pad"], layout=node.type.layout or "NCHW")


register_compute("max_pool2d", _max_pool2d_te)
register_compute("avg_pool2d", _avg_pool2d_te)
register_compute("global_avg_pool2d", lambda node, ins, name: topi_pooling.global_avg_pool2d(
    ins[0], layout=node.type.layout or "NCHW"))
register_compute("global_max_pool2d", lambda node, ins, name: topi_pooling.global_max_pool2d(
    ins[0], layout=node.type.layout or "NCHW"))
