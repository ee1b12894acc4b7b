"""Softmax and log-softmax along one axis (float dtypes; max-subtracted for stability).

``softmax(x)[.., j, ..] = exp(x_j - m) / sum_k exp(x_k - m)`` and
``log_softmax(x) = x_j - m - log(sum_k exp(x_k - m))`` with ``m = max_k x_k``.

Stages and tags (what ``topi.cuda.reduction.schedule_softmax`` keys on): ``*_max``
(``softmax_maxelem``, reduction over ``axis``), ``*_exp`` (``softmax_exp``, element-wise,
softmax only), ``*_expsum`` (``softmax_expsum``, reduction) and the output
(``softmax_output`` / ``log_softmax_output``, with ``attrs["axis"]``). The reductions'
tensors have ``x``'s shape without ``axis``.
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import DtypeError, ShapeError


def _prepare(x, axis, name):
    if not dt.is_float(x.dtype):
        raise DtypeError(f"{name}: {x.name} must be a float tensor, got {x.dtype}; dequantize or cast first")
    if x.ndim < 1:
        raise ShapeError(f"{name}: {x.name} must have at least one axis")
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"{name}: axis {axis} is out of range for {x.name} with {x.ndim} dimensions")
    axis %= x.ndim
    reduced_shape = tuple(s for k, s in enumerate(x.shape) if k != axis)
    if not reduced_shape:
        reduced_shape = (1,)
    return axis, reduced_shape


def _with_axis(idx, axis, value, ndim):
    """Full index of ``x`` from the reduced-tensor index ``idx`` and ``value`` on ``axis``."""
    idx = list(idx) if ndim > 1 else []
    return idx[:axis] + [value] + idx[axis:]


def _drop(idx, axis, ndim):
    rest = [i for k, i in enumerate(idx) if k != axis]
    return rest if ndim > 1 else [0]


def _max_and_sum(x, axis, reduced_shape, name, keep_exp):
    ndim = x.ndim
    k1 = te.reduce_axis((0, x.shape[axis]), "k1")
    mx = te.compute(reduced_shape, lambda *i: te.max(x(*_with_axis(i, axis, k1, ndim)), axis=k1),
                    name=f"{name}_max", tag="softmax_maxelem")
    if keep_exp:
        ex = te.compute(x.shape, lambda *i: te.exp(x(*i) - mx(*_drop(i, axis, ndim))), name=f"{name}_exp",
                        tag="softmax_exp")
        k2 = te.reduce_axis((0, x.shape[axis]), "k2")
        sm = te.compute(reduced_shape, lambda *i: te.sum(ex(*_with_axis(i, axis, k2, ndim)), axis=k2),
                        name=f"{name}_expsum", tag="softmax_expsum")
        return mx, ex, sm
    k2 = te.reduce_axis((0, x.shape[axis]), "k2")
    sm = te.compute(reduced_shape,
                    lambda *i: te.sum(te.exp(x(*_with_axis(i, axis, k2, ndim)) - mx(*i)), axis=k2),
                    name=f"{name}_expsum", tag="softmax_expsum")
    return mx, None, sm


def softmax(x, axis=-1, name="softmax"):
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (default: the last); float dtypes."""
    axis, reduced = _prepare(x, axis, name)
    _, ex, sm = _max_and_sum(x, axis, reduced, name, keep_exp=True)
    ndim = x.ndim
    return te.compute(x.shape, lambda *i: ex(*i) / sm(*_drop(i, axis, ndim)), name=name, tag="softmax_output",
                      attrs={"axis": axis})


def log_softmax(x, axis=-1, name="log_softmax"):
    """``x - max - log(sum(exp(x - max)))`` along ``axis`` (default: the last); float dtypes."""
    axis, reduced = _prepare(x, axis, name)
    mx, _, sm = _max_and_sum(x, axis, reduced, name, keep_exp=False)
    ndim = x.ndim

    def f(*i):
        r = _drop(i, axis, ndim)
        return x(*i) - mx(*r) - te.log(sm(*r))

    return te.compute(x.shape, f, name=name, tag="log_softmax_output", attrs={"axis": axis})


__all__ = ["softmax", "log_softmax"]
