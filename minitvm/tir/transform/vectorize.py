"""Vectorization: a ``vectorized`` loop of constant extent becomes vector operations.

The loop variable becomes ``ramp(min, 1, lanes)``; loop-invariant scalars are broadcast.
Contiguous accesses stay ``Ramp`` indices so backends emit vector loads and stores. A loop
whose body cannot be expressed with vectors (inner loops, branches on the loop variable,
calls other than lane-wise integer ones such as ``shift_right``, stores whose index does not
vary with it) is unrolled instead when it is short, and otherwise left as a plain loop. A
``let`` whose value varies with the loop binds a vector.
"""
from __future__ import annotations

from ... import dtype as dt
from .. import expr as E
from ..arith import simplify
from ..functor import Mutator, substitute, uses_var
from ..limits import check_loop_kind
from ..stmt import BufferStore, For, IfThenElse, SeqStmt

MAX_UNROLL_FALLBACK = 16
# integer intrinsics every backend applies lane by lane to vector operands
_LANEWISE_CALLS = frozenset({"shift_left", "shift_right", "bitwise_and", "bitwise_or", "bitwise_xor"})


class _CannotVectorize(Exception):
    pass


def _lanes(e) -> int:
    return dt.lanes_of(e.dtype)


def _bcast(e, lanes):
    return e if _lanes(e) == lanes else E.Broadcast(e, lanes)


class _VecExpr(Mutator):
    def __init__(self, var, lanes, base):
        self.var, self.lanes, self.base = var, lanes, base

    def visit_Var(self, node):
        if node is self.var:
            return E.Ramp(self.base, E.const(1, node.dtype), self.lanes)
        return node

    def _binary(self, node):
        a, b = self.visit(node.a), self.visit(node.b)
        if a is node.a and b is node.b and _lanes(a) == _lanes(b):
            return node
        n = self.lanes
        cls = type(node)
        if cls in (E.Add, E.Sub) and isinstance(a, E.Ramp) and _lanes(b) == 1:
            return E.Ramp(simplify(cls(a.base, b)), a.stride, n)
        if cls is E.Add and isinstance(b, E.Ramp) and _lanes(a) == 1:
            return E.Ramp(simplify(E.Add(a, b.base)), b.stride, n)
        if cls is E.Mul and isinstance(a, E.Ramp) and _lanes(b) == 1:
            return E.Ramp(simplify(E.Mul(a.base, b)), simplify(E.Mul(a.stride, b)), n)
        if cls is E.Mul and isinstance(b, E.Ramp) and _lanes(a) == 1:
            return E.Ramp(simplify(E.Mul(b.base, a)), simplify(E.Mul(b.stride, a)), n)
        if cls is E.Add and isinstance(a, E.Ramp) and isinstance(b, E.Ramp):
            return E.Ramp(simplify(E.Add(a.base, b.base)), simplify(E.Add(a.stride, b.stride)), n)
        if cls in (E.FloorDiv, E.FloorMod) and isinstance(a, E.Ramp):
            raise _CannotVectorize("division of a vector index")
        return cls(_bcast(a, n), _bcast(b, n))

    visit_Add = visit_Sub = visit_Mul = visit_Div = visit_FloorDiv = visit_FloorMod = _binary
    visit_Min = visit_Max = visit_EQ = visit_NE = visit_LT = visit_LE = visit_GT = visit_GE = _binary
    visit_And = visit_Or = _binary

    def visit_Select(self, node):
        c, t, f = self.visit(node.condition), self.visit(node.true_value), self.visit(node.false_value)
        if c is node.condition and t is node.true_value and f is node.false_value \
                and _lanes(c) == _lanes(t) == _lanes(f):
            return node
        n = self.lanes
        return E.Select(_bcast(c, n), _bcast(t, n), _bcast(f, n))

    def visit_Cast(self, node):
        v = self.visit(node.value)
        if v is node.value and _lanes(v) == dt.lanes_of(node.dtype):
            return node
        return E.Cast(dt.with_lanes(node.dtype, _lanes(v)), v)

    def visit_Not(self, node):
        a = self.visit(node.a)
        return node if a is node.a else E.Not(a)

    def visit_BufferLoad(self, node):
        raw = node.indices[0]
        if isinstance(raw, E.Select) and not uses_var(raw.condition, self.var):
            # a guarded read (see lower_intrin): move the guard onto the vector's base
            t, f = self.visit(raw.true_value), self.visit(raw.false_value)
            if isinstance(t, E.Ramp) and _lanes(f) == 1:
                return E.BufferLoad(node.buffer, (E.Ramp(E.Select(raw.condition, t.base, f), t.stride, t.lanes),))
            if isinstance(f, E.Ramp) and _lanes(t) == 1:
                return E.BufferLoad(node.buffer, (E.Ramp(E.Select(raw.condition, t, f.base), f.stride, f.lanes),))
        idx = self.visit(raw)
        if idx is raw and _lanes(idx) == 1:
            return node
        if not isinstance(idx, E.Ramp):
            raise _CannotVectorize("gather with a non-affine index")
        return E.BufferLoad(node.buffer, (idx,))

    def visit_Call(self, node):
        args = tuple(self.visit(a) for a in node.args)
        # an argument that varies by lane: the loop variable, or a let bound to a vector
        if all(a is b and _lanes(a) == 1 for a, b in zip(args, node.args)):
            return node
        if node.op not in _LANEWISE_CALLS:
            raise _CannotVectorize(f"call {node.op}")
        n = self.lanes
        return E.Call(dt.with_lanes(node.dtype, n), node.op, tuple(_bcast(a, n) for a in args))

    def visit_Let(self, node):
        value = self.visit(node.value)
        if _lanes(value) == 1:                  # the same for every lane: stays a scalar
            body = self.visit(node.body)
            return node if value is node.value and body is node.body else E.Let(node.var, value, body)
        var = E.Var(node.var.name, value.dtype)
        return E.Let(var, value, self.visit(substitute(node.body, {node.var: var})))

    def visit_Ramp(self, node):
        raise _CannotVectorize("nested vectorization")

    visit_Broadcast = visit_Ramp


