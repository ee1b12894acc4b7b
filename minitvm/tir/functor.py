"""One generic visitor and mutator for expressions and statements.

A pass subclasses :class:`Mutator` and defines ``visit_<ClassName>`` for the nodes it cares
about; everything else is rebuilt from its (possibly changed) children, and left identical
(same object) when no child changed.
"""
from __future__ import annotations

import dataclasses

from .expr import PrimExpr, Var
from .stmt import Stmt


def _is_node(x) -> bool:
    return isinstance(x, (PrimExpr, Stmt))


class Visitor:
    """Walks every node; override ``visit_<ClassName>`` and call ``self.generic_visit(node)``."""

    def visit(self, node):
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is not None:
            return method(node)
        return self.generic_visit(node)

    def generic_visit(self, node):
        for name in node._children:
            child = getattr(node, name)
            if isinstance(child, tuple):
                for c in child:
                    if _is_node(c):
                        self.visit(c)
            elif child is not None and _is_node(child):
                self.visit(child)


class Mutator:
    """Rebuilds a tree; override ``visit_<ClassName>`` and return the replacement node."""

    def visit(self, node):
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is not None:
            return method(node)
        return self.generic_visit(node)

    def generic_visit(self, node):
        changes = None
        for name in node._children:
            child = getattr(node, name)
            if isinstance(child, tuple):
                # a plain loop, not a generator: a generator's frame is resumed from C, so each
                # level of a deep tree would cost C stack (see minitvm.tir.limits)
                new = []
                changed = False
                for c in child:
                    n = self.visit(c) if _is_node(c) else c
                    changed = changed or n is not c
                    new.append(n)
                if changed:
                    changes = changes or {}
                    changes[name] = tuple(new)
            elif child is not None and _is_node(child):
                new = self.visit(child)
                if new is not child:
                    changes = changes or {}
                    changes[name] = new
        if changes is None:
            return node
        return dataclasses.replace(node, **changes)


class _Substituter(Mutator):
    def __init__(self, vmap):
        self.vmap = vmap

    def visit_Var(self, node):
        return self.vmap.get(node, node)

    visit_SizeVar = visit_Var


def substitute(node, vmap: dict):
    """Replace variables by expressions (``vmap``: Var -> PrimExpr) in an expr or stmt."""
    if not vmap:
        return node
    return _Substituter(vmap).visit(node)


def post_order_visit(node, fn) -> None:
    """Call ``fn`` on every node of the tree, children first."""

    class _V(Visitor):
        def visit(self, n):
            self.generic_visit(n)
            fn(n)

    _V().visit(node)


def collect_vars(node) -> set:
    """All variables used in an expression or statement."""
    found = set()

    def f(n):
        if isinstance(n, Var):
            found.add(n)

    post_order_visit(node, f)
    return found


def uses_var(node, var: Var) -> bool:
    """True if ``var`` occurs in ``node``."""
    return var in collect_vars(node)


def structural_equal(a, b) -> bool:
    """Same node types, same leaves (variables by identity, constants by value)."""
    if a is b:
        return True
    if type(a) is not type(b):
        if isinstance(a, (int, float, str)) and isinstance(b, (int, float, str)):
            return a == b
        return False
    if isinstance(a, Var):
        return False
    if isinstance(a, tuple):
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if not structural_equal(x, y):
                return False
        return True
    if not dataclasses.is_dataclass(a):
        return a == b
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if _is_node(x) or isinstance(x, tuple):
            if not structural_equal(x, y):
                return False
        elif x is not y and not (isinstance(x, (int, float, str)) and x == y):
            return False
    return True
