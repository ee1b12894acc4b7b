"""int8 convolution and dense as GEMMs in the tile shape of the int8 tensor cores.

``conv2d_NHWC_int8_gemm`` computes an NHWC convolution (weights ``OHWI``) as the implicit GEMM
``C[m, n] = sum_k A[m, k] * W[n, k]``, where row ``m`` is an output pixel ``(n, oh, ow)``, column
``n`` an output channel and ``k`` a filter tap ``(kh, kw, c)``; ``A`` is the im2col view of the
data (never stored: schedules inline it into their shared-memory fill). The GEMM is a stage of
its own, shaped ``[N / 8, M_pad, 8]`` so that each 16 x 8 tile of the ``mma.m16n8k32`` instruction
is contiguous wherever the stage is stored (warp fragments need that); its rows are padded to
:func:`gemm_rows` (the padded rows read zeros and are never stored), and the output stage reads
it back as NHWC. ``dense_int8_gemm`` is the same GEMM with ``A`` the data itself.

Both need channel counts the layout pads for them: input channels a multiple of 32 (one
``k = 32`` step stays inside one filter tap) and output channels a multiple of 8.
"""
from __future__ import annotations

from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .conv2d import _out_size, _pair, normalize_padding
from .layout import _const

MMA_M, MMA_N, MMA_K = 16, 8, 32
GEMM_TAG = "int8_gemm"


