"""Lower ``if_then_else`` to ``Select`` whose untaken reads are redirected to element 0.

``if_then_else(in_bounds, A[i - 1], 0)`` (padding) must not read out of bounds when the
condition is false. Instead of branching, each read inside a branch gets the index
``select(cond, i, 0)``: always valid, free of control flow, and vectorizable.
"""
from __future__ import annotations

from .. import expr as E
from ..functor import Mutator
from ..limits import check_tree


class _LowerIfThenElse(Mutator):
    """One walk from the top: each read is guarded by the conditions of the ``if_then_else``
    branches around it (innermost nearest the index), each condition itself lowered under the
    branches around it. (Guarding each branch after lowering the ones inside it walked every
    subtree once per enclosing level.)"""

    def __init__(self):
        self.guards = ()   # (condition, taken) of the enclosing branches, outermost first

    def visit_Call(self, node):
        if node.op != "if_then_else":
            return self.generic_visit(node)
        outer = self.guards
        cond = self.visit(node.args[0])
        self.guards = outer + ((cond, True),)
        t = self.visit(node.args[1])
        self.guards = outer + ((cond, False),)
        f = self.visit(node.args[2])
        self.guards = outer
        return E.Select(cond, t, f)

    def visit_BufferLoad(self, node):
        node = self.generic_visit(node)
        if not self.guards:
            return node
        idx = node.indices[0]
        zero = E.const(0, idx.dtype)
        for cond, taken in reversed(self.guards):
            idx = E.Select(cond, idx, zero) if taken else E.Select(cond, zero, idx)
        return E.BufferLoad(node.buffer, (idx,) + node.indices[1:])


def lower_if_then_else(stmt):
    """Replace every ``if_then_else`` call by a ``Select`` with guarded reads.

    Nested ``if_then_else`` whose conditions read memory guard every read below them with
    every condition above, so the expression written out as a tree can grow exponentially
    with the nesting: past :data:`~minitvm.tir.limits.MAX_NODES` it is refused."""
    out = _LowerIfThenElse().visit(stmt)
    if out is not stmt:
        check_tree(out, "if_then_else lowering",
                   "nested if_then_else whose conditions read tensors guard every read with every "
                   "enclosing condition; use te.select where both branches read in bounds")
    return out
