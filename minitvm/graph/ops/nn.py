"""Network ops: ``conv2d``, ``deformable_conv2d``, ``dense``, ``matmul``, ``batch_norm``, ``bias_add``
and ``softmax``: declarations, numpy references (:func:`conv2d_np`, :func:`deformable_conv2d_np`) and
the topi computes the compiler lowers them to."""
from __future__ import annotations

import numpy as np

from ... import te
from ...errors import ShapeError
from ...topi.nn import conv2d as topi_conv2d
from ...topi.nn import conv2d_nchwc as topi_nchwc
from ...topi.nn.conv2d_gemm import conv2d_NHWC_int8_gemm, dense_int8_gemm
from ...topi.nn import deformable_conv2d as topi_deformable
from ...topi.nn import dense as topi_dense
from ...topi.nn import elemwise as topi_elemwise
from ...topi.nn import injective as topi_injective
from ...topi.nn.matmul import matmul as topi_matmul
from ...topi.nn import softmax as topi_softmax
from ..types import TensorType
from .common import (_acc, _bcast_shape, _canon_axis, _cast, _check_layout, _conv_out, _float_only, _op, _out_layout,
                     _positive, _same_dtype)
from .layout import layout_transform_np
from .registry import Attr
from .conditions import is_nchwc_layout, is_x86_int8_layout
from .strategy import register_compute
from ...topi.cpu.conv2d_int8 import conv2d_NCHWc_int8_x86
from ...topi.cpu.dense_int8 import dense_int8_x86


# ====================================================================== conv2d
def _conv_layouts(ctx, attrs, dt, wt):
    """Primal (padded) extents of data and kernel under the conv's declared layouts."""
    from ...topi.nn.layout import Layout
    dl, kl = Layout.parse(attrs["data_layout"]), Layout.parse(attrs["kernel_layout"])
    if sorted(dl.primal) != list("CHNW"):
        raise ctx.attr_error("data_layout", f"= {dl.name!r} must have primal axes N, C, H, W")
    if sorted(kl.primal) != list("HIOW"):
        raise ctx.attr_error("kernel_layout", f"= {kl.name!r} must have primal axes O, I, H, W")
    _check_layout(ctx, dt, dl.name, "data")
    _check_layout(ctx, wt, kl.name, "weight")
    try:
        d = dl.primal_shape(dt.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"data {dt}: {e}") from None
    try:
        k = kl.primal_shape(wt.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"weight {wt}: {e}") from None
    return dl, kl, d, k


