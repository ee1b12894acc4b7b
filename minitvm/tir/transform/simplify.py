"""Simplify every expression of a statement using the ranges of the loops around it."""
from __future__ import annotations

from .. import expr as E
from ..arith import Analyzer
from ..functor import Mutator, substitute
from ..stmt import AttrStmt, Evaluate, For, IfThenElse, LetStmt, is_no_op, seq


class _Simplify(Mutator):
    def __init__(self):
        self.an = Analyzer()

    def visit(self, node):
        if isinstance(node, E.PrimExpr):
            return self.an.simplify(node)
        return super().visit(node)

    def visit_For(self, node):
        mn, ext = self.an.simplify(node.min), self.an.simplify(node.extent)
        if E.is_const_int(ext, 0) or (isinstance(ext, E.IntImm) and ext.value < 0):
            return Evaluate(E.const(0))
        if E.is_const_int(ext, 1):
            return self.visit(substitute(node.body, {node.loop_var: mn}))
        self.an.bind_range(node.loop_var, E.Range(mn, ext))
        body = self.visit(node.body)
        if is_no_op(body):
            return body
        return For(node.loop_var, mn, ext, node.kind, body)

    def visit_AttrStmt(self, node):
        value = self.an.simplify(node.value)
        if node.attr_key == "thread_extent" and E.is_const_int(value, 1) \
                and node.node.thread_tag.startswith("vthread"):
            return self.visit(substitute(node.body, {node.node.var: E.const(0)}))
        if node.attr_key == "thread_extent":
            self.an.bind_range(node.node.var, E.Range(E.const(0), value))
        body = self.visit(node.body)
        return AttrStmt(node.node, node.attr_key, value, body)

    def visit_IfThenElse(self, node):
        cond = self.an.simplify(node.condition)
        inner = cond.args[0] if isinstance(cond, E.Call) and cond.op == "likely" else cond
        if isinstance(inner, E.IntImm):
            if inner.value:
                return self.visit(node.then_case)
            return self.visit(node.else_case) if node.else_case is not None else Evaluate(E.const(0))
        then = self.visit(node.then_case)
        other = self.visit(node.else_case) if node.else_case is not None else None
        if is_no_op(then) and (other is None or is_no_op(other)):
            return then
        return IfThenElse(cond, then, other)

    def visit_LetStmt(self, node):
        value = self.an.simplify(node.value)
        self.an.ranges[node.var] = self.an.const_bounds(value)
        return LetStmt(node.var, value, self.visit(node.body))

    def visit_SeqStmt(self, node):
        return seq(*[s for s in (self.visit(x) for x in node.seq) if not is_no_op(s)])


def simplify_stmt(stmt):
    """``stmt`` with simplified expressions, constant branches taken and trivial loops removed."""
    return _Simplify().visit(stmt)
