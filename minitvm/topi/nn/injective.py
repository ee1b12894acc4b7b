"""Injective operators: broadcasting arithmetic, casts, shape manipulation, per-channel affine.

Every op here is one ``te.compute`` without reduction whose tag starts with ``injective,``
(``injective,broadcast``, ``injective,elemwise``, ``injective,reshape``,
``injective,concatenate``, ``injective,transpose``, ``injective,strided_slice``,
``injective,bias_add``, ``injective,batch_norm``, ``injective,scale_shift``), so the conv /
dense / pool schedules inline them as epilogues and ``schedule_injective`` fuses chains of them
into one kernel.

Binary ops follow numpy broadcasting (shapes aligned at the right, extent-1 axes stretched;
either side may also be a Python number, which takes the tensor's dtype). Both tensors must
have one dtype: widening is explicit (:func:`cast`), as everywhere in minitvm.
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import DtypeError, ShapeError
from ...tensor import Tensor
from ...tir import expr as E
from .layout import _const


def _shape_str(t) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _same_dim(a, b) -> bool:
    ca, cb = _const(a), _const(b)
    if ca is not None and cb is not None:
        return ca == cb
    return a is b or str(a) == str(b)


def broadcast_shape(a, b, name: str = "broadcast") -> tuple:
    """The numpy broadcast of the shapes of tensors ``a`` and ``b``; ShapeError if incompatible."""
    sa, sb = list(a.shape), list(b.shape)
    n = max(len(sa), len(sb))
    sa = [None] * (n - len(sa)) + sa
    sb = [None] * (n - len(sb)) + sb
    out = []
    for axis, (x, y) in enumerate(zip(sa, sb)):
        if x is None:
            out.append(y)
        elif y is None:
            out.append(x)
        elif _const(x) == 1:
            out.append(y)
        elif _const(y) == 1 or _same_dim(x, y):
            out.append(x)
        else:
            raise ShapeError(f"{name}: cannot broadcast {a.name} {_shape_str(a)} with {b.name} {_shape_str(b)}: "
                             f"axis {axis} of the result has extents {x} and {y}")
    return tuple(out)


def _bcast_index(t, out_shape, idx):
    """Indices into ``t`` for output indices ``idx`` (right-aligned, extent-1 axes read at 0)."""
    off = len(out_shape) - t.ndim
    src = []
    for k, s in enumerate(t.shape):
        o = out_shape[off + k]
        if _const(s) == 1 and _const(o) != 1:
            src.append(E.const(0))
        else:
            src.append(idx[off + k])
    return src


def _binary(a, b, fop, opname, name):
    a_t, b_t = isinstance(a, Tensor), isinstance(b, Tensor)
    if not a_t and not b_t:
        raise ShapeError(f"{name}: at least one operand must be a tensor, got {a!r} and {b!r}")
    if a_t and b_t:
        if a.dtype != b.dtype:
            raise DtypeError(f"{name}: {a.name} is {a.dtype} but {b.name} is {b.dtype}; cast one side "
                             f"(topi.nn.injective.cast) so the dtypes match")
        shape = broadcast_shape(a, b, name)
        return te.compute(shape, lambda *i: fop(a(*_bcast_index(a, shape, i)), b(*_bcast_index(b, shape, i))),
                          name=name, tag=f"injective,broadcast,{opname}")
    t, c = (a, b) if a_t else (b, a)
    if isinstance(c, E.PrimExpr):
        if c.dtype != t.dtype:
            raise DtypeError(f"{name}: scalar {c} is {c.dtype} but {t.name} is {t.dtype}")
        cval = c
    else:
        try:
            cval = E._literal_for(c, t.dtype)
        except DtypeError as err:
            raise DtypeError(f"{name}: scalar {c!r} does not fit {t.name}'s dtype {t.dtype}: {err}") from None

    def f(*i):
        return fop(t(*i), cval) if a_t else fop(cval, t(*i))

    return te.compute(t.shape, f, name=name, tag=f"injective,elemwise,{opname}")


def add(a, b, name="add"):
    """``a + b`` with numpy broadcasting (tensors of one dtype, or a tensor and a number)."""
    return _binary(a, b, lambda x, y: x + y, "add", name)


def subtract(a, b, name="subtract"):
    """``a - b`` with numpy broadcasting."""
    return _binary(a, b, lambda x, y: x - y, "subtract", name)


def multiply(a, b, name="multiply"):
    """``a * b`` with numpy broadcasting (integers wrap in their dtype)."""
    return _binary(a, b, lambda x, y: x * y, "multiply", name)


def maximum(a, b, name="maximum"):
    """Element-wise ``max(a, b)`` with numpy broadcasting."""
    return _binary(a, b, te.max, "maximum", name)


def minimum(a, b, name="minimum"):
    """Element-wise ``min(a, b)`` with numpy broadcasting."""
    return _binary(a, b, te.min, "minimum", name)


def clip(x, lo, hi, name="clip"):
    """``min(max(x, lo), hi)``; ``lo`` and ``hi`` are numbers that must fit ``x``'s dtype."""
    if lo > hi:
        raise ShapeError(f"{name}: lower bound {lo} exceeds upper bound {hi}")
    try:
        lo_c, hi_c = E._literal_for(lo, x.dtype), E._literal_for(hi, x.dtype)
    except DtypeError as err:
        raise DtypeError(f"{name}: bounds ({lo}, {hi}) do not fit {x.name}'s dtype {x.dtype}: {err}") from None
    return te.compute(x.shape, lambda *i: te.min(te.max(x(*i), lo_c), hi_c), name=name, tag="injective,elemwise,clip",
                      attrs={"a_min": lo, "a_max": hi})


