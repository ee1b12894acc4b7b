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

**int8.** With int8 data and kernel (float32 offsets) the sampling is fixed point, so that every
backend computes the same bits: the position is the float32 sum of the tap's integer position and
its offset (one rounding, the same everywhere), its fractions are rounded to 1/128 of a pixel
(``w = rint(frac * 128)``), and the sample is ``(sum of the four neighbours times their
integer weights + 2**13) >> 14``, an int8 on the data's own scale; the convolution then
accumulates int8 x int8 in int32. :func:`deformable_sample_nhwc` lays the same samples out as
NHWC channels ``(tap, c)`` for an int8 GEMM.
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


FRAC_BITS = 7       # int8 sampling: positions to 1/128 pixel; the four weights sum to 2**(2 * FRAC_BITS)


def _let(value, name, fbody):
    """``let v = value in fbody(v)``: a value read several times is computed (and walked) once."""
    v = E.Var(name, value.dtype)
    return E.Let(v, value, fbody(v))


def bilinear_sample_int8(data, n, c, py, px, H, W, nhwc=False):
    """The fixed-point bilinear sample of int8 ``data`` (NCHW, or NHWC with ``nhwc``) at float32
    ``(py, px)``: integer weights of 1/128 pixel, rounded to an int8 (module docstring); 0 outside."""
    f32 = py.dtype
    one = 1 << FRAC_BITS

    def at(py, px):
        inside = te.all(py > E.const(-1.0, f32), py < E.const(float(H), f32),
                        px > E.const(-1.0, f32), px < E.const(float(W), f32))
        return _let(te.floor(py), "fy", lambda fy: _let(te.floor(px), "fx", lambda fx: _let(
            te.round((py - fy) * E.const(float(one), f32)).astype("int32"), "wy", lambda wy: _let(
                te.round((px - fx) * E.const(float(one), f32)).astype("int32"), "wx", lambda wx: _let(
                    fy.astype("int32"), "y0", lambda y0: _let(
                        fx.astype("int32"), "x0", lambda x0: weighted(inside, wy, wx, y0, x0)))))))

    def tap(inside, yy, xx, conds):
        v = data[n, yy, xx, c] if nhwc else data[n, c, yy, xx]
        return te.if_then_else(te.all(inside, *conds), v.astype("int32"), E.const(0, "int32"))

    def weighted(inside, wy, wx, y0, x0):
        y1, x1 = y0 + 1, x0 + 1
        acc = ((one - wy) * ((one - wx) * tap(inside, y0, x0, [y0 >= 0, x0 >= 0])
                             + wx * tap(inside, y0, x1, [y0 >= 0, x1 <= W - 1]))
               + wy * ((one - wx) * tap(inside, y1, x0, [y1 <= H - 1, x0 >= 0])
                       + wx * tap(inside, y1, x1, [y1 <= H - 1, x1 <= W - 1])))
        return ((acc + E.const(1 << (2 * FRAC_BITS - 1), "int32")) // E.const(1 << 2 * FRAC_BITS, "int32")
                ).astype("int8")

    return _let(py, "py", lambda pyv: _let(px, "px", lambda pxv: at(pyv, pxv)))


def _check_operands(data, offset, kernel, name):
    """float data, offset and kernel of one dtype, or int8 data and kernel with float32 offsets."""
    for t, what in ((data, "data"), (offset, "offset"), (kernel, "kernel")):
        if t.ndim != 4:
            raise ShapeError(f"{name}: {what} {t.name} must be 4-D, got {t.ndim}-D")
    if data.dtype == "int8":
        if kernel.dtype != "int8" or offset.dtype != "float32":
            raise DtypeError(f"{name}: int8 data needs an int8 kernel and float32 offsets, got {kernel.dtype} "
                             f"and {offset.dtype}")
        return
    for t, what in ((data, "data"), (offset, "offset"), (kernel, "kernel")):
        if not dt.is_float(t.dtype):
            raise DtypeError(f"{name}: {what} {t.name} must be a float tensor (or int8 data and kernel), got {t.dtype}")
    if offset.dtype != data.dtype or kernel.dtype != data.dtype:
        raise DtypeError(f"{name}: data, offset and kernel must share one dtype, got {data.dtype}, "
                         f"{offset.dtype}, {kernel.dtype}")