def _conv_infer(ctx, types, attrs, deformable=False):
    if deformable:
        dt, ot, wt = types[0], types[1], types[2]
        bt = types[3] if len(types) > 3 else None
        if dt.layout not in ("", "NCHW") or wt.layout not in ("", "OIHW"):
            raise ctx.shape_error("deformable_conv2d supports NCHW data and OIHW weights only")
        d = dict(zip("NCHW", dt.shape)) if dt.ndim == 4 else None
        k = dict(zip("OIHW", wt.shape)) if wt.ndim == 4 else None
        if d is None or k is None:
            raise ctx.shape_error(f"data must be 4-D NCHW and weight 4-D OIHW, got {dt} and {wt}")
    else:
        dt, wt = types[0], types[1]
        bt = types[2] if len(types) > 2 else None
        dl, kl, d, k = _conv_layouts(ctx, attrs, dt, wt)
        ol = attrs["out_layout"] or dl.name
    g = attrs["groups"]
    C, I, O = d["C"], k["I"], k["O"]
    if C % g or O % g:
        raise ctx.attr_error("groups", f"= {g} must divide the input channels ({C}) and output channels ({O})")
    padded = (not deformable and g == 1 and C != I
               and (I == -(-C // kl.factor("I")) * kl.factor("I") or C == -(-I // dl.factor("C")) * dl.factor("C")))
    if C // g != I and not padded:  # (packed layouts may zero-pad the channels of one side)
        raise ctx.shape_error(f"weight {wt} has {I} input channels per group, the data has {C} channels / "
                              f"groups {g} = {C // g}")
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilation"]
    pt, pl, pb, pr = attrs["padding"]
    OH = _conv_out(ctx, d["H"], k["H"], sh, dh, pt, pb, "height")
    OW = _conv_out(ctx, d["W"], k["W"], sw, dw, pl, pr, "width")
    if dt.dtype != wt.dtype and not attrs["out_dtype"]:
        raise ctx.dtype_error(f"data is {dt.dtype} but weight is {wt.dtype}; make them agree or set out_dtype")
    out_dtype = attrs["out_dtype"] or dt.dtype
    if deformable:
        dg = attrs["deformable_groups"]
        if C % dg:
            raise ctx.attr_error("deformable_groups", f"= {dg} must divide the input channels ({C})")
        want = (d["N"], 2 * dg * k["H"] * k["W"], OH, OW)
        if ot.shape != want:
            raise ctx.shape_error(f"offset must have shape {list(want)} (N, 2*deformable_groups*KH*KW, OH, OW), "
                                  f"got {list(ot.shape)}")
        if dt.dtype == "int8":
            if ot.dtype != "float32" or wt.dtype != "int8" or out_dtype != "int32":
                raise ctx.dtype_error(f"int8 data needs float32 offsets, an int8 weight and out_dtype int32, got "
                                      f"{ot.dtype}, {wt.dtype} and {out_dtype}")
        elif ot.dtype != dt.dtype:
            raise ctx.dtype_error(f"offset is {ot.dtype} but data is {dt.dtype}")
    if bt is not None:
        if bt.shape != (O,):
            raise ctx.shape_error(f"bias must have shape [{O}] (one value per output channel), got {list(bt.shape)}")
        if bt.dtype != out_dtype:
            raise ctx.dtype_error(f"bias is {bt.dtype}, the output is {out_dtype}")
    if deformable:
        return TensorType((d["N"], O, OH, OW), out_dtype)
    from ...topi.nn.layout import Layout
    try:
        shape = Layout.parse(ol).shape({"N": d["N"], "C": O, "H": OH, "W": OW})
    except (KeyError, ShapeError) as e:
        raise ctx.attr_error("out_layout", f"= {ol!r} is not a layout of N, C, H, W ({e})") from None
    return TensorType(shape, out_dtype, _out_layout(ol, "NCHW"))


def conv2d_np(x, w, strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, acc=None):
    """numpy reference convolution: data NCHW, weight OIHW, padding (top, left, bottom, right).

    Accumulates in ``acc`` (float64 for floats, int64 for integers by default) and returns
    the accumulator dtype; im2col + one batched matmul per group. Padded taps add nothing,
    also where the weight is inf or NaN (``0 * inf`` would be NaN), as in onnxruntime's
    optimized kernels.
    """
    acc = acc or _acc(x.dtype)
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    cols = _im2col(x.astype(acc, copy=False), KH, KW, strides, padding, dilation)
    OH, OW = cols.shape[-2:]
    finite = np.isfinite(w) if np.issubdtype(w.dtype, np.floating) else None
    if finite is None or finite.all() or not any(padding):
        return _grouped_gemm(cols.reshape(N, C, KH * KW, OH * OW), w, groups, acc).reshape(N, O, OH, OW)
    out = _grouped_gemm(cols.reshape(N, C, KH * KW, OH * OW), np.where(finite, w, 0), groups, acc)
    out = out.reshape(N, O, OH, OW)
    inside = _im2col(np.ones((1, C, H, W), bool), KH, KW, strides, padding, dilation)
    og = O // groups
    for o, i, ky, kx in zip(*np.nonzero(~finite)):
        c = (o // og) * I + i
        with np.errstate(invalid="ignore"):     # 0 * inf on the padding, dropped next
            tap = cols[:, c, ky, kx] * w[o, i, ky, kx].astype(acc)
        out[:, o] += np.where(inside[:, c, ky, kx], tap, 0)
    return out


def _im2col(x, KH, KW, strides, padding, dilation):
    """``[N, C, KH, KW, OH, OW]``: the (zero-padded) input each tap of each output reads."""
    N, C, H, W = x.shape
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    OH = (H + pt + pb - (KH - 1) * dh - 1) // sh + 1
    OW = (W + pl + pr - (KW - 1) * dw - 1) // sw + 1
    if KH == KW == sh == sw == 1 and not any(padding):
        return x.reshape(N, C, 1, 1, H, W)               # a 1x1 conv reads the input as it is
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    cols = np.empty((N, C, KH, KW, OH, OW), x.dtype)
    for ky in range(KH):
        y0 = ky * dh
        for kx in range(KW):
            x0 = kx * dw
            cols[:, :, ky, kx] = xp[:, :, y0:y0 + sh * (OH - 1) + 1:sh, x0:x0 + sw * (OW - 1) + 1:sw]
    return cols


def _grouped_gemm(cols, w, groups, acc):
    """cols [N, C, K, P] x weight [O, C/g, KH, KW] -> [N, O, P]."""
    N, C, K, P = cols.shape
    O = w.shape[0]
    g = groups
    cols = cols.reshape(N, g, (C // g) * K, P)
    wm = w.astype(acc, copy=False).reshape(g, O // g, (C // g) * K)
    return np.matmul(wm[None], cols).reshape(N, O, P)


def _to_primal(x, layout, primal):
    """numpy: tensor in ``layout`` -> the plain layout spelled by ``primal`` (e.g. 'NCHW')."""
    if layout == primal:
        return x
    return layout_transform_np(x, layout, primal)


def _conv2d_compute(inputs, attrs, out_type):
    x, w = inputs[0], inputs[1]
    dl, kl = attrs["data_layout"], attrs["kernel_layout"]
    x = _to_primal(x, dl, "NCHW")
    w = _to_primal(w, kl, "OIHW")
    if attrs["groups"] == 1 and x.shape[1] != w.shape[1]:  # zero-padded channels on one side
        c = min(x.shape[1], w.shape[1])
        x, w = x[:, :c], w[:, :c]
    acc = _acc(x.dtype)
    out = conv2d_np(x, w, attrs["strides"], attrs["padding"], attrs["dilation"], attrs["groups"], acc)
    if len(inputs) > 2:
        out = out + inputs[2].astype(acc).reshape(1, -1, 1, 1)
    ol = attrs["out_layout"] or dl
    if ol != "NCHW":
        out = layout_transform_np(out, "NCHW", ol)
    return _cast(out, out_type.dtype)


def _conv_macs(types, out, attrs, deformable=False):
    wt = types[2] if deformable else types[1]
    if deformable:
        k = dict(zip("OIHW", wt.shape))
        n, o, oh, ow = out.shape
    else:
        from ...topi.nn.layout import Layout
        k = Layout.parse(attrs["kernel_layout"]).primal_shape(wt.shape)
        po = Layout.parse(attrs["out_layout"] or attrs["data_layout"]).primal_shape(out.shape)
        n, o, oh, ow = po["N"], k["O"], po["H"], po["W"]
    return n * o * oh * ow * k["I"] * k["H"] * k["W"]


_CONV_ATTRS = (
    Attr("strides", "pair", (1, 1), "stride (sh, sw)"),
    Attr("padding", "pad4", (0, 0, 0, 0), "padding (top, left, bottom, right)"),
    Attr("dilation", "pair", (1, 1), "dilation (dh, dw)"),
    Attr("groups", "int", 1, "channel groups", check=_positive),
)


@_op("conv2d", ("data", "weight", "bias?"),
     _CONV_ATTRS + (
         Attr("data_layout", "layout", "NCHW", "layout of data and (by default) output"),
         Attr("kernel_layout", "layout", "OIHW", "layout of the weight"),
         Attr("out_layout", "layout", "", "layout of the output ('' = data_layout)"),
         Attr("out_dtype", "dtype", "", "output/accumulator dtype ('' = data dtype)"),
         Attr("select_padded_taps", "bool", False,
              "padded taps add 0 rather than 0 * weight (set by guard_padded_taps for weights that "
              "are not finite constants; the result is the same unless a weight is inf or NaN)"),
     ),
     doc="2-D convolution; optional bias [O] added per output channel.")
def _conv2d_infer(ctx, types, attrs):
    return _conv_infer(ctx, types, attrs)


_conv2d_infer.compute(_conv2d_compute, _conv_macs)

# ====================================================================== deformable_conv2d


def deformable_conv2d_np(x, offset, w, strides=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                         deformable_groups=1, groups=1):
    """numpy reference of DCN v1 (``torchvision.ops.deform_conv2d`` without mask), in float64.

    Kernel tap ``k = ky*KW + kx`` of deformable group ``g`` samples the input at
    ``(oy*sh - top + ky*dh + offset[n, g*2K + 2k], ox*sw - left + kx*dw + offset[n, g*2K + 2k + 1])``
    bilinearly; samples with y <= -1, y >= H, x <= -1 or x >= W are zero, and corners outside the
    image contribute zero.
    """
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    OH, OW = offset.shape[2:]
    sh, sw = strides
    dh, dw = dilation
    pt, pl = padding[0], padding[1]
    dg, K = deformable_groups, KH * KW
    Cd = C // dg
    xf = x.astype(np.float64).reshape(N, dg, Cd, H * W)
    off = offset.astype(np.float64).reshape(N, dg, K, 2, OH, OW)
    base_y = (np.arange(OH) * sh - pt)[:, None].astype(np.float64)
    base_x = (np.arange(OW) * sw - pl)[None, :].astype(np.float64)
    cols = np.empty((N, dg, Cd, K, OH * OW))
    for k in range(K):
        ky, kx = divmod(k, KW)
        y = base_y + ky * dh + off[:, :, k, 0]
        xx = base_x + kx * dw + off[:, :, k, 1]
        inside = (y > -1) & (y < H) & (xx > -1) & (xx < W)
        y0, x0 = np.floor(y), np.floor(xx)
        ly, lx = y - y0, xx - x0
        y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
        acc = np.zeros((N, dg, Cd, OH * OW))
        for yi, xi, wt in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                           (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
            ok = inside & (yi >= 0) & (yi <= H - 1) & (xi >= 0) & (xi <= W - 1)
            idx = np.where(ok, yi * W + xi, 0).reshape(N, dg, 1, OH * OW)
            v = np.take_along_axis(xf, np.broadcast_to(idx, (N, dg, Cd, OH * OW)), axis=3)
            acc += v * np.where(ok, wt, 0.0).reshape(N, dg, 1, OH * OW)
        cols[:, :, :, k] = acc
    return _grouped_gemm(cols.reshape(N, C, K, OH * OW), w, groups, np.float64).reshape(N, O, OH, OW)


def _deform_compute(inputs, attrs, out_type):
    x, off, w = inputs[:3]
    if x.dtype == np.int8:
        from .deformable import deformable_sample_int8_np
        cols = deformable_sample_int8_np(x, off, w.shape[2:], attrs["strides"], attrs["padding"], attrs["dilation"],
                                         attrs["deformable_groups"])
        N, C, KH, KW, OH, OW = cols.shape
        out = _grouped_gemm(cols.astype(np.int64).reshape(N, C, KH * KW, OH * OW), w, attrs["groups"],
                            np.int64).reshape(N, -1, OH, OW)
        if len(inputs) > 3:
            out = out + inputs[3].astype(np.int64).reshape(1, -1, 1, 1)
        return _cast(out, out_type.dtype)
    out = deformable_conv2d_np(x, off, w, attrs["strides"], attrs["padding"], attrs["dilation"],
                               attrs["deformable_groups"], attrs["groups"])
    if len(inputs) > 3:
        out = out + inputs[3].astype(np.float64).reshape(1, -1, 1, 1)
    return _cast(out, out_type.dtype)


@_op("deformable_conv2d", ("data", "offset", "weight", "bias?"),
     _CONV_ATTRS + (
         Attr("deformable_groups", "int", 1, "offset groups", check=_positive),
         Attr("out_dtype", "dtype", "", "output dtype ('' = data dtype)"),
     ),
     doc="Deformable convolution v1 (torchvision.ops.deform_conv2d semantics, no mask).")
def _deform_infer(ctx, types, attrs):
    return _conv_infer(ctx, types, attrs, deformable=True)


_deform_infer.compute(_deform_compute, lambda t, o, a: _conv_macs(t, o, a, deformable=True))


# ====================================================================== dense / matmul
@_op("dense", ("data", "weight", "bias?"),
     (Attr("units", "int", None, "output features (checked against the weight)"),
      Attr("out_dtype", "dtype", "", "output dtype ('' = data dtype)"),
      Attr("gemm_int8", "bool", False, "int8 on the tensor-core GEMM (set by alter_layout, features padded to 32)"),
      Attr("split_k", "int", 0, "int8 as this many partial sums over slices of the features (set by alter_layout "
                                "for small batches on CUDA; 0: one sum)"),
      Attr("weight_layout", "layout", "OI", "layout of the weight: OI ([units, K]), or packed for the CPU "
                                             "templates by alter_layout (OI[b]o float, OI[L]o4i int8)")),
     doc="data [N, K] x weight [units, K]^T (+ bias [units]).")
def _dense_infer(ctx, types, attrs):
    from ...topi.nn.layout import Layout
    dt, wt = types[0], types[1]
    wl = Layout.parse(attrs["weight_layout"])
    if sorted(wl.primal) != ["I", "O"]:
        raise ctx.attr_error("weight_layout", f"= {wl.name!r} must have primal axes O, I")
    _check_layout(ctx, wt, "" if wl.name == "OI" else wl.name, "weight")
    try:
        w = wl.primal_shape(wt.shape)
    except ShapeError as e:
        raise ctx.shape_error(f"weight {wt}: {e}") from None
    if dt.ndim != 2 or len(w) != 2:
        raise ctx.shape_error(f"data must be [N, K] and weight [units, K], got {dt} and {wt}")
    if dt.shape[1] != w["I"]:
        raise ctx.shape_error(f"data has {dt.shape[1]} features but weight {wt} expects {w['I']}")
    units = w["O"]
    if attrs["units"] is not None and attrs["units"] != units:
        raise ctx.attr_error("units", f"= {attrs['units']} but the weight has {units} rows")
    if dt.dtype != wt.dtype and not attrs["out_dtype"]:
        raise ctx.dtype_error(f"data is {dt.dtype} but weight is {wt.dtype}; make them agree or set out_dtype")
    out_dtype = attrs["out_dtype"] or dt.dtype
    if len(types) > 2:
        bt = types[2]
        if bt.shape != (units,):
            raise ctx.shape_error(f"bias must have shape [{units}], got {list(bt.shape)}")
        if bt.dtype != out_dtype:
            raise ctx.dtype_error(f"bias is {bt.dtype}, the output is {out_dtype}")
    return TensorType((dt.shape[0], units), out_dtype)


def _dense_compute(inputs, attrs, out_type):
    acc = _acc(inputs[0].dtype)
    out = inputs[0].astype(acc) @ _to_primal(inputs[1], attrs["weight_layout"], "OI").astype(acc).T
    if len(inputs) > 2:
        out = out + inputs[2].astype(acc)
    return _cast(out, out_type.dtype)


_dense_infer.compute(_dense_compute, lambda t, o, a: o.shape[0] * o.shape[1] * t[0].shape[1])


@_op("matmul", ("a", "b"), (Attr("out_dtype", "dtype", "", "output dtype ('' = a's dtype)"),),
     doc="numpy matmul of tensors of rank >= 2 ([..., M, K] x [..., K, N]; batch dims broadcast).")
def _matmul_infer(ctx, types, attrs):
    a, b = types
    if a.ndim < 2 or b.ndim < 2:
        raise ctx.shape_error(f"both operands must be at least 2-D, got {a} and {b}")
    if a.shape[-1] != b.shape[-2]:
        raise ctx.shape_error(f"inner dimensions differ: {a} has {a.shape[-1]} columns, {b} has {b.shape[-2]} rows")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ctx.shape_error(f"batch dimensions of {a} and {b} do not broadcast") from None
    if a.dtype != b.dtype and not attrs["out_dtype"]:
        raise ctx.dtype_error(f"a is {a.dtype} but b is {b.dtype}")
    return TensorType(tuple(batch) + (a.shape[-2], b.shape[-1]), attrs["out_dtype"] or a.dtype)


_matmul_infer.compute(
    lambda i, a, o: _cast(np.matmul(i[0].astype(_acc(i[0].dtype)), i[1].astype(_acc(i[0].dtype))), o.dtype),
    lambda t, o, a: int(np.prod(o.shape)) * t[0].shape[-1])


# ====================================================================== normalization / bias
@_op("batch_norm", ("data", "gamma", "beta", "moving_mean", "moving_var"),
     (Attr("axis", "int", 1, "channel axis"),
      Attr("epsilon", "float", 1e-5, "added to the variance", check=lambda v: None if v >= 0 else "must be >= 0")),
     doc="Inference batch norm: (x - mean) / sqrt(var + epsilon) * gamma + beta along axis.")
def _bn_infer(ctx, types, attrs):
    dt = types[0]
    axis = _canon_axis(ctx, "axis", attrs["axis"], dt.ndim)
    C = dt.shape[axis]
    for nm, t in zip(("gamma", "beta", "moving_mean", "moving_var"), types[1:]):
        if t.shape != (C,):
            raise ctx.shape_error(f"{nm} must have shape [{C}] (channels on axis {axis}), got {list(t.shape)}")
    _same_dtype(ctx, types, ("data", "gamma", "beta", "moving_mean", "moving_var"))
    return dt



def _bn_compute(inputs, attrs, out_type):
    x, g, b, m, v = (a.astype(np.float64) for a in inputs)
    axis = attrs["axis"] % x.ndim
    s = _bcast_shape(x.ndim, axis, x.shape[axis])
    scale = g / np.sqrt(v + attrs["epsilon"])
    return _cast(x * scale.reshape(s) + (b - m * scale).reshape(s), out_type.dtype)


_bn_infer.compute(_bn_compute)


@_op("bias_add", ("data", "bias"), (Attr("axis", "int", 1, "axis the bias runs along"),),
     doc="data + bias broadcast along axis.")
def _bias_add_infer(ctx, types, attrs):
    dt, bt = types
    axis = _canon_axis(ctx, "axis", attrs["axis"], dt.ndim)
    if bt.shape != (dt.shape[axis],):
        raise ctx.shape_error(f"bias must have shape [{dt.shape[axis]}] (axis {axis} of {dt}), got {list(bt.shape)}")
    _same_dtype(ctx, types, ("data", "bias"))
    return dt


_bias_add_infer.compute(lambda i, a, o: _cast(
    i[0] + i[1].reshape(_bcast_shape(i[0].ndim, a["axis"] % i[0].ndim, i[1].shape[0])), o.dtype))



@_op("softmax", ("data",), (Attr("axis", "int", -1, "axis to normalize"),), doc="exp(x) / sum(exp(x)) along axis.")
def _softmax_infer(ctx, types, attrs):
    _canon_axis(ctx, "axis", attrs["axis"], types[0].ndim)
    _float_only(ctx, types[0])
    return types[0]


def _softmax_np(i, a, o):
    x = i[0].astype(np.float64)
    e = np.exp(x - x.max(axis=a["axis"], keepdims=True))
    return _cast(e / e.sum(axis=a["axis"], keepdims=True), o.dtype)


_softmax_infer.compute(_softmax_np)


# ====================================================================== computes (te)
def _with_bias(out, bias, name, packed):
    if bias is None:
        return out
    if packed:
        if bias.ndim == 2:
            return topi_elemwise.bias_add_NCHWc(out, bias, name=f"{name}_bias")
        block = int(out.shape[4].value)
        return te.compute(out.shape, lambda n, c, h, w, cb: out(n, c, h, w, cb) + bias[c * block + cb],
                          name=f"{name}_bias", tag="injective,bias_add")
    return te.compute(out.shape, lambda n, c, *r: out(n, c, *r) + bias[c], name=f"{name}_bias",
                      tag="injective,bias_add")


def _conv2d_te(node, ins, name):
    a, (data, weight) = node.attrs, ins[:2]
    if a.get("data_layout") == "NHWC":
        # int8 on the tensor cores: an implicit GEMM (alter_layout picks NHWC only for that)
        out = conv2d_NHWC_int8_gemm(data, weight, a["strides"], a["padding"], a["dilation"], name=name)
        bias = ins[2] if len(ins) > 2 else None
        if bias is None:
            return out
        return te.compute(out.shape, lambda n, h, w, c: out(n, h, w, c) + bias[c], name=f"{name}_bias",
                          tag="injective,bias_add")
    if is_nchwc_layout(a):
        # the CPU's packed layouts (alter_layout: float convs on AVX2 / AVX-512 targets, int8 depthwise on x86)
        conv = topi_nchwc.conv2d_NCHWc if a["groups"] == 1 else topi_nchwc.depthwise_conv2d_NCHWc
        out = conv(data, weight, a["strides"], a["padding"], a["dilation"], out_dtype=node.type.dtype, name=name,
                   select_padded_taps=a["select_padded_taps"])
    elif is_x86_int8_layout(a) and data.dtype in ("int8", "uint8"):
        # the x86 dot-product template's layouts (alter_layout picks them for AVX2 / VNNI targets)
        out = conv2d_NCHWc_int8_x86(data, weight, a["strides"], a["padding"], a["dilation"], name=name)
    elif a.get("data_layout", "NCHW") == "NCHW" and a.get("kernel_layout", "OIHW") == "OIHW":
        out = topi_conv2d.conv2d_nchw(data, weight, a["strides"], a["padding"], a["dilation"], a["groups"],
                                      out_dtype=node.type.dtype, name=name,
                                      select_padded_taps=a["select_padded_taps"])
    else:
        out = topi_conv2d.conv2d_NCHWc_int8(data, weight, a["strides"], a["padding"], a["dilation"], a["groups"],
                                            out_dtype=node.type.dtype, name=name)
    return _with_bias(out, ins[2] if len(ins) > 2 else None, name, packed=out.ndim == 5)


def _deformable_conv2d_te(node, ins, name):
    a = node.attrs
    out = topi_deformable.deformable_conv2d_nchw(ins[0], ins[1], ins[2], a["strides"], a["padding"], a["dilation"],
                                                 a["deformable_groups"], a["groups"], out_dtype=node.type.dtype)
    return _with_bias(out, ins[3] if len(ins) > 3 else None, name, packed=False)


register_compute("conv2d", _conv2d_te)
register_compute("deformable_conv2d", _deformable_conv2d_te)
def _dense_te(node, ins, name):
    bias = ins[2] if len(ins) > 2 else None
    wl = node.attrs.get("weight_layout", "OI")
    if wl != "OI":
        # the CPU templates' packed weights (alter_layout): float OI[b]o, int8 OI[L]o4i for dot_u8s8
        dense = dense_int8_x86 if wl.endswith("4i") else topi_dense.dense_packed
        out = dense(ins[0], ins[1], out_dtype=node.type.dtype, name=name)
    elif node.attrs.get("split_k"):
        out = topi_dense.dense_int8_split_k(ins[0], ins[1], node.attrs["split_k"], name=name)
    elif node.attrs.get("gemm_int8"):
        # int8 on the tensor cores (alter_layout marks only such denses)
        out = dense_int8_gemm(ins[0], ins[1], name=name)
    else:
        return topi_dense.dense(ins[0], ins[1], bias, out_dtype=node.type.dtype, name=name)
    if bias is None:
        return out
    return te.compute(out.shape, lambda m, n: out(m, n) + bias[n], name=f"{name}_bias", tag="injective,bias_add")


register_compute("dense", _dense_te)
register_compute("matmul", lambda node, ins, name: topi_matmul(ins[0], ins[1], out_dtype=node.type.dtype, name=name))
register_compute("batch_norm", lambda node, ins, name: topi_injective.batch_norm_inference(
    ins[0], ins[1], ins[2], ins[3], ins[4], node.attrs["epsilon"], axis=node.attrs["axis"]))
register_compute("bias_add", lambda node, ins, name: topi_injective.bias_add(ins[0], ins[1], axis=node.attrs["axis"]))
register_compute("softmax", lambda node, ins, name: topi_softmax.softmax(ins[0], axis=node.attrs["axis"]))
