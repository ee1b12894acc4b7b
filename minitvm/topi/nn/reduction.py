"""Reductions over any axes, as ONNX's Reduce* ops define them.

:func:`reduce` computes one of :data:`KINDS` of ``x`` over ``axes`` (``keepdims``: the reduced
axes stay with extent 1). Sums accumulate in float32 for float16 input, in int32 for integers
narrower than 32 bits (the result wraps into the input's dtype, as a sum in that dtype would),
and in the input's dtype otherwise. ``mean`` of integers is the float64 mean truncated toward
zero; ``l2``, ``log_sum`` and ``log_sum_exp`` take the square root / logarithm in the
accumulation dtype (float64 for integers). ``log_sum_exp`` subtracts the maximum first.
``max`` / ``min`` of bool are ``or`` / ``and``.

Stages: the reductions are tagged ``reduce`` (their names end in ``_red``), the output
``reduce_output``; the CPU and CUDA reduce schedules compute every reduction per output block
(see ``topi.cpu.injective.schedule_reduce_per_output``).
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import ShapeError
from ...tir import expr as E
from .layout import _const

__all__ = ["KINDS", "reduce"]

#: the reductions :func:`reduce` computes
KINDS = ("sum", "mean", "max", "min", "prod", "sum_square", "l1", "l2", "log_sum", "log_sum_exp")

_prod = te.comm_reducer(lambda x, y: x * y, lambda t: 1, "prod")


def _acc_dtype(dtype: str, kind: str) -> str:
    if dt.is_float(dtype):
        return "float32" if dt.bits(dtype) < 32 else dtype
    if kind in ("mean", "l2", "log_sum", "log_sum_exp"):
        return "float64"
    return "int64" if dt.bits(dtype) == 64 else "int32"


def reduce(x, axes, keepdims: bool = True, kind: str = "sum", name: str = "reduce"):
    """``kind`` (one of :data:`KINDS`) of ``x`` over ``axes`` (ints, may be negative; all of ``x``'s
    axes reduce when empty)."""
    if kind not in KINDS:
        raise ShapeError(f"{name}: unknown reduction {kind!r}; one of {KINDS}")
    nd = x.ndim
    axes = sorted({a % nd for a in axes}) if axes else list(range(nd))
    if any(not -nd <= a < nd for a in (axes or [])):
        raise ShapeError(f"{name}: axes {axes} out of range for {nd} dimensions")
    extents = [_const(x.shape[a]) for a in axes]
    if None in extents or 0 in extents:
        raise ShapeError(f"{name}: the reduced axes {axes} of {x.name} {x.shape} must have static non-zero extents")
    count = 1
    for e in extents:
        count *= e
    kept = [a for a in range(nd) if a not in axes]
    out_shape = tuple(1 if a in axes else x.shape[a] for a in range(nd)) if keepdims else \
        tuple(x.shape[a] for a in kept)
    red_shape = out_shape    # the reductions index like the output (so schedules split them alike)
    acc = _acc_dtype(x.dtype, kind)
    is_bool = dt.is_bool(x.dtype)

    def full(idx, rvars):
        """x's index from an output index ``idx`` and the reduce variables."""
        idx = [idx[a] for a in kept] if keepdims else list(idx)
        it_k, it_r = iter(idx), iter(rvars)
        return [next(it_r) if a in axes else next(it_k) for a in range(nd)]

    def reduction(body, reducer, suffix, ref=None):
        """A reduction stage of ``body(x element)`` (``ref``: a stage read at the same kept index)."""
        rv = [te.reduce_axis((0, e), f"k{a}") for a, e in zip(axes, extents)]

        def f(*i):
            v = x(*full(i if red_shape else (), rv))
            return reducer(body(v) if ref is None else body(v, ref(*i)), axis=rv)
        return te.compute(red_shape or (1,), f, name=f"{name}_{suffix}_red", tag="reduce")

    def widen(v):
        return v.astype(acc)

    if kind in ("max", "min"):
        vdt = "int8" if is_bool else x.dtype   # bool: or / and as max / min of 0 and 1
        reds = [reduction(lambda v: v.astype(vdt), te.max if kind == "max" else te.min, kind)]
        finish = (lambda r: r.astype("bool")) if is_bool else (lambda r: r)
    elif kind == "log_sum_exp":
        mx = reduction(widen, te.max, "max")
        reds = [mx, reduction(lambda v, m: te.exp(widen(v) - m), te.sum, "expsum", ref=mx)]
    else:
        body = {"sum_square": lambda v: widen(v) * widen(v), "l2": lambda v: widen(v) * widen(v),
                "l1": lambda v: te.abs(widen(v))}.get(kind, widen)
        reds = [reduction(body, _prod if kind == "prod" else te.sum, kind)]
        finish = {"mean": lambda r: r / E.const(float(count), acc), "l2": te.sqrt, "log_sum": te.log}.get(
            kind, lambda r: r)

    def out(*i):
        ridx = list(i) if red_shape else [E.const(0)]
        if kind == "log_sum_exp":
            mx, sm = reds
            v = te.log(sm(*ridx)) + mx(*ridx)
        else:
            v = finish(reds[0](*ridx))
        return v if v.dtype == x.dtype else v.astype(x.dtype)

    return te.compute(out_shape, out, name=name, tag="reduce_output", attrs={"axes": tuple(axes), "kind": kind})
