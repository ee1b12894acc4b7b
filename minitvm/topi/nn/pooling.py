"""2-D pooling computes: windowed ``max_pool2d`` / ``avg_pool2d`` and the global pools.

Layouts: any layout string whose ``H`` and ``W`` are primal, unsplit axes — ``NCHW``, the
packed ``NCHW[x]c`` family (``NCHW4c``, ``NCHW16c``, ...) and ``NHWC`` alike. Pooling never
mixes channels, so a packed tensor is pooled exactly like its unpacked form.

Semantics follow PyTorch (``torch.nn.functional.max_pool2d`` / ``avg_pool2d``):

* ``padding`` is ``(top, left, bottom, right)`` (or ``p`` / ``(ph, pw)``).
* ``ceil_mode``: the output size rounds up, ``ceil((H + pt + pb - k) / s) + 1``, but a
  last window that would start in the bottom/right padding (or beyond) is dropped. The
  implicit extension past the explicit padding is padded the same way as the padding.
* max pool: padding (and the ceil-mode extension) holds the dtype's minimum value
  (``-3.4e38`` for float32, ``-128`` for int8), so it never wins; int8 stays int8.
* avg pool: the window sum divided by the window size. ``count_include_pad=True`` counts the
  explicit padding but never the ceil-mode extension past it (PyTorch's rule);
  ``count_include_pad=False`` counts only elements inside the image.
* int8/uint8 avg pool: the sum accumulates in int32; the quotient rounds half away from
  zero (``sign(s) * floor((2|s| + n) / 2n)``) and is cast back to the input dtype (an
  average of int8 values always fits int8). Float pools accumulate in their own dtype.
* global pools reduce all of H x W and keep them as extent-1 axes (``N, C, 1, 1`` or
  ``N, C/x, 1, 1, x``), with the same accumulation and rounding rules.

Stages and tags (schedules key on them; every pooling stage's tag starts with ``pool``):
``*_pad`` (``injective,pad``, padding of the input; absent without padding),
``pool_max`` (reduction, the output of max pools), ``pool_sum`` (reduction) followed by
``pool_avg`` (element-wise division, the output of avg pools), and for the global pools
``pool_global_max``, ``pool_global_sum`` and ``pool_global_avg``. Output ops carry
``attrs`` (``pool_size``, ``strides``, ``padding``, ``layout`` ...).
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .conv2d import normalize_padding, pad
from .layout import Layout, _const

_INT_TYPES = ("int8", "uint8", "int16", "int32")


def _hw_axes(data, layout: str, name: str) -> tuple:
    """Positions of the H and W axes of ``data`` in ``layout`` (checked against its rank)."""
    try:
        lay = Layout.parse(layout)
    except ShapeError as err:
        raise ShapeError(f"{name}: bad layout for {data.name}: {err}") from None
    if len(lay.axes) != data.ndim:
        raise ShapeError(f"{name}: layout {layout} has {len(lay.axes)} dimensions but {data.name} has "
                         f"{data.ndim} (shape {tuple(str(s) for s in data.shape)})")
    for a in ("H", "W"):
        if a not in lay.primal:
            raise ShapeError(f"{name}: layout {layout} has no {a} axis")
        if lay.factor(a) != 1:
            raise ShapeError(f"{name}: layout {layout} splits the {a} axis; pooling needs H and W unsplit")
    hi = [i for i, (a, f) in enumerate(lay.axes) if a == "H" and f == 0][0]
    wi = [i for i, (a, f) in enumerate(lay.axes) if a == "W" and f == 0][0]
    return hi, wi


def _pair(v, what, name, minimum=1):
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or any(int(x) < minimum for x in v):
        raise ShapeError(f"{name}: {what} must be an int >= {minimum} or a pair of them, got {v}")
    return int(v[0]), int(v[1])


def _static(data, axis, name, what):
    n = _const(data.shape[axis])
    if n is None:
        raise ShapeError(f"{name}: the {what} axis of {data.name} must have a static extent, got {data.shape[axis]}")
    return n


def _check_dtype(data, name):
    if not (dt.is_float(data.dtype) or data.dtype in _INT_TYPES):
        raise DtypeError(f"{name}: {data.name} has dtype {data.dtype}; pooling supports float and "
                         f"{'/'.join(_INT_TYPES)} tensors")


def _out_extent(n, k, s, p0, p1, ceil_mode, name, axis):
    """(output extent, extra padding after p1 needed by the last window) of one spatial axis."""
    span = n + p0 + p1 - k
    if span < 0:
        raise ShapeError(f"{name}: the pooling window ({k}) is larger than the padded {axis} ({n} + {p0 + p1})")
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + p0:   # the last window would start in the padding: PyTorch drops it
            out -= 1
    else:
        out = span // s + 1
    extra = max(0, (out - 1) * s + k - (n + p0 + p1))
    return out, extra


def _min_value(dtype):
    lo, _ = dt.value_range(dtype)
    return lo


def _acc_dtype(dtype):
    return dtype if dt.is_float(dtype) else "int32"


def _divide(total, count, out_dtype):
    """``total / count`` in ``out_dtype``: float division, or integer round-half-away-from-zero."""
    if dt.is_float(total.dtype):
        return (total / count.astype(total.dtype)).astype(out_dtype)
    count = count.astype(total.dtype)
    # sign(s) * floor((2|s| + n) / (2n)), n > 0
    two = E.const(2, total.dtype)
    mag = te.abs(total)
    q = (two * mag + count) // (two * count)
    return te.select(total < E.const(0, total.dtype), E.const(0, total.dtype) - q, q).astype(out_dtype)


def _pool_prologue(data, pool_size, strides, padding, ceil_mode, layout, name):
    _check_dtype(data, name)
    hi, wi = _hw_axes(data, layout, name)
    kh, kw = _pair(pool_size, "pool_size", name)
    sh, sw = _pair(strides, "strides", name)
    pt, pl, pb, pr = normalize_padding(padding, name)
    if pt >= kh or pb >= kh or pl >= kw or pr >= kw:
        raise ShapeError(f"{name}: padding {(pt, pl, pb, pr)} must be smaller than the pool size {(kh, kw)} "
                         "(a window could hold padding only)")
    H = _static(data, hi, name, "H")
    W = _static(data, wi, name, "W")
    OH, eh = _out_extent(H, kh, sh, pt, pb, ceil_mode, name, "height")
    OW, ew = _out_extent(W, kw, sw, pl, pr, ceil_mode, name, "width")
    return hi, wi, (kh, kw), (sh, sw), (pt, pl, pb, pr), (H, W), (OH, OW), (eh, ew)


def _padded(data, hi, wi, pads, extra, value, name):
    pt, pl, pb, pr = pads
    before = [0] * data.ndim
    after = [0] * data.ndim
    before[hi], before[wi] = pt, pl
    after[hi], after[wi] = pb + extra[0], pr + extra[1]
    return pad(data, before, after, value=value, name=f"{name}_pad")


def _out_shape(data, hi, wi, oh, ow):
    shape = list(data.shape)
    shape[hi], shape[wi] = oh, ow
    return tuple(shape)


def max_pool2d(data, pool_size, strides=1, padding=0, ceil_mode=False, layout="NCHW", name="max_pool2d"):
    """2-D max pooling of ``data`` in ``layout`` (``NCHW``, ``NCHW[x]c``, ``NHWC`` ...).

    ``pool_size`` and ``strides`` are ints or (h, w) pairs; ``padding`` is ``p``, ``(ph, pw)``
    or ``(top, left, bottom, right)``; padding holds the dtype's minimum value. ``ceil_mode``
    rounds the output size up (PyTorch's rule). int8 stays int8. Returns the ``pool_max``
    tensor (a reduction over the window).
    """
    hi, wi, (kh, kw), (sh, sw), pads, _, (OH, OW), extra = _pool_prologue(
        data, pool_size, strides, padding, ceil_mode, layout, name)
    padded = _padded(data, hi, wi, pads, extra, _min_value(data.dtype), name)
    ry = te.reduce_axis((0, kh), "ry")
    rx = te.reduce_axis((0, kw), "rx")

    def f(*idx):
        src = list(idx)
        src[hi] = idx[hi] * sh + ry
        src[wi] = idx[wi] * sw + rx
        return te.max(padded(*src), axis=[ry, rx])

    return te.compute(_out_shape(data, hi, wi, OH, OW), f, name=name, tag="pool_max",
                      attrs={"pool_size": (kh, kw), "strides": (sh, sw), "padding": pads, "ceil_mode": ceil_mode,
                             "layout": layout})


def avg_pool2d(data, pool_size, strides=1, padding=0, ceil_mode=False, count_include_pad=True, layout="NCHW",
               name="avg_pool2d"):
    """2-D average pooling of ``data`` in ``layout`` (``NCHW``, ``NCHW[x]c``, ``NHWC`` ...).

    Arguments as :func:`max_pool2d`. ``count_include_pad`` divides by the window including
    explicit padding (but not the ceil-mode extension), else by the in-image elements only.
    Float sums stay in the input dtype; int8/uint8 sums accumulate in int32, are divided with
    rounding half away from zero and cast back to the input dtype. Returns the ``pool_avg``
    tensor (element-wise division of the ``pool_sum`` reduction).
    """
    hi, wi, (kh, kw), (sh, sw), pads, (H, W), (OH, OW), extra = _pool_prologue(
        data, pool_size, strides, padding, ceil_mode, layout, name)
    pt, pl, pb, pr = pads
    acc = _acc_dtype(data.dtype)
    padded = _padded(data, hi, wi, pads, extra, 0, name)
    ry = te.reduce_axis((0, kh), "ry")
    rx = te.reduce_axis((0, kw), "rx")
    out_shape = _out_shape(data, hi, wi, OH, OW)

    def fsum(*idx):
        src = list(idx)
        src[hi] = idx[hi] * sh + ry
        src[wi] = idx[wi] * sw + rx
        return te.sum(padded(*src).astype(acc), axis=[ry, rx])

    total = te.compute(out_shape, fsum, name=f"{name}_sum", tag="pool_sum")

    def count_1d(o, s, k, p0, p1, n):
        start = o * s - p0
        if count_include_pad:
            end = te.min(start + k, E.const(n + p1, "int32"))
            start_c = start
        else:
            end = te.min(start + k, E.const(n, "int32"))
            start_c = te.max(start, E.const(0, "int32"))
        return end - start_c

    def fdiv(*idx):
        ch = count_1d(idx[hi], sh, kh, pt, pb, H)
        cw = count_1d(idx[wi], sw, kw, pl, pr, W)
        return _divide(total(*idx), ch * cw, data.dtype)

    return te.compute(out_shape, fdiv, name=name, tag="pool_avg",
                      attrs={"pool_size": (kh, kw), "strides": (sh, sw), "padding": pads, "ceil_mode": ceil_mode,
                             "count_include_pad": count_include_pad, "layout": layout})


def _global_prologue(data, layout, name):
    _check_dtype(data, name)
    hi, wi = _hw_axes(data, layout, name)
    H = _static(data, hi, name, "H")
    W = _static(data, wi, name, "W")
    return hi, wi, H, W


def global_max_pool2d(data, layout="NCHW", name="global_max_pool2d"):
    """Maximum over all of H x W; the result keeps H and W as extent-1 axes (dtype unchanged)."""
    hi, wi, H, W = _global_prologue(data, layout, name)
    ry = te.reduce_axis((0, H), "ry")
    rx = te.reduce_axis((0, W), "rx")

    def f(*idx):
        src = list(idx)
        src[hi], src[wi] = ry, rx
        return te.max(data(*src), axis=[ry, rx])

    return te.compute(_out_shape(data, hi, wi, 1, 1), f, name=name, tag="pool_global_max", attrs={"layout": layout})


def global_avg_pool2d(data, layout="NCHW", name="global_avg_pool2d"):
    """Mean over all of H x W; the result keeps H and W as extent-1 axes.

    Float data sums and divides in its own dtype; int8/uint8 data sums in int32 and divides
    by ``H * W`` rounding half away from zero, then casts back to the input dtype.
    """
    hi, wi, H, W = _global_prologue(data, layout, name)
    acc = _acc_dtype(data.dtype)
    ry = te.reduce_axis((0, H), "ry")
    rx = te.reduce_axis((0, W), "rx")
    out_shape = _out_shape(data, hi, wi, 1, 1)

    def fsum(*idx):
        src = list(idx)
        src[hi], src[wi] = ry, rx
        return te.sum(data(*src).astype(acc), axis=[ry, rx])

    total = te.compute(out_shape, fsum, name=f"{name}_sum", tag="pool_global_sum")
    count = E.const(H * W, "int32")
    return te.compute(out_shape, lambda *idx: _divide(total(*idx), count, data.dtype), name=name,
                      tag="pool_global_avg", attrs={"layout": layout})


__all__ = ["max_pool2d", "avg_pool2d", "global_max_pool2d", "global_avg_pool2d"]
