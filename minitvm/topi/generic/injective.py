"""Target-independent scheduling of injective (element-wise, broadcast, layout, pad) producers:
inlining them into the ops that read them."""
from __future__ import annotations

from ...tensor import ComputeOp


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


__all__ = ["inline_injective"]
