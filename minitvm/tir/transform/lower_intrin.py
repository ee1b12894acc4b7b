"""Lower ``if_then_else`` to ``Select`` whose untaken reads are redirected to element 0.

``if_then_else(in_bounds, A[i - 1], 0)`` (padding) must not read out of bounds when the
condition is false. Instead of branching, each read inside a branch gets the index
``select(cond, i, 0)``: always valid, free of control flow, and vectorizable.
"""
from __future__ import annotations

from .. import expr as E
from ..functor import Mutator


class _SafeLoads(Mutator):
    def __init__(self, cond, taken):
        self.cond, self.taken = cond, taken

    def visit_BufferLoad(self, node):
        idx = tuple(self.visit(i) for i in node.indices)
        zero = E.const(0, idx[0].dtype)
        safe = E.Select(self.cond, idx[0], zero) if self.taken else E.Select(self.cond, zero, idx[0])
        return E.BufferLoad(node.buffer, (safe,) + idx[1:])


class _LowerIfThenElse(Mutator):
    def visit_Call(self, node):
        node = self.generic_visit(node)
        if node.op != "if_then_else":
            return node
        cond, t, f = node.args
        return E.Select(cond, _SafeLoads(cond, True).visit(t), _SafeLoads(cond, False).visit(f))


def lower_if_then_else(stmt):
    """Replace every ``if_then_else`` call by a ``Select`` with guarded reads."""
    return _LowerIfThenElse().visit(stmt)
