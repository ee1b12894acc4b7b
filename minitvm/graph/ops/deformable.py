"""The int8 deformable convolution's sampling: its numpy reference (:func:`deformable_sample_int8_np`,
fixed point, the same bits as :func:`minitvm.topi.nn.deformable_conv2d.bilinear_sample_int8`) and
``deformable_sample``, the samples laid out as NHWC channels for an int8 GEMM (``alter_layout``
turns an int8 ``deformable_conv2d`` into it and a 1 x 1 conv on the tensor cores)."""
from __future__ import annotations

import numpy as np

from ...topi.nn.deformable_conv2d import FRAC_BITS
from ...topi.nn.deformable_conv2d import deformable_sample_nhwc as topi_deformable_sample
from ..types import TensorType
from .common import _check_layout, _conv_out, _op
from .registry import REQUIRED, Attr
from .strategy import register_compute


def deformable_sample_int8_np(x, offset, kernel_size, strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                              deformable_groups=1):
    """numpy: the int8 samples ``[N, C, KH, KW, OH, OW]`` of int8 NCHW ``x`` at the float32
    ``offset`` positions (module docstring of :mod:`minitvm.topi.nn.deformable_conv2d`)."""
    N, C, H, W = x.shape
    KH, KW = kernel_size
    (sh, sw), (dh, dw), (pt, pl) = strides, dilation, padding[:2]
    OH, OW = offset.shape[2:]
    f32, one = np.float32, 1 << FRAC_BITS
    cpg = C // deformable_groups
    off = offset.astype(f32).reshape(N, deformable_groups, KH * KW, 2, OH, OW)
    xs = x.astype(np.int64).reshape(N, deformable_groups, cpg, H * W)
    cols = np.empty((N, deformable_groups, cpg, KH, KW, OH, OW), np.int8)
    for i in range(KH):
        for j in range(KW):
            k = i * KW + j
            py = (np.arange(OH) * sh - pt + i * dh).astype(f32)[:, None] + off[:, :, k, 0]
            px = (np.arange(OW) * sw - pl + j * dw).astype(f32)[None, :] + off[:, :, k, 1]
            inside = (py > f32(-1)) & (py < f32(H)) & (px > f32(-1)) & (px < f32(W))
            fy, fx = np.floor(py), np.floor(px)
            wy = np.rint((py - fy) * f32(one)).astype(np.int64)
            wx = np.rint((px - fx) * f32(one)).astype(np.int64)
            y0, x0 = fy.astype(np.int64), fx.astype(np.int64)

            def tap(yy, xx):
                ok = inside & (yy >= 0) & (yy <= H - 1) & (xx >= 0) & (xx <= W - 1)
                idx = np.where(ok, yy * W + xx, 0).reshape(N, deformable_groups, 1, OH * OW)
                v = np.take_along_axis(xs, np.broadcast_to(idx, (N, deformable_groups, cpg, OH * OW)), axis=3)
                return v * ok.reshape(N, deformable_groups, 1, OH * OW)

            wy_, wx_ = (w.reshape(N, deformable_groups, 1, OH * OW) for w in (wy, wx))
            acc = ((one - wy_) * ((one - wx_) * tap(y0, x0) + wx_ * tap(y0, x0 + 1))
                   + wy_ * ((one - wx_) * tap(y0 + 1, x0) + wx_ * tap(y0 + 1, x0 + 1)))
            cols[:, :, :, i, j] = ((acc + (1 << (2 * FRAC_BITS - 1))) >> (2 * FRAC_BITS)).reshape(
                N, deformable_groups, cpg, OH, OW)
    return cols.reshape(N, C, KH, KW, OH, OW)


def sample_channels(channels: int, kernel_size) -> int:
    """Channels of ``deformable_sample``'s output: ``KH * KW * channels`` padded to a multiple of 32."""
    taps = kernel_size[0] * kernel_size[1] * channels
    return -(-taps // 32) * 32


@_op("deformable_sample", ("data", "offset"),
     (Attr("kernel_size", "pair", REQUIRED, "the deformable conv's kernel (KH, KW)"),
      Attr("strides", "pair", (1, 1), "stride (sh, sw)"),
      Attr("padding", "pad4", (0, 0, 0, 0), "padding (top, left, bottom, right)"),
      Attr("dilation", "pair", (1, 1), "dilation (dh, dw)")),
     doc="The int8 samples of a deformable conv (one deformable group) as NHWC channels (tap, c), padded "
         "to a multiple of 32: a 1 x 1 int8 conv over them is the deformable conv.")
def _sample_infer(ctx, types, attrs):
    dt, ot = types
    if dt.ndim != 4 or dt.dtype != "int8":
        raise ctx.dtype_error(f"data must be 4-D NHWC int8, got {dt}")
    _check_layout(ctx, dt, "NHWC", "data")
    if ot.dtype != "float32":
        raise ctx.dtype_error(f"offset must be float32, got {ot.dtype}")
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel_size"], attrs["strides"], attrs["dilation"]
    pt, pl, pb, pr = attrs["padding"]
    n, h, w, c = dt.shape
    oh = _conv_out(ctx, h, kh, sh, dh, pt, pb, "height")
    ow = _conv_out(ctx, w, kw, sw, dw, pl, pr, "width")
    if ot.shape != (n, 2 * kh * kw, oh, ow):
        raise ctx.shape_error(f"offset must have shape {[n, 2 * kh * kw, oh, ow]}, got {list(ot.shape)}")
    return TensorType((n, oh, ow, sample_channels(c, (kh, kw))), "int8", "NHWC")


def _sample_compute(inputs, attrs, out_type):
    x, off = inputs
    cols = deformable_sample_int8_np(x.transpose(0, 3, 1, 2), off, attrs["kernel_size"], attrs["strides"],
                                     attrs["padding"], attrs["dilation"])
    n, c, kh, kw, oh, ow = cols.shape
    out = np.zeros(out_type.shape, np.int8)
    out[..., :kh * kw * c] = cols.transpose(0, 4, 5, 2, 3, 1).reshape(n, oh, ow, kh * kw * c)
    return out


_sample_infer.compute(_sample_compute)

register_compute("deformable_sample", lambda node, ins, name: topi_deformable_sample(
    ins[0], ins[1], node.attrs["kernel_size"], node.attrs["strides"], node.attrs["padding"], node.attrs["dilation"],
    name=name))
