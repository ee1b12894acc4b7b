"""Lower ``if_then_else`` to ``Select`` whose untaken reads are redirected to element 0.

``if_then_else(in_bounds, A[i - 1], 0)`` (padding) must not read out of bounds when the
condition is false. Instead of branching, each read inside a branch gets the index
``select(cond, i, 0)``: always valid, free of control flow, and vectorizable.
"""
from __future__ import annotations

from .. import expr as E
from ...errors import LimitError
from ..functor import Mutator
from ..limits import MAX_NODES, check_tree

_HINT = "use te.select where both branches read in bounds, or fewer nested if_then_else"


class _LowerIfThenElse(Mutator):
    """One walk from the top: each read is guarded by the conditions of the ``if_then_else``
    branches around it (innermost nearest the index), each condition itself lowered under the
    branches around it. (Guarding each branch after lowering the ones inside it walked every
    subtree once per enclosing level.)"""

    def __init__(self):
        self.guards = ()   # (condition, taken) of the enclosing branches, outermost first
        self.made = 0      # guards made so far: reads times the branches around them

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
        self.made += len(self.guards)
        if self.made > MAX_NODES:
            raise LimitError(f"if_then_else lowering: more than {MAX_NODES} read guards (every read "
                             f"is guarded by each if_then_else around it); {_HINT}")
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
        check_tree(out, "if_then_else lowering", _HINT)
    return out