def _vectorize_body(stmt, var, lanes, base):
    if isinstance(stmt, SeqStmt):
        return SeqStmt(tuple(_vectorize_body(s, var, lanes, base) for s in stmt.seq))
    if isinstance(stmt, BufferStore):
        vec = _VecExpr(var, lanes, base)
        idx = vec.visit(stmt.indices[0])
        if not isinstance(idx, E.Ramp):
            raise _CannotVectorize("store whose index does not vary with the loop")
        value = _bcast(vec.visit(stmt.value), lanes)
        return BufferStore(stmt.buffer, value, (idx,))
    if isinstance(stmt, IfThenElse) and not uses_var(stmt.condition, var):
        other = None if stmt.else_case is None else _vectorize_body(stmt.else_case, var, lanes, base)
        return IfThenElse(stmt.condition, _vectorize_body(stmt.then_case, var, lanes, base), other)
    raise _CannotVectorize(type(stmt).__name__)


class _Vectorize(Mutator):
    def visit_For(self, node):
        body = self.visit(node.body)
        if node.kind != "vectorized":
            return node if body is node.body else For(node.loop_var, node.min, node.extent, node.kind, body)
        if isinstance(node.extent, E.IntImm) and node.extent.value > 1:
            check_loop_kind("vectorized", node.extent.value, f"loop {node.loop_var.name}")
            try:
                return _vectorize_body(body, node.loop_var, node.extent.value, node.min)
            except _CannotVectorize:
                pass
        short = isinstance(node.extent, E.IntImm) and node.extent.value <= MAX_UNROLL_FALLBACK
        return For(node.loop_var, node.min, node.extent, "unrolled" if short else "serial", body)


def vectorize_loops(stmt):
    """Replace ``vectorized`` loops by vector statements where possible."""
    return _Vectorize().visit(stmt)
