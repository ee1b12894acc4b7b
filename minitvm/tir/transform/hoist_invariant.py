"""Hoist the loop-invariant part of integer index sums out of serial loops.

The im2col address of a pipelined tile copy is a sum such as
``n*100352 + oh*3584 + (k // 6)*3584 + ow*128 + (k % 3)*128 + c``. Its pixel terms (of the
thread and unrolled-copy indices) do not change over the reduction loop ``k``, but nvcc factors
``oh*3584 + (k // 6)*3584`` into ``(oh + k // 6) * 3584`` (the bounds check needs that sum too),
and then recomputes everything every iteration. This pass splits each sum inside a serial loop
into the terms that use no variable bound inside the loop and the rest, binds the first part
to a variable before the loop (``let`` shared by every sum with the same part), and leaves
``hoisted + rest``: what CUTLASS's precomputed iterators do by hand.

Only pure arithmetic moves (no loads, no calls): integer arithmetic is safe to evaluate even
when the loop runs zero times. Inside a kernel a thread index is the same everywhere, so it may
move above the attribute that binds it. A virtual thread's index never moves: a statement that
uses it is copied per virtual thread, and a let of it above a loop would copy the whole loop,
barriers and shared fills included. Constants stay in place, so that the backend can still fold
them into immediate offsets.
"""
from __future__ import annotations

import itertools

from .. import expr as E
from ..arith import INDEX_DTYPES, Analyzer, expr_key, linear_terms, sum_of_terms
from ..functor import Mutator, Visitor, collect_vars
from ..stmt import For, LetStmt
from .virtual_thread import is_vthread_attr

_PURE = (E.Var, E.IntImm, E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod, E.Min, E.Max, E.Cast)


class _Impure(Visitor):
    found = False

    def generic_visit(self, node):
        if not isinstance(node, _PURE):
            self.found = True
        elif not self.found:
            super().generic_visit(node)


def _pure(e) -> bool:
    v = _Impure()
    v.visit(e)
    return not v.found


def _trivial(terms) -> bool:
    """One variable, maybe scaled: nothing to save by hoisting it."""
    return len(terms) == 1 and isinstance(terms[0][0], E.Var)


class _BoundInside(Visitor):
    """Variables bound inside a statement: loop variables, lets (statements and expressions),
    and (outside a kernel) thread indices. Inside a kernel a thread index is the same
    everywhere, wherever its attribute is."""

    def __init__(self, in_kernel: bool):
        self.vars: set = set()
        self.in_kernel = in_kernel

    def visit_For(self, node):
        self.vars.add(node.loop_var)
        self.generic_visit(node)

    def visit_LetStmt(self, node):
        self.vars.add(node.var)
        self.generic_visit(node)

    def visit_Let(self, node):
        self.vars.add(node.var)
        self.generic_visit(node)

    def visit_AttrStmt(self, node):
        var = getattr(node.node, "var", None)      # a thread axis bound inside the loop
        # a virtual thread's variable is replaced within its attribute only
        if isinstance(var, E.Var) and (not self.in_kernel or is_vthread_attr(node)):
            self.vars.add(var)
        self.generic_visit(node)


class _Split(Mutator):
    """Rewrite the sums of one loop's body; collect the hoisted parts."""

    def __init__(self, inner: set, numbers):
        self.inner, self.numbers = inner, numbers     # numbers: the names inv0, inv1 ... of a function
        self.hoisted: dict = {}          # expr_key -> (var, value)
        self.analyzer = Analyzer()

    def _sum(self, node):
        if node.dtype not in INDEX_DTYPES:
            return self.generic_visit(node)
        terms, const = linear_terms(self.analyzer, node)
        moves = [not (collect_vars(a) & self.inner) and _pure(a) for a, _ in terms]
        outer = [t for t, m in zip(terms, moves) if m]
        if not outer or _trivial(outer):
            return self.generic_visit(node)
        inner = [(self.visit(a), c) for (a, c), m in zip(terms, moves) if not m]
        value = sum_of_terms(node.dtype, outer, 0)
        key = expr_key(value)
        if key not in self.hoisted:
            self.hoisted[key] = (E.Var(f"inv{next(self.numbers)}", node.dtype), value)
        var = self.hoisted[key][0]
        rest = sum_of_terms(node.dtype, inner, const)
        return var if E.is_const_int(rest, 0) else E.Add(var, rest)

    visit_Add = _sum
    visit_Sub = _sum


class _VirtualThreads(Visitor):
    def __init__(self):
        self.vars: set = set()

    def visit_AttrStmt(self, node):
        if is_vthread_attr(node) and isinstance(getattr(node.node, "var", None), E.Var):
            self.vars.add(node.node.var)
        self.generic_visit(node)

    def generic_visit(self, node):
        if not isinstance(node, E.PrimExpr):
            super().generic_visit(node)


class _Hoist(Mutator):
    def __init__(self, vthread_vars: set):
        self.numbers = itertools.count()
        self.kernel_depth = 0
        self.vthread_vars = vthread_vars

    def visit_AttrStmt(self, node):
        if node.attr_key != "thread_extent" or is_vthread_attr(node):
            return self.generic_visit(node)
        self.kernel_depth += 1
        out = self.generic_visit(node)
        self.kernel_depth -= 1
        return out

    def visit_For(self, node):
        # outer loops first: a term invariant in both loops leaves both at once
        if node.kind != "serial" or E.is_const_int(node.extent, 1):
            return self.generic_visit(node)
        bound = _BoundInside(self.kernel_depth > 0)
        bound.visit(node.body)
        split = _Split(bound.vars | self.vthread_vars | {node.loop_var}, self.numbers)
        body = self.visit(split.visit(node.body))
        if body is node.body:
            return node
        out = For(node.loop_var, node.min, node.extent, node.kind, body)
        for var, value in reversed(list(split.hoisted.values())):
            out = LetStmt(var, value, out)
        return out


def hoist_invariant_terms(stmt):
    """Bind the loop-invariant part of each index sum in a serial loop to a variable before it."""
    vthreads = _VirtualThreads()
    vthreads.visit(stmt)
    return _Hoist(vthreads.vars).visit(stmt)


__all__ = ["hoist_invariant_terms"]
