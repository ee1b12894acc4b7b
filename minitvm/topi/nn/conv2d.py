"""2-D convolution computes: float ``conv2d_nchw`` and int8 ``conv2d_NCHWc_int8``."""
from __future__ import annotations

from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .layout import _const


def normalize_padding(padding, name="conv2d") -> tuple:
    """``p``, ``(ph, pw)`` or ``(top, left, bottom, right)`` -> (top, left, bottom, right)."""
    if isinstance(padding, int):
        pads = (padding,) * 4
    elif len(padding) == 2:
        pads = (padding[0], padding[1], padding[0], padding[1])
    elif len(padding) == 4:
        pads = tuple(padding)
    else:
        raise ShapeError(f"{name}: padding must be an int, (ph, pw) or (top, left, bottom, right), got {padding}")
    if any(int(p) < 0 for p in pads):
        raise ShapeError(f"{name}: padding must be non-negative, got {pads}")
    return tuple(int(p) for p in pads)


def _pair(x, what, name):
    x = (x, x) if isinstance(x, int) else tuple(x)
    if len(x) != 2 or any(int(v) < 1 for v in x):
        raise ShapeError(f"{name}: {what} must be a positive int or pair, got {x}")
    return tuple(int(v) for v in x)


def pad(data, pads_before, pads_after, value=0, name="pad"):
    """Zero (or ``value``) padding of each dimension; a no-op when all pads are zero."""
    if not any(pads_before) and not any(pads_after):
        return data
    shape = tuple(s + b + a for s, b, a in zip(data.shape, pads_before, pads_after))

    def f(*idx):
        conds, src = [], []
        for i, s, b, a in zip(idx, data.shape, pads_before, pads_after):
            if b:
                conds.append(i >= b)
            if a:
                conds.append(i < s + b)
            src.append(i - b if b else i)
        return te.if_then_else(te.all(*conds), data(*src), E.const(value, data.dtype))

    return te.compute(shape, f, name=name, tag="injective,pad")


def select_padded_tap(product, py, px, padding, height, width):
    """``product`` (a tap's ``padded_data * weight``) where the tap at padded row ``py`` and column
    ``px`` lands on the input, else 0: so an inf or NaN weight never meets the zero padding
    (``0 * inf`` is NaN). ``padding`` is (top, left, bottom, right); ``height`` and ``width`` the
    unpadded input's. The product itself when there is no padding."""
    pt, pl, pb, pr = padding
    inside = [c for c, p in ((py >= pt, pt), (py < height + pt, pb), (px >= pl, pl), (px < width + pl, pr)) if p]
    if not inside:
        return product
    return te.select(te.all(*inside), product, E.const(0, product.dtype))


def _out_size(n, k, s, d, p0, p1, name, axis):
    extent = (k - 1) * d + 1
    out = (n + p0 + p1 - extent) // s + 1
    c = _const(out) if not isinstance(out, int) else out
    if c is not None and c < 1:
        raise ShapeError(f"{name}: the kernel (extent {extent} with dilation {d}) does not fit the padded {axis} "
                         f"({n} + {p0 + p1})")
    return out


