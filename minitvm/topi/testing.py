"""numpy reference implementations used to check operators (like TVM's ``topi.testing``)."""
from __future__ import annotations

import numpy as np


def conv2d_nchw(x, w, stride=1, pad=0, dilation=1, groups=1, acc_dtype=np.int64):
    """Direct convolution, data NCHW and weights OIHW, accumulated in ``acc_dtype``."""
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    pt, pl, pb, pr = (pad,) * 4 if isinstance(pad, int) else pad
    xp = np.pad(x.astype(acc_dtype), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    OH = (H + pt + pb - ((KH - 1) * dilation + 1)) // stride + 1
    OW = (W + pl + pr - ((KW - 1) * dilation + 1)) // stride + 1
    out = np.zeros((N, O, OH, OW), acc_dtype)
    og = O // groups
    for g in range(groups):
        xs = xp[:, g * I:(g + 1) * I]
        ws = w[g * og:(g + 1) * og].astype(acc_dtype)
        for ry in range(KH):
            for rx in range(KW):
                y0, x0 = ry * dilation, rx * dilation
                patch = xs[:, :, y0:y0 + stride * (OH - 1) + 1:stride, x0:x0 + stride * (OW - 1) + 1:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, ry, rx])
    return out


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