def deformable_conv2d_nchw(data, offset, kernel, strides=1, padding=0, dilation=1, deformable_groups=1, groups=1,
                           out_dtype=None, name="deformable_conv2d"):
    """DCN v1 convolution: data ``NCHW``, offset ``[N, 2*dg*KH*KW, OH, OW]`` ((dy, dx) pairs),
    kernel ``OIHW`` (``I = C / groups``); float dtypes, or int8 data and kernel (int32 output;
    fixed-point sampling, module docstring). Matches ``torchvision.ops.deform_conv2d`` (without
    mask and bias). ``padding`` is ``p``, ``(ph, pw)`` or ``(top, left, bottom, right)``.
    """
    _check_operands(data, offset, kernel, name)
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
    int8 = data.dtype == "int8"
    out_dtype = out_dtype or ("int32" if int8 else data.dtype)
    fdt = offset.dtype
    cpg = C // deformable_groups

    def fsample(n, c, i, j, y, x):
        g = c // cpg if deformable_groups > 1 else 0
        ch = g * (2 * KH * KW) + 2 * (i * KW + j)
        py = (y * sh - pt + i * dh).astype(fdt) + offset[n, ch, y, x]
        px = (x * sw - pl + j * dw).astype(fdt) + offset[n, ch + 1, y, x]
        if int8:
            return bilinear_sample_int8(data, n, c, py, px, H, W)
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


def deformable_sample_nhwc(data, offset, kernel_size, strides=1, padding=0, dilation=1, channels_to=32,
                           name="deformable_sample"):
    """The int8 samples of a deformable conv (one deformable group) as NHWC channels: int8
    ``data`` NHWC ``[N, H, W, C]`` and float32 ``offset`` ``[N, 2*KH*KW, OH, OW]`` -> int8
    ``[N, OH, OW, KH*KW*C]`` (channel ``(i*KW + j)*C + c``; zero-padded to a multiple of
    ``channels_to``), the same samples as the int8 :func:`deformable_conv2d_nchw` takes: a 1 x 1
    int8 conv over them with the kernel laid out ``[O, 1, 1, KH*KW*C]`` is the deformable conv."""
    if data.dtype != "int8" or offset.dtype != "float32":
        raise DtypeError(f"{name}: needs int8 data and float32 offsets, got {data.dtype} and {offset.dtype}")
    N, H, W, C = _static(data, name)
    KH, KW = _pair(kernel_size, "kernel_size", name)
    sh, sw = _pair(strides, "strides", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, _, _ = normalize_padding(padding, name)
    _, K2, OH, OW = _static(offset, name)
    if K2 != 2 * KH * KW:
        raise ShapeError(f"{name}: offset {offset.name} has {K2} channels, a {KH}x{KW} kernel needs {2 * KH * KW}")
    taps = KH * KW * C
    width = -(-taps // channels_to) * channels_to

    def f(n, y, x, j):
        k, c = j // C, j % C
        i, jj = k // KW, k % KW
        py = (y * sh - pt + i * dh).astype("float32") + offset[n, 2 * k, y, x]
        px = (x * sw - pl + jj * dw).astype("float32") + offset[n, 2 * k + 1, y, x]
        v = bilinear_sample_int8(data, n, c, py, px, H, W, nhwc=True)
        return te.if_then_else(j < taps, v, E.const(0, "int8")) if width != taps else v

    return te.compute((N, OH, OW, width), f, name=name, tag="injective,deformable_sample")


__all__ = ["deformable_conv2d_nchw", "deformable_sample_nhwc", "bilinear_sample_zero_pad", "bilinear_sample_int8",
           "FRAC_BITS"]