def conv2d_nchw(data, kernel, stride=1, padding=0, dilation=1, groups=1, out_dtype=None, name="conv2d",
                select_padded_taps=False):
    """Float (or any dtype) convolution, data ``NCHW``, kernel ``OIHW`` (I = C / groups).

    A tap that falls on the padding reads a zero and multiplies it, which gives NaN where the
    weight is inf or NaN. ``select_padded_taps=True`` selects 0 for such taps instead (a compare
    and a select per multiply-add): the graph asks for it when a conv's weights are not all
    finite or not constant (:func:`minitvm.graph.passes.guard_padded_taps`), as onnxruntime's
    optimized kernels skip padded taps."""
    N, C, H, W = data.shape
    O, I, KH, KW = kernel.shape
    sh, sw = _pair(stride, "stride", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    C_, I_, O_, KH_, KW_ = (_const(x) for x in (C, I, O, KH, KW))
    if C_ % groups or O_ % groups:
        raise ShapeError(f"{name}: channels ({C_} in, {O_} out) must be divisible by groups={groups}")
    if C_ // groups != I_:
        raise ShapeError(f"{name}: kernel {kernel.name} has {I_} input channels per group, data has "
                         f"{C_} / {groups} = {C_ // groups}")
    out_dtype = out_dtype or data.dtype
    OH = _out_size(_const(H), KH_, sh, dh, pt, pb, name, "height")
    OW = _out_size(_const(W), KW_, sw, dw, pl, pr, name, "width")
    padded = pad(data, (0, 0, pt, pl), (0, 0, pb, pr), name=f"{name}_pad")
    rc = te.reduce_axis((0, I_), "rc")
    ry = te.reduce_axis((0, KH_), "ry")
    rx = te.reduce_axis((0, KW_), "rx")
    og = O_ // groups

    def f(n, o, y, x):
        c = (o // og) * I_ + rc if groups > 1 else rc
        py, px = y * sh + ry * dh, x * sw + rx * dw
        prod = padded[n, c, py, px].astype(out_dtype) * kernel[o, rc, ry, rx].astype(out_dtype)
        if select_padded_taps:
            prod = select_padded_tap(prod, py, px, (pt, pl, pb, pr), H, W)
        return te.sum(prod, axis=[rc, ry, rx])

    return te.compute((N, O, OH, OW), f, name=name, tag="conv2d_nchw",
                      attrs={"stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw), "groups": groups})


def conv2d_NCHWc_int8(data, kernel, stride=1, padding=0, dilation=1, groups=1, out_dtype="int32",
                      name="conv2d_NCHWc_int8"):
    """int8 convolution in packed layouts: data ``NCHW[x]c``, kernel ``OIHW[y]o[x]i`` -> ``NCHW[y]c``.

    ``out[n, oc, y, x, ob] = sum(data[n, g*ICg + ic, y*sh + ry*dh, x*sw + rx*dw, ib]
    * kernel[oc, ic, ry, rx, ob, ib])`` in int32, where ``g`` is the group of ``oc``. The
    inner ``ib`` axis is what ``dp4a`` consumes, 4 int8 values at a time.
    """
    if data.ndim != 5 or kernel.ndim != 6:
        raise ShapeError(f"{name}: data must be NCHW[x]c (5-D) and kernel OIHW[y]o[x]i (6-D), got "
                         f"{data.ndim}-D and {kernel.ndim}-D")
    for t in (data, kernel):
        if t.dtype not in ("int8", "uint8"):
            raise DtypeError(f"{name}: {t.name} must be int8 (or uint8), got {t.dtype}")
    N, ICc, H, W, ib = data.shape
    OCc, ICg_c, KH, KW, ob, kib = kernel.shape
    ib_, kib_ = _const(ib), _const(kib)
    if ib_ != kib_:
        raise ShapeError(f"{name}: data packs {ib_} input channels per block, kernel {kib_}")
    ICc_, OCc_, ICg_c_ = _const(ICc), _const(OCc), _const(ICg_c)
    if ICc_ % groups or OCc_ % groups:
        raise ShapeError(f"{name}: channel blocks ({ICc_} in, {OCc_} out) must be divisible by groups={groups}; "
                         "each group's channels must be a multiple of the packing factor")
    if ICc_ // groups != ICg_c_:
        raise ShapeError(f"{name}: kernel {kernel.name} has {ICg_c_} input channel blocks per group, data has "
                         f"{ICc_} / {groups}")
    sh, sw = _pair(stride, "stride", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    KH_, KW_ = _const(KH), _const(KW)
    OH = _out_size(_const(H), KH_, sh, dh, pt, pb, name, "height")
    OW = _out_size(_const(W), KW_, sw, dw, pl, pr, name, "width")
    padded = pad(data, (0, 0, pt, pl, 0), (0, 0, pb, pr, 0), name=f"{name}_pad")
    ic = te.reduce_axis((0, ICg_c_), "ic_chunk")
    ry = te.reduce_axis((0, KH_), "ry")
    rx = te.reduce_axis((0, KW_), "rx")
    ibr = te.reduce_axis((0, ib_), "ic_block")
    ocg = OCc_ // groups

    def f(n, oc, y, x, obk):
        c = (oc // ocg) * ICg_c_ + ic if groups > 1 else ic
        return te.sum(padded[n, c, y * sh + ry * dh, x * sw + rx * dw, ibr].astype(out_dtype)
                      * kernel[oc, ic, ry, rx, obk, ibr].astype(out_dtype), axis=[ic, ry, rx, ibr])

    return te.compute((N, OCc, OH, OW, ob), f, name=name, tag="conv2d_NCHWc_int8",
                      attrs={"stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw), "groups": groups})


def group_conv2d_NCHWc_int8(data, kernel, stride, padding, dilation, groups, out_dtype="int32",
                            name="group_conv2d_NCHWc_int8"):
    """Grouped int8 convolution (ResNeXt's 32 groups): :func:`conv2d_NCHWc_int8` with ``groups``.

    Each group's input and output channels must be multiples of the packing factor (4).
    """
    if groups < 2:
        raise ShapeError(f"{name}: groups must be at least 2 (use conv2d_NCHWc_int8 otherwise), got {groups}")
    out = conv2d_NCHWc_int8(data, kernel, stride, padding, dilation, groups, out_dtype, name)
    return out
