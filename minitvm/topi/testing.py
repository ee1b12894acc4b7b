"""numpy reference implementations used to check operators (like TVM's ``topi.testing``)."""
from __future__ import annotations

import numpy as np


def _pair(v) -> tuple:
    """``v`` or ``(h, w)`` -> ``(h, w)``."""
    return (v, v) if isinstance(v, int) else tuple(v)


def _pad4(pad) -> tuple:
    """``p``, ``(ph, pw)`` or ``(top, left, bottom, right)`` -> ``(top, left, bottom, right)``."""
    if isinstance(pad, int):
        return (pad,) * 4
    return tuple(pad) * 2 if len(pad) == 2 else tuple(pad)


def conv2d_nchw(x, w, stride=1, pad=0, dilation=1, groups=1, acc_dtype=np.int64):
    """Direct convolution, data NCHW and weights OIHW, accumulated (and returned) in ``acc_dtype``.

    ``stride``, ``dilation``: ``s`` or ``(sh, sw)``; ``pad``: ``p``, ``(ph, pw)`` or
    ``(top, left, bottom, right)``.
    """
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pl, pb, pr = _pad4(pad)
    xp = np.pad(x.astype(acc_dtype), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = (H + pt + pb - ((KH - 1) * dh + 1)) // sh + 1
    OW = (W + pl + pr - ((KW - 1) * dw + 1)) // sw + 1
    out = np.zeros((N, O, OH, OW), acc_dtype)
    og = O // groups
    for g in range(groups):
        xs = xp[:, g * I:(g + 1) * I]
        ws = w[g * og:(g + 1) * og].astype(acc_dtype)
        for ry in range(KH):
            for rx in range(KW):
                y0, x0 = ry * dh, rx * dw
                patch = xs[:, :, y0:y0 + sh * (OH - 1) + 1:sh, x0:x0 + sw * (OW - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, ry, rx])
    return out


def dense(x, w, acc_dtype=None):
    """``x @ w.T`` (weight ``[units, in]``) accumulated in ``acc_dtype`` (default int64 for
    integers, float64 for floats) and returned in it."""
    acc_dtype = acc_dtype or (np.int64 if np.dtype(x.dtype).kind in "iu" else np.float64)
    return x.astype(acc_dtype) @ w.astype(acc_dtype).T


def pack_nchwc(x, factor=4):
    """NCHW -> NCHW[factor]c, zero-padding C to a multiple of ``factor``."""
    N, C, H, W = x.shape
    Cp = -(-C // factor) * factor
    xp = np.zeros((N, Cp, H, W), x.dtype)
    xp[:, :C] = x
    return np.ascontiguousarray(xp.reshape(N, Cp // factor, factor, H, W).transpose(0, 1, 3, 4, 2))


def unpack_nchwc(x, channels=None):
    """NCHW[x]c -> NCHW (dropping padded channels beyond ``channels``)."""
    N, Cc, H, W, f = x.shape
    out = x.transpose(0, 1, 4, 2, 3).reshape(N, Cc * f, H, W)
    return np.ascontiguousarray(out[:, :channels] if channels else out)


def pack_oihw(w, o_factor=4, i_factor=4):
    """OIHW -> OIHW[o]o[i]i, zero-padding O and I."""
    O, I, KH, KW = w.shape
    Op, Ip = -(-O // o_factor) * o_factor, -(-I // i_factor) * i_factor
    wp = np.zeros((Op, Ip, KH, KW), w.dtype)
    wp[:O, :I] = w
    return np.ascontiguousarray(
        wp.reshape(Op // o_factor, o_factor, Ip // i_factor, i_factor, KH, KW).transpose(0, 2, 4, 5, 1, 3))


def unpack_oihw(w):
    """OIHW[o]o[i]i -> OIHW (padded channels kept)."""
    Oc, Ic, KH, KW, o, i = w.shape
    return np.ascontiguousarray(w.transpose(0, 4, 1, 5, 2, 3).reshape(Oc * o, Ic * i, KH, KW))


def requantize(acc, multiplier, shift, rounding="TONEAREST", out_dtype=np.int8):
    """Reference of ``topi.nn.elemwise.requantize``."""
    p = acc.astype(np.int64) * multiplier
    t = 31 + shift
    if rounding == "UPWARD":
        q = (p + (1 << (t - 1))) >> t
    else:
        q = np.sign(p) * ((np.abs(p) + (1 << (t - 1))) >> t)
    info = np.iinfo(out_dtype)
    return np.clip(q, info.min, info.max).astype(out_dtype)


def _round_half_away_div(total, count):
    """Integer ``total / count`` (count > 0) rounded half away from zero."""
    total = np.asarray(total, np.int64)
    q = (2 * np.abs(total) + count) // (2 * count)
    return np.where(total < 0, -q, q)


def pool2d_nchw(x, kind, pool_size, strides, padding=0, ceil_mode=False, count_include_pad=True):
    """Max / avg pooling of NCHW ``x`` written after PyTorch's kernels (window loops per output).

    ``padding``: ``p``, ``(ph, pw)`` or ``(top, left, bottom, right)``. Integer inputs: max stays
    in the dtype; avg sums exactly and rounds half away from zero, back to the input dtype.
    """
    N, C, H, W = x.shape
    kh, kw = _pair(pool_size)
    sh, sw = _pair(strides)
    pt, pl, pb, pr = _pad4(padding)

    def out_size(n, k, s, p0, p1):
        if ceil_mode:
            o = -(-(n + p0 + p1 - k) // s) + 1
            if (o - 1) * s >= n + p0:
                o -= 1
            return o
        return (n + p0 + p1 - k) // s + 1

    OH, OW = out_size(H, kh, sh, pt, pb), out_size(W, kw, sw, pl, pr)
    integer = np.issubdtype(x.dtype, np.integer)
    out = np.empty((N, C, OH, OW), x.dtype)
    wide = x.astype(np.int64 if integer else np.float64)
    for oy in range(OH):
        hs = oy * sh - pt
        he = min(hs + kh, H + pb)
        for ox in range(OW):
            ws = ox * sw - pl
            we = min(ws + kw, W + pr)
            pool_n = (he - hs) * (we - ws)
            y0, y1, x0, x1 = max(hs, 0), min(he, H), max(ws, 0), min(we, W)
            win = wide[:, :, y0:y1, x0:x1]
            if kind == "max":
                out[:, :, oy, ox] = win.max(axis=(2, 3))
            else:
                n = pool_n if count_include_pad else (y1 - y0) * (x1 - x0)
                s = win.sum(axis=(2, 3))
                if integer:
                    out[:, :, oy, ox] = _round_half_away_div(s, n)
                else:
                    out[:, :, oy, ox] = (s / n).astype(x.dtype)
    return out


def global_pool2d_nchw(x, kind):
    """Global max / avg pooling of NCHW ``x`` -> ``(N, C, 1, 1)`` (ints: rounded half away from zero)."""
    if kind == "max":
        return x.max(axis=(2, 3), keepdims=True)
    if np.issubdtype(x.dtype, np.integer):
        s = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
        return _round_half_away_div(s, x.shape[2] * x.shape[3]).astype(x.dtype)
    return x.astype(np.float64).mean(axis=(2, 3), keepdims=True).astype(x.dtype)


def softmax(x, axis=-1):
    """Max-subtracted softmax along ``axis`` in float64, returned in ``x``'s dtype."""
    z = x.astype(np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def log_softmax(x, axis=-1):
    """Max-subtracted log-softmax along ``axis`` in float64, returned in ``x``'s dtype."""
    z = x.astype(np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=axis, keepdims=True))).astype(x.dtype)


def bilinear_zero_pad(img, py, px):
    """torchvision's ``bilinear_interpolate``: ``img[C, H, W]`` sampled at float arrays ``py, px``
    (same shape S) -> ``[C, *S]``; 0 outside ``(-1, H) x (-1, W)``, missing neighbours read 0."""
    C, H, W = img.shape
    py = py.astype(np.float64)
    px = px.astype(np.float64)
    inside = (py > -1) & (py < H) & (px > -1) & (px < W)
    y0 = np.floor(py).astype(np.int64)
    x0 = np.floor(px).astype(np.int64)
    ly, lx = py - y0, px - x0
    hy, hx = 1 - ly, 1 - lx
    out = np.zeros((C,) + py.shape, np.float64)
    for yy, xx, wgt in ((y0, x0, hy * hx), (y0, x0 + 1, hy * lx), (y0 + 1, x0, ly * hx), (y0 + 1, x0 + 1, ly * lx)):
        ok = inside & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        v = img[:, np.where(ok, yy, 0), np.where(ok, xx, 0)].astype(np.float64)
        out += np.where(ok, wgt, 0.0) * v
    return out


def deformable_conv2d_nchw(x, offset, w, stride=1, padding=0, dilation=1, deformable_groups=1, groups=1):
    """DCN v1 in float64 with ``torchvision.ops.deform_conv2d``'s semantics (no mask, no bias).

    ``x`` NCHW, ``offset`` ``[N, 2*dg*KH*KW, OH, OW]`` ((dy, dx) pairs per kernel tap), ``w`` OIHW;
    ``padding``: ``p``, ``(ph, pw)`` or ``(top, left, bottom, right)``.
    """
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pl, pb, pr = _pad4(padding)
    OH = (H + pt + pb - dh * (KH - 1) - 1) // sh + 1
    OW = (W + pl + pr - dw * (KW - 1) - 1) // sw + 1
    cpg = C // deformable_groups
    cols = np.zeros((N, C, KH, KW, OH, OW), np.float64)
    base_y = (np.arange(OH) * sh - pt)[:, None]
    base_x = (np.arange(OW) * sw - pl)[None, :]
    for n in range(N):
        for d in range(deformable_groups):
            for i in range(KH):
                for j in range(KW):
                    ch = d * 2 * KH * KW + 2 * (i * KW + j)
                    py = base_y + i * dh + offset[n, ch].astype(np.float64)
                    px = base_x + j * dw + offset[n, ch + 1].astype(np.float64)
                    cols[n, d * cpg:(d + 1) * cpg, i, j] = bilinear_zero_pad(x[n, d * cpg:(d + 1) * cpg], py, px)
    out = np.zeros((N, O, OH, OW), np.float64)
    og = O // groups
    for g in range(groups):
        out[:, g * og:(g + 1) * og] = np.einsum("ncijyx,ocij->noyx", cols[:, g * I:(g + 1) * I],
                                                w[g * og:(g + 1) * og].astype(np.float64), optimize=True)
    return out