def cast(x, dtype, name="cast"):
    """``x`` converted to ``dtype`` (float -> int truncates toward zero; int -> narrower int wraps)."""
    try:
        dtype = dt.canonical(dtype)
    except Exception as err:  # noqa: BLE001
        raise DtypeError(f"{name}: cannot cast {x.name} to {dtype!r}: {err}") from None
    return te.compute(x.shape, lambda *i: x(*i).astype(dtype), name=name, tag="injective,elemwise,cast")


def _static_shape(x, name):
    out = []
    for axis, s in enumerate(x.shape):
        c = _const(s)
        if c is None:
            raise ShapeError(f"{name}: {x.name} axis {axis} has symbolic extent {s}; this op needs static shapes")
        out.append(c)
    return out


def _prod(xs):
    p = 1
    for v in xs:
        p *= v
    return p


def _unravel(flat, shape):
    idx = []
    for s in reversed(shape):
        idx.append(flat % s if s != 1 else E.const(0))
        flat = flat // s if s != 1 else flat
    return list(reversed(idx))


def reshape(x, newshape, name="reshape"):
    """``x`` viewed with ``newshape`` in row-major order; one entry may be ``-1`` (inferred)."""
    shape = _static_shape(x, name)
    total = _prod(shape)
    newshape = [int(s) for s in (newshape if isinstance(newshape, (list, tuple)) else [newshape])]
    if newshape.count(-1) > 1:
        raise ShapeError(f"{name}: at most one -1 in newshape {tuple(newshape)}")
    if any(s == 0 or s < -1 for s in newshape):
        raise ShapeError(f"{name}: newshape {tuple(newshape)} must hold positive extents (or one -1)")
    if -1 in newshape:
        known = _prod(s for s in newshape if s != -1)
        if total % known:
            raise ShapeError(f"{name}: cannot reshape {x.name} {tuple(shape)} ({total} elements) to "
                             f"{tuple(newshape)}")
        newshape[newshape.index(-1)] = total // known
    if _prod(newshape) != total:
        raise ShapeError(f"{name}: cannot reshape {x.name} {tuple(shape)} ({total} elements) to {tuple(newshape)} "
                         f"({_prod(newshape)} elements)")
    if newshape == shape:
        return te.compute(tuple(newshape), lambda *i: x(*i), name=name, tag="injective,reshape",
                          attrs={"newshape": tuple(newshape)})

    def f(*i):
        flat = E.const(0)
        for k, s in zip(i, newshape):
            flat = flat * s + k
        return x(*_unravel(flat, shape))

    return te.compute(tuple(newshape), f, name=name, tag="injective,reshape", attrs={"newshape": tuple(newshape)})


