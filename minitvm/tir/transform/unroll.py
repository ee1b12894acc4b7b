"""Loop unrolling: explicit copies of ``unrolled`` loops, and ``auto_unroll_max_step``.

Where loops are unrolled on the CPU (copies here, or LLVM's full unroll past
:data:`MAX_EXPLICIT_UNROLL` iterations), an ``unrolled`` loop is unrolled only while its copies
stay small: at most :data:`MAX_UNROLLED_NODES` IR nodes and :data:`MAX_UNROLLED_LOOPS` inner
loops in all, and no allocation in its body. Past that it silently stays an ordinary loop, as
``unroll`` is a request about speed: LLVM -O3 spent 6 to 89 s on a loop of 196 iterations
whose body held the loop nests and allocation of three stages computed at it (#17 R9).
On CUDA, ``unrolled`` loops become ``#pragma unroll`` and nvcc decides.
"""
from __future__ import annotations

from .. import expr as E
from ..functor import Mutator, Visitor, post_order_visit, substitute
from ..limits import check_loop_kind
from ..stmt import For, seq

MAX_EXPLICIT_UNROLL = 256
MAX_UNROLLED_NODES = 16384
MAX_UNROLLED_LOOPS = 64


def _steps(stmt) -> int | None:
    """Number of innermost iterations under ``stmt`` if every loop has a constant extent."""
    if isinstance(stmt, For):
        if not isinstance(stmt.extent, E.IntImm):
            return None
        inner = _steps(stmt.body)
        return None if inner is None else stmt.extent.value * inner
    total = 0
    kids = [getattr(stmt, n) for n in stmt._children]
    found = False
    for k in kids:
        items = k if isinstance(k, tuple) else (k,)
        for c in items:
            if hasattr(c, "_children") and not isinstance(c, E.PrimExpr):
                s = _steps(c)
                if s is None:
                    return None
                total += s
                found = True
    return total if found else 1


class _FindAllocate(Visitor):
    """Walks statements only (expressions hold no Allocate) until it meets an Allocate."""

    found = False

    def visit_Allocate(self, node):
        self.found = True

    def generic_visit(self, node):
        if not self.found and not isinstance(node, E.PrimExpr):
            super().generic_visit(node)


def _allocates(stmt) -> bool:
    """Does ``stmt`` contain an Allocate?"""
    finder = _FindAllocate()
    finder.visit(stmt)
    return finder.found


def _small_enough(extent: int, body) -> bool:
    """May ``extent`` copies of ``body`` be made (see the module docstring)?"""
    if _allocates(body):
        return False
    nodes, loops = 0, 0

    def count(n):
        nonlocal nodes, loops
        nodes += 1
        loops += isinstance(n, For)

    post_order_visit(body, count)
    return extent * nodes <= MAX_UNROLLED_NODES and extent * loops <= MAX_UNROLLED_LOOPS


class _Unroll(Mutator):
    def __init__(self, explicit: bool):
        self.explicit = explicit
        self.auto_max = 0

    def visit_AttrStmt(self, node):
        if node.attr_key == "pragma_auto_unroll_max_step":
            saved = self.auto_max
            self.auto_max = node.value.value
            body = self.visit(node.body)
            self.auto_max = saved
            return body
        if node.attr_key == "pragma_unroll_explicit":
            saved = self.explicit
            self.explicit = bool(node.value.value)
            body = self.visit(node.body)
            self.explicit = saved
            return body
        return self.generic_visit(node)

    def visit_For(self, node):
        body = self.visit(node.body)
        kind = node.kind
        if kind == "unrolled" and isinstance(node.extent, E.IntImm):
            check_loop_kind(kind, node.extent.value, f"loop {node.loop_var.name}")
        # a loop that allocates (a shared tile fetched per iteration) stays a loop: its copies
        # would each allocate
        if kind == "serial" and self.auto_max and isinstance(node.extent, E.IntImm) and not _allocates(body):
            steps = _steps(For(node.loop_var, node.min, node.extent, kind, body))
            if steps is not None and steps <= self.auto_max:
                kind = "unrolled"
        if kind == "unrolled" and self.explicit and isinstance(node.extent, E.IntImm):
            if not _small_enough(node.extent.value, body):
                kind = "serial"
            elif node.extent.value <= MAX_EXPLICIT_UNROLL:
                return seq(*[substitute(body, {node.loop_var: E.Add(node.min, E.const(k))})
                             for k in range(node.extent.value)])
        if body is node.body and kind == node.kind:
            return node
        return For(node.loop_var, node.min, node.extent, kind, body)


def unroll_loops(stmt, explicit: bool = True):
    """Unroll ``unrolled`` loops (copies when ``explicit``, else left for the backend's pragma)."""
    return _Unroll(explicit).visit(stmt)