def gemm_rows(m: int) -> int:
    """The padded row count of an ``m``-row int8 GEMM: a multiple of 16 up to 64 rows, then of
    64 (so block tiles of up to 64 rows, and of 128 or 256 where they divide it, fit exactly)."""
    if m <= 64:
        return -(-m // MMA_M) * MMA_M
    return -(-m // 64) * 64


def _check_channels(ic: int, oc: int, name: str) -> None:
    if ic % MMA_K:
        raise ShapeError(f"{name}: {ic} input channels; the int8 tensor-core GEMM needs a multiple of {MMA_K} "
                         "(pad the channels in the layout)")
    if oc % MMA_N:
        raise ShapeError(f"{name}: {oc} output channels; the int8 tensor-core GEMM needs a multiple of {MMA_N}")


def conv2d_NHWC_int8_gemm(data, weight, stride=1, padding=0, dilation=1, name="conv2d_nhwc_int8"):
    """int8 conv2d: ``data`` NHWC int8, ``weight`` OHWI int8 -> NHWC int32 (groups = 1)."""
    N, H, W, C = (_const(d) for d in data.shape)
    O, KH, KW, I = (_const(d) for d in weight.shape)
    if data.dtype != "int8" or weight.dtype != "int8":
        raise DtypeError(f"{name}: data and weight must be int8, got {data.dtype} and {weight.dtype}")
    if I != C:
        raise ShapeError(f"{name}: weight {weight.name} has {I} input channels, data {data.name} has {C}")
    _check_channels(C, O, name)
    sh, sw = _pair(stride, "stride", name)
    dh, dw = _pair(dilation, "dilation", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    OH = _out_size(H, KH, sh, dh, pt, pb, name, "height")
    OW = _out_size(W, KW, sw, dw, pl, pr, name, "width")
    M = N * OH * OW
    rows = gemm_rows(M)

    def im2col(m, kh, kw, c):
        n, oh, ow = m // (OH * OW), m // OW % OH, m % OW
        h, w = oh * sh + kh * dh - pt, ow * sw + kw * dw - pl
        inside = [m < M] if rows != M else []
        if pt or pb:
            inside += [h >= 0, h < H]
        if pl or pr:
            inside += [w >= 0, w < W]
        v = data[n, h, w, c]
        return te.if_then_else(te.all(*inside), v, E.const(0, "int8")) if inside else v

    A = te.compute((rows, KH, KW, C), im2col, name=f"{name}_im2col", tag="injective,im2col")
    rh = te.reduce_axis((0, KH), "rh")
    rw = te.reduce_axis((0, KW), "rw")
    rc = te.reduce_axis((0, C), "rc")
    gemm = te.compute(
        (O // MMA_N, rows, MMA_N),
        lambda nb, m, ni: te.sum(A[m, rh, rw, rc].astype("int32") * weight[nb * MMA_N + ni, rh, rw, rc].astype("int32"),
                                 axis=[rh, rw, rc]),
        name=f"{name}_gemm", tag=GEMM_TAG,
        attrs={"stride": (sh, sw), "padding": (pt, pl, pb, pr), "dilation": (dh, dw), "rows": M})
    return te.compute((N, OH, OW, O), lambda n, oh, ow, o: gemm[o // MMA_N, (n * OH + oh) * OW + ow, o % MMA_N],
                      name=name, tag="conv2d_nhwc_int8")


def dense_int8_gemm(data, weight, name="dense_int8_gemm"):
    """int8 dense: ``data [M, K]`` times ``weight [N, K]`` transposed -> int32 ``[M, N]``."""
    M, K = (_const(d) for d in data.shape)
    N, K2 = (_const(d) for d in weight.shape)
    if data.dtype != "int8" or weight.dtype != "int8":
        raise DtypeError(f"{name}: data and weight must be int8, got {data.dtype} and {weight.dtype}")
    if K != K2:
        raise ShapeError(f"{name}: data {data.name} has {K} features, weight {weight.name} {K2}")
    _check_channels(K, N, name)
    rows = gemm_rows(M)
    A = te.compute((rows, K), lambda m, k: te.if_then_else(m < M, data[m, k], E.const(0, "int8"))
                   if rows != M else data[m, k], name=f"{name}_rows", tag="injective,im2col")
    rk = te.reduce_axis((0, K), "rk")
    gemm = te.compute((N // MMA_N, rows, MMA_N),
                      lambda nb, m, ni: te.sum(A[m, rk].astype("int32") * weight[nb * MMA_N + ni, rk].astype("int32"),
                                               axis=[rk]),
                      name=f"{name}_gemm", tag=GEMM_TAG, attrs={"rows": M})
    return te.compute((M, N), lambda m, n: gemm[n // MMA_N, m, n % MMA_N], name=name, tag="dense_int8")


def folded_width(channels: int, kernel_w: int) -> int:
    """Channels of :func:`fold_kernel_width`'s output: ``kernel_w * channels`` padded to whole k-steps."""
    return -(-kernel_w * channels // MMA_K) * MMA_K


def fold_kernel_width(data, kernel_w: int, stride_w: int = 1, dilation_w: int = 1, pad_left: int = 0,
                      pad_right: int = 0, name="fold_kernel_width"):
    """The im2col of a convolution along its width only: NHWC ``data`` ``[N, H, W, C]`` ->
    ``[N, H, OW, folded_width(C, kernel_w)]`` with ``out[n, h, ow, kw * C + c] = data[n, h, ow *
    stride_w + kw * dilation_w - pad_left, c]`` (zero outside the input and in the padded channels).

    A convolution over few channels (an RGB first layer) becomes, on this tensor, a ``KH x 1``
    convolution over whole 32-channel k-steps with the weights reshaped to ``[O, KH, 1, KW * C]``:
    the same sums, with the taps of a kernel row packed where the tensor cores read channels."""
    N, H, W, C = (_const(d) for d in data.shape)
    ow = _out_size(W, kernel_w, stride_w, dilation_w, pad_left, pad_right, name, "width")
    cp = folded_width(C, kernel_w)

    def fold(n, h, o, j):
        kw, c = j // C, j % C
        w = o * stride_w + kw * dilation_w - pad_left
        inside = [j < kernel_w * C] if cp != kernel_w * C else []
        if pad_left or pad_right:
            inside += [w >= 0, w < W]
        v = data[n, h, w, c]
        return te.if_then_else(te.all(*inside), v, E.const(0, data.dtype)) if inside else v

    return te.compute((N, H, ow, cp), fold, name=name, tag="injective")


__all__ = ["conv2d_NHWC_int8_gemm", "dense_int8_gemm", "fold_kernel_width", "folded_width", "gemm_rows",
           "GEMM_TAG"]
