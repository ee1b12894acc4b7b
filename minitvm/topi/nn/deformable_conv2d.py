"""Deformable convolution v1 (DCN), with ``torchvision.ops.deform_conv2d``'s exact semantics.

``out[n, o, y, x] = sum_{c, i, j} kernel[o, c, i, j] * sample(data[n, g*Cg + c], py, px)`` with
``py = y*sh - pt + i*dh + offset[n, d*2*KH*KW + 2*(i*KW + j),     y, x]`` and
``px = x*sw - pl + j*dw + offset[n, d*2*KH*KW + 2*(i*KW + j) + 1, y, x]``, where ``g`` is the
convolution group of output channel ``o`` and ``d`` the deformable group of input channel
``g*Cg + c`` (``C / deformable_groups`` consecutive input channels share one offset field).

``sample`` is bilinear interpolation with zeros outside the image (torchvision's
``bilinear_interpolate``): 0 when ``py <= -1``, ``py >= H``, ``px <= -1`` or ``px >= W``;
otherwise the four neighbours ``floor(p)`` and ``floor(p) + 1`` are weighted by
``(1 - l)`` / ``l`` (``l = p - floor(p)``), each neighbour outside the image reading 0.

Stages: ``*_sample`` (tag ``deformable_conv2d_sample``, the sampled columns
``[N, C, KH, KW, OH, OW]``, element-wise in its inputs — schedules may inline it or compute it
once) and the output (tag ``deformable_conv2d_nchw``, a reduction over ``(c, i, j)``).
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .conv2d import _pair, normalize_padding
from .layout import _const


def _static(t, name):
    out = []
    for axis, s in enumerate(t.shape):
        c = _const(s)
        if c is None:
            raise ShapeError(f"{name}: {t.name} axis {axis} must have a static extent, got {s}")
        out.append(c)
    return out


def bilinear_sample_zero_pad(data, n, c, py, px, H, W):
    """torchvision's ``bilinear_interpolate`` of ``data[n, c]`` (NCHW) at float ``(py, px)``, 0 outside."""
    fdt = py.dtype
    zero = E.const(0.0, fdt)
    one = E.const(1.0, fdt)
    inside = te.all(py > E.const(-1.0, fdt), py < E.const(float(H), fdt),
                    px > E.const(-1.0, fdt), px < E.const(float(W), fdt))
    fy, fx = te.floor(py), te.floor(px)
    y0, x0 = fy.astype("int32"), fx.astype("int32")
    y1, x1 = y0 + 1, x0 + 1
    ly, lx = py - fy, px - fx
    hy, hx = one - ly, one - lx

    def tap(yy, xx, conds):
        return te.if_then_else(te.all(inside, *conds), data[n, c, yy, xx], zero)

    v1 = tap(y0, x0, [y0 >= 0, x0 >= 0])
    v2 = tap(y0, x1, [y0 >= 0, x1 <= W - 1])
    v3 = tap(y1, x0, [y1 <= H - 1, x0 >= 0])
    v4 = tap(y1, x1, [y1 <= H - 1, x1 <= W - 1])
    val = hy * hx * v1 + hy * lx * v2 + ly * hx * v3 + ly * lx * v4
    return te.select(inside, val, zero)


def deformable_conv2d_nchw(data, offset, kernel, strides=1, padding=0, dilation=1, deformable_groups=1, groups=1,
                           out_dtype=None, name="deformable_conv2d"):
    """DCN v1 convolution: data ``NCHW``, offset ``[N, 2*dg*KH*KW, OH, OW]`` ((dy, dx) pairs),
    kernel ``OIHW`` (``I = C / groups``); float dtypes. Matches ``torchvision.ops.deform_conv2d``
    (without mask and bias). ``padding`` is ``p``, ``(ph, pw)`` or ``(top, left, bottom, right)``.
    """
    for t, what in ((data, "data"), (offset, "offset"), (kernel, "kernel")):
        if t.ndim != 4:
            raise ShapeError(f"{name}: {what} {t.name} must be 4-D, got {t.ndim}-D")
        if not dt.is_float(t.dtype):
            raise DtypeError(f"{name}: {what} {t.name} must be a float tensor, got {t.dtype}")
    if offset.dtype != data.dtype or kernel.dtype != data.dtype:
        raise DtypeError(f"{name}: data, offset and kernel must share one dtype, got {data.dtype}, "
                         f"{offset.dtype}, {kernel.dtype}")
    N, C, H, W = _static(data, name)
    O, I, KH, KW = _static(kernel, name)
    sh, sw = _pair(strides, "strides", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    if groups < 1 or deformable_groups < 1:
        raise ShapeError(f"{name}: groups ({groups}) and deformable_groups ({deformable_groups}) must be positive")
    if C % groups or O % groups:
        raise ShapeError(f"{name}: channels ({C} in, {O} out) must be divisible by groups={groups}")
    if C // groups != I:
        raise ShapeError(f"{name}: kernel {kernel.name} has {I} input channels per group, data {data.name} has "
                         f"{C} / groups {groups} = {C // groups}")
    if C % deformable_groups:
        raise ShapeError(f"{name}: input channels ({C}) must be divisible by deformable_groups={deformable_groups}")
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        raise ShapeError(f"{name}: the kernel does not fit the padded input ({H}x{W} + padding {(pt, pl, pb, pr)})")
    expect = (N, 2 * deformable_groups * KH * KW, OH, OW)
    got = tuple(_static(offset, name))
    if got != expect:
        raise ShapeError(f"{name}: offset {offset.name} must have shape [N, 2*deformable_groups*KH*KW, OH, OW] = "
                         f"{expect}, got {got}")
    out_dtype = out_dtype or data.dtype
    fdt = data.dtype
    cpg = C // deformable_groups

    def fsample(n, c, i, j, y, x):
        g = c // cpg if deformable_groups > 1 else 0
        ch = g * (2 * KH * KW) + 2 * (i * KW + j)
        py = (y * sh - pt + i * dh).astype(fdt) + offset[n, ch, y, x]
        px = (x * sw - pl + j * dw).astype(fdt) + offset[n, ch + 1, y, x]
        return bilinear_sample_zero_pad(data, n, c, py, px, H, W)

    cols = te.compute((N, C, KH, KW, OH, OW), fsample, name=f"{name}_sample", tag="deformable_conv2d_sample")
    rc = te.reduce_axis((0, I), "rc")
    ry = te.reduce_axis((0, KH), "ry")
    rx = te.reduce_axis((0, KW), "rx")
    og = O // groups

    def f(n, o, y, x):
        c = (o // og) * I + rc if groups > 1 else rc
        return te.sum(cols[n, c, ry, rx, y, x].astype(out_dtype) * kernel[o, rc, ry, rx].astype(out_dtype),
                      axis=[rc, ry, rx])

    return te.compute((N, O, OH, OW), f, name=name, tag="deformable_conv2d_nchw",
                      attrs={"strides": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw),
                             "deformable_groups": deformable_groups, "groups": groups})


__all__ = ["deformable_conv2d_nchw", "bilinear_sample_zero_pad"]
