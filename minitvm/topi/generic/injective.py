"""Target-independent helpers for injective (element-wise, broadcast, layout, pad) producers:
what may be inlined, and inlining it into the ops that read it."""
from __future__ import annotations

from ...tensor import ComputeOp


def is_injective_op(op) -> bool:
    """A compute without a reduction (what may be inlined into its readers)."""
    return isinstance(op, ComputeOp) and not op.reduce_axis


def producers(outs) -> list:
    """Every compute op feeding ``outs`` (outputs included), consumers before producers."""
    order, seen = [], set()
    stack = [o.op for o in outs]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        order.append(op)
        if isinstance(op, ComputeOp):
            stack.extend(t.op for t in op.input_tensors)
    return [op for op in order if isinstance(op, ComputeOp)]


def inline_injective(s, outs, stop=()) -> list:
    """Inline every non-output injective op feeding ``outs`` (not looking past ops in ``stop``).

    Returns the ops with a reduction that were found (left for the caller to place).
    """
    out_ops = {o.op for o in outs}
    reductions = []
    seen, stack = set(), [o.op for o in outs]
    while stack:
        op = stack.pop()
        if op in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(op)
        if op in stop:
            continue
        if op.reduce_axis:
            reductions.append(op)
        elif op not in out_ops:
            s[op].compute_inline()
        stack.extend(t.op for t in op.input_tensors)
    return reductions


__all__ = ["inline_injective", "is_injective_op", "producers"]