def flatten(x, name="flatten"):
    """``(N, d1, d2, ...)`` -> ``(N, d1 * d2 * ...)`` (the batch axis may be symbolic if it is the only one)."""
    if x.ndim < 1:
        raise ShapeError(f"{name}: {x.name} must have at least one axis")
    rest = _static_shape_tail(x, name)
    cols = _prod(rest)

    def f(n, j):
        return x(n, *_unravel(j, rest))

    return te.compute((x.shape[0], cols), f, name=name, tag="injective,reshape,flatten")


def _static_shape_tail(x, name):
    out = []
    for axis, s in enumerate(x.shape[1:], start=1):
        c = _const(s)
        if c is None:
            raise ShapeError(f"{name}: {x.name} axis {axis} has symbolic extent {s}; flatten needs static extents "
                             "after the batch axis")
        out.append(c)
    return out


def _norm_axis(axis, ndim, name, what="axis"):
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{name}: {what} {axis} is out of range for {ndim} dimensions")
    return axis % ndim


def concatenate(tensors, axis=0, name="concatenate"):
    """Join ``tensors`` (same dtype, same extents except along ``axis``) along ``axis`` (may be negative)."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError(f"{name}: needs at least one tensor")
    first = tensors[0]
    axis = _norm_axis(axis, first.ndim, name)
    sizes = []
    for t in tensors:
        if t.ndim != first.ndim:
            raise ShapeError(f"{name}: {t.name} has {t.ndim} dimensions, {first.name} has {first.ndim}")
        if t.dtype != first.dtype:
            raise DtypeError(f"{name}: {t.name} is {t.dtype} but {first.name} is {first.dtype}")
        for k in range(first.ndim):
            if k != axis and not _same_dim(t.shape[k], first.shape[k]):
                raise ShapeError(f"{name}: {t.name} {_shape_str(t)} and {first.name} {_shape_str(first)} differ on "
                                 f"axis {k} (only the concatenation axis {axis} may differ)")
        c = _const(t.shape[axis])
        if c is None:
            raise ShapeError(f"{name}: {t.name} has symbolic extent {t.shape[axis]} on the concatenation axis")
        sizes.append(c)
    offsets = [0]
    for s in sizes:
        offsets.append(offsets[-1] + s)
    shape = list(first.shape)
    shape[axis] = offsets[-1]

    def f(*i):
        def read(k):
            src = list(i)
            src[axis] = i[axis] - offsets[k] if offsets[k] else i[axis]
            return tensors[k](*src)
        out = read(len(tensors) - 1)
        for k in range(len(tensors) - 2, -1, -1):
            out = te.if_then_else(i[axis] < offsets[k + 1], read(k), out)
        return out

    return te.compute(tuple(shape), f, name=name, tag="injective,concatenate", attrs={"axis": axis})


def transpose(x, axes=None, name="transpose"):
    """Permute the axes of ``x``: output axis ``k`` is input axis ``axes[k]`` (default: reversed)."""
    axes = list(range(x.ndim))[::-1] if axes is None else [int(a) for a in axes]
    if len(axes) != x.ndim:
        raise ShapeError(f"{name}: axes {tuple(axes)} must list each of {x.name}'s {x.ndim} axes once")
    axes = [_norm_axis(a, x.ndim, name, "axes entry") for a in axes]
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"{name}: axes {tuple(axes)} is not a permutation of 0..{x.ndim - 1}")
    shape = tuple(x.shape[a] for a in axes)

    def f(*i):
        src = [None] * x.ndim
        for k, a in enumerate(axes):
            src[a] = i[k]
        return x(*src)

    return te.compute(shape, f, name=name, tag="injective,transpose", attrs={"axes": tuple(axes)})


def strided_slice(x, begin, end, strides=None, axes=None, name="strided_slice"):
    """``x[begin:end:strides]`` on ``axes`` (default: the leading ones), with Python slice rules.

    Negative indices count from the end, out-of-range bounds are clamped, strides may be
    negative; an empty result raises ShapeError.
    """
    shape = _static_shape(x, name)
    begin, end = list(begin), list(end)
    strides = [1] * len(begin) if strides is None else list(strides)
    axes = list(range(len(begin))) if axes is None else [_norm_axis(a, x.ndim, name, "axes entry") for a in axes]
    if not len(begin) == len(end) == len(strides) == len(axes):
        raise ShapeError(f"{name}: begin, end, strides and axes must have one entry per sliced axis, got "
                         f"{begin}, {end}, {strides}, {axes}")
    starts, steps, out_shape = [0] * x.ndim, [1] * x.ndim, list(shape)
    for b, e, st, a in zip(begin, end, strides, axes):
        if int(st) == 0:
            raise ShapeError(f"{name}: stride on axis {a} must not be 0")
        lo, hi, step = slice(b, e, int(st)).indices(shape[a])
        n = len(range(lo, hi, step))
        if n == 0:
            raise ShapeError(f"{name}: slice [{b}:{e}:{st}] of {x.name} axis {a} (extent {shape[a]}) is empty")
        starts[a], steps[a], out_shape[a] = lo, step, n

    def f(*i):
        return x(*[s + k * st if (s or st != 1) else k for k, s, st in zip(i, starts, steps)])

    return te.compute(tuple(out_shape), f, name=name, tag="injective,strided_slice",
                      attrs={"begin": tuple(starts), "strides": tuple(steps)})


def _channel_axes(x, params, axis, name):
    """Normalize ``axis`` (int or tuple) and check each 1-D/k-D parameter tensor matches ``x`` there."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    axes = [_norm_axis(a, x.ndim, name) for a in axes]
    for pname, p in params:
        if p.ndim != len(axes):
            raise ShapeError(f"{name}: {pname} {p.name} must have {len(axes)} dimension(s) (one per axis {tuple(axes)}"
                             f" of {x.name}), got {p.ndim}")
        for k, a in enumerate(axes):
            if not _same_dim(p.shape[k], x.shape[a]):
                raise ShapeError(f"{name}: {pname} {p.name} {_shape_str(p)} does not match {x.name} {_shape_str(x)} "
                                 f"on axis {a}")
        if p.dtype != x.dtype:
            raise DtypeError(f"{name}: {pname} {p.name} is {p.dtype} but {x.name} is {x.dtype}")
    return axes


