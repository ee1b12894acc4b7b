"""Data movement with static shapes: :func:`take` (ONNX Gather), :func:`broadcast_to` (Expand),
:func:`interpolate` (one axis of Resize),
:func:`tile` and :func:`pad_mode` (Pad's ``edge`` and ``reflect`` modes). Each is one injective
``te.compute`` (tags ``injective,take`` ...), so the injective schedules fuse it.
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import DtypeError, ShapeError
from ...tir import expr as E
from .layout import _const

__all__ = ["take", "broadcast_to", "tile", "pad_mode", "interpolate"]


def _static(x, name):
    shape = [_const(d) for d in x.shape]
    if None in shape:
        raise ShapeError(f"{name}: {x.name} has a symbolic shape {x.shape}; this op needs static shapes")
    return shape


def take(data, indices, axis: int = 0, name: str = "take"):
    """``data`` gathered along ``axis`` at ``indices`` (an integer tensor; the output's shape is
    ``data.shape[:axis] + indices.shape + data.shape[axis + 1:]``). Negative indices count from the
    end; an index still outside ``[0, n)`` is clamped into it, so no read leaves ``data`` (ONNX
    leaves such an index undefined; a constant one is refused at import)."""
    shape = _static(data, name)
    if not -len(shape) <= axis < len(shape):
        raise ShapeError(f"{name}: axis {axis} is out of range for {data.name} with {len(shape)} dimensions")
    axis %= len(shape)
    if not dt.is_integer(indices.dtype):
        raise DtypeError(f"{name}: indices {indices.name} must be integers, got {indices.dtype}")
    n = shape[axis]
    idt = indices.dtype
    out_shape = tuple(data.shape[:axis]) + tuple(indices.shape) + tuple(data.shape[axis + 1:])
    k = indices.ndim

    def f(*i):
        j = indices(*i[axis:axis + k]) if k else indices()
        if not dt.is_uint(idt):
            j = te.select(j < E.const(0, idt), j + E.const(n, idt), j)
            j = te.max(j, E.const(0, idt))
        j = te.min(j, E.const(n - 1, idt)).astype("int32")   # clamped into [0, n), so it fits
        return data(*i[:axis], j, *i[axis + k:])

    return te.compute(out_shape, f, name=name, tag="injective,take", attrs={"axis": axis})


def broadcast_to(x, shape, name: str = "broadcast_to"):
    """``x`` broadcast to ``shape`` (numpy rules: ``x``'s axes align at the right, extent 1 stretches)."""
    src = _static(x, name)
    shape = tuple(int(s) for s in shape)
    off = len(shape) - len(src)
    if off < 0 or any(s not in (1, t) for s, t in zip(src, shape[off:])):
        raise ShapeError(f"{name}: {x.name} {tuple(src)} does not broadcast to {shape}")

    def f(*i):
        return x(*[E.const(0) if s == 1 and t != 1 else i[off + k] for k, (s, t) in enumerate(zip(src, shape[off:]))])

    return te.compute(shape, f, name=name, tag="injective,broadcast_to")


def tile(x, reps, name: str = "tile"):
    """``x`` repeated ``reps[k]`` times along each axis ``k`` (numpy.tile with one rep per axis)."""
    src = _static(x, name)
    reps = [int(r) for r in reps]
    if len(reps) != len(src) or any(r < 1 for r in reps):
        raise ShapeError(f"{name}: reps {reps} must give one positive count per axis of {x.name} {tuple(src)}")
    return te.compute(tuple(s * r for s, r in zip(src, reps)),
                      lambda *i: x(*[v % s if r > 1 else v for v, s, r in zip(i, src, reps)]),
                      name=name, tag="injective,tile")


def pad_mode(x, before, after, mode: str, name: str = "pad"):
    """``x`` padded by ``before`` / ``after`` per axis, the border copied (``edge``), mirrored
    without repeating the edge (``reflect``; each pad smaller than its axis) or wrapped around
    (``wrap``: the axis repeats periodically)."""
    src = _static(x, name)
    if mode not in ("edge", "reflect", "wrap"):
        raise ShapeError(f"{name}: mode {mode!r} is not edge, reflect or wrap")
    if len(before) != len(src) or len(after) != len(src):
        raise ShapeError(f"{name}: pads {list(before)}, {list(after)} must give one value per axis of {x.name}")
    if mode == "reflect" and any(b >= s or a >= s for b, a, s in zip(before, after, src)):
        raise ShapeError(f"{name}: reflect pads {list(before)}, {list(after)} must be smaller than {tuple(src)}")

    def index(v, b, s):
        if not b and s == 1:
            return E.const(0)
        j = v - b if b else v
        if mode == "wrap":
            return te.floormod(j + E.const(s * (-(-b // s))), E.const(s))   # shifted to stay non-negative
        if mode == "edge":
            return te.min(te.max(j, E.const(0)), E.const(s - 1))
        j = te.abs(j)                                   # before the start: mirror about 0
        return E.const(s - 1) - te.abs(j - E.const(s - 1))   # after the end: mirror about s - 1

    out = tuple(s + b + a for s, b, a in zip(src, before, after))
    return te.compute(out, lambda *i: x(*[index(v, b, s) if (b or a) else v for v, b, a, s in
                                          zip(i, before, after, src)]),
                      name=name, tag="injective,pad")


def interpolate(data, indices, weights, offset=None, axis: int = 0, name: str = "interpolate"):
    """Resampling along ``axis``: ``out[.., y, ..] = sum_t weights[y, t] * data[.., indices[y, t], ..]
    (+ offset[y])``, the taps unrolled (``indices`` int32 and ``weights`` float32 of shape
    ``[out_extent, taps]``, static; the weights of every resize mode are data independent, so they
    are made at import). Float data keeps its dtype (float16 accumulates in float32); integer data
    accumulates in float32 and is rounded half to even and saturated, as ONNX Resize does."""
    shape = _static(data, name)
    axis %= len(shape)
    n_out, taps = (int(_const(d)) for d in weights.shape)
    acc = "float32" if not dt.is_float(data.dtype) or dt.bits(data.dtype) < 32 else data.dtype

    def f(*i):
        y = i[axis]
        total = offset(y).astype(acc) if offset is not None else None
        for t in range(taps):
            v = data(*i[:axis], indices[y, t], *i[axis + 1:]).astype(acc) * weights[y, t].astype(acc)
            total = v if total is None else total + v
        if dt.is_float(data.dtype):
            return total.astype(data.dtype)
        lo, hi = dt.value_range(data.dtype)
        return te.min(te.max(te.round(total), E.const(float(lo), acc)), E.const(float(hi), acc)).astype(data.dtype)

    out = list(data.shape)
    out[axis] = n_out
    return te.compute(tuple(out), f, name=name, tag="injective,interpolate", attrs={"axis": axis})
