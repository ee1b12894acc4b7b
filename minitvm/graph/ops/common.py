"""Helpers the op families share: numpy casts and accumulation dtypes, axis and layout checks,
output-extent arithmetic and the :func:`_op` registration decorator."""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from .registry import OpDef, register_op


def _contig(x):
    """``x`` as a C-contiguous array, keeping 0-d arrays 0-d (unlike np.ascontiguousarray)."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else x.copy(order="C")



def _positive(v):
    return None if v >= 1 else "must be positive"



_FLOAT_ACC = contextvars.ContextVar("minitvm_reference_float_accumulator", default=np.float64)


@contextlib.contextmanager
def float32_accumulation():
    """Inside the block the numpy references accumulate floats in float32, not float64: about
    twice as fast, for calibration, whose statistics need no more (integers stay exact)."""
    token = _FLOAT_ACC.set(np.float32)
    try:
        yield
    finally:
        _FLOAT_ACC.reset(token)


def _acc(dtype) -> type:
    """Accumulation dtype of the numpy references: float64 for floats (float32 inside
    :func:`float32_accumulation`), int64 for integers."""
    return _FLOAT_ACC.get() if np.dtype(dtype).kind in "fc" else np.int64


def _cast(x, dtype):
    """``x`` as a contiguous ``dtype`` array (float -> int rounds half to even first)."""
    dt = np.dtype(dtype)
    x = np.asarray(x)
    if dt.kind in "iu" and x.dtype.kind == "f":
        x = np.rint(x)
    return _contig(x.astype(dt, copy=False))


def _canon_axis(ctx, attr, axis, ndim):
    if not -ndim <= axis < ndim:
        raise ctx.attr_error(attr, f"= {axis} is out of range for a {ndim}-D input")
    return axis % ndim


def _same_dtype(ctx, types, names):
    d0 = types[0].dtype
    for t, n in zip(types[1:], names[1:]):
        if t.dtype != d0:
            raise ctx.dtype_error(f"input {n} is {t.dtype} but {names[0]} is {d0}; insert a cast")


def _check_layout(ctx, t, expected, what):
    if t.layout and t.layout != expected:
        raise ctx.shape_error(f"{what} has layout {t.layout}, this op expects {expected} "
                              "(insert a layout_transform)")


def _out_layout(layout, default):
    return "" if layout == default else layout


def _conv_out(ctx, n, k, s, d, p0, p1, axis):
    extent = (k - 1) * d + 1
    out = (n + p0 + p1 - extent) // s + 1
    if out < 1:
        raise ctx.shape_error(f"the kernel (extent {extent} along {axis}, dilation {d}) does not fit the padded "
                              f"input ({n} + {p0 + p1} along {axis})")
    return out


def _pool_out(ctx, n, k, s, p0, p1, ceil, axis):
    num = n + p0 + p1 - k
    if num < 0:
        raise ctx.shape_error(f"the pooling window ({k}) is larger than the padded input ({n} + {p0 + p1}) "
                              f"along {axis}")
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= n + p0:
        out -= 1  # the last window would start in the bottom/right padding (PyTorch/ONNX rule)
    return out


def _op(name, inputs, attrs, doc=""):
    """Decorator registering ``infer`` and returning a decorator for ``compute``."""
    def deco(infer):
        def with_compute(compute, macs=None):
            register_op(OpDef(name, tuple(inputs), tuple(attrs), infer, compute, macs, doc))
            return compute
        infer.compute = with_compute
        return infer
    return deco



def _bcast_shape(ndim, axis, n):
    s = [1] * ndim
    s[axis] = n
    return s


def _float_only(ctx, t):
    if np.dtype(t.dtype).kind != "f":
        raise ctx.dtype_error(f"needs a floating-point input, got {t.dtype}")