def bias_add(x, bias, axis=1, name="bias_add"):
    """``x + bias`` broadcast along ``axis`` (1 for NCHW; a tuple such as ``(1, 4)`` with a
    2-D bias ``(C/x, x)`` for packed ``NCHW[x]c``)."""
    axes = _channel_axes(x, [("bias", bias)], axis, name)
    return te.compute(x.shape, lambda *i: x(*i) + bias(*[i[a] for a in axes]), name=name,
                      tag="injective,bias_add", attrs={"axis": tuple(axes)})


def scale_shift(x, scale, shift, axis=1, name="scale_shift"):
    """``x * scale + shift`` with per-channel ``scale``/``shift`` along ``axis`` (int or tuple, as bias_add)."""
    axes = _channel_axes(x, [("scale", scale), ("shift", shift)], axis, name)

    def f(*i):
        c = [i[a] for a in axes]
        return x(*i) * scale(*c) + shift(*c)

    return te.compute(x.shape, f, name=name, tag="injective,scale_shift", attrs={"axis": tuple(axes)})


def batch_norm_inference(x, gamma, beta, mean, var, eps=1e-5, axis=1, name="batch_norm"):
    """Inference batch norm ``(x - mean) / sqrt(var + eps) * gamma + beta`` per channel along ``axis``.

    For graphs where it cannot be folded into the preceding convolution. Float dtypes only;
    parameters are 1-D over ``x.shape[axis]`` (or k-D with a tuple ``axis``, as bias_add).
    """
    if not dt.is_float(x.dtype):
        raise DtypeError(f"{name}: {x.name} must be a float tensor, got {x.dtype}")
    axes = _channel_axes(x, [("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)], axis, name)
    eps_c = E.const(float(eps), x.dtype)

    def f(*i):
        c = [i[a] for a in axes]
        return (x(*i) - mean(*c)) * (gamma(*c) / te.sqrt(var(*c) + eps_c)) + beta(*c)

    return te.compute(x.shape, f, name=name, tag="injective,batch_norm", attrs={"axis": tuple(axes), "eps": eps})


__all__ = ["broadcast_shape", "add", "subtract", "multiply", "maximum", "minimum", "clip", "cast", "reshape",
           "flatten", "concatenate", "transpose", "strided_slice", "bias_add", "scale_shift", "batch_norm_inference"]
