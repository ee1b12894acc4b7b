"""Insert ``__syncthreads()`` barriers between conflicting shared-memory accesses of a kernel.

The planner follows TVM's ``ThreadSync("shared")``, with a stricter "same location" test.

**Accesses.** Every read and write of a buffer whose scope is ``shared`` or ``shared.dyn`` is an
access entry: (buffer, read/write, flat index, variables bound between the statement being
scheduled and the access). A buffer handle passed to a call (``address_of(S[i])`` or the bare
data variable) counts as an unknown read and write, or only a read or only a write where
``address_of`` says so (its optional second argument, :func:`~minitvm.tir.expr.address_of`).

**Conflicts.** A read after a write (RAW) or a write after a read (WAR) of the same buffer
conflicts unless both indices are structurally equal and use no variable that can differ between
the two accesses (a loop or let variable bound inside either statement, or the loop variable of
a loop-carried comparison): then every thread touches only the location it touched itself.
Thread variables of the same ``threadIdx`` tag are identified. Reads of reads and writes after
writes never conflict (a write-write race between threads is a bug of the schedule, as in TVM).
A write marked ``AttrStmt(..., "double_buffer_write", ...)`` does not conflict with reads that
follow it in the same iteration (the reads use the other half), only loop-carried. Buffers under
``AttrStmt(buffer, "double_buffered", ...)`` or ``"pipelined"`` (the output of
:func:`~minitvm.tir.transform.double_buffer.inject_double_buffer` or
:func:`~minitvm.tir.transform.async_pipeline.inject_pipeline`, which place their barriers
itself) are not analysed at all; the barriers that pass placed still count for other buffers.

**Placement.** In each statement sequence, a barrier goes right before the first statement whose
accesses (before its own first barrier) conflict with the accesses since the last barrier. For a
loop, the accesses after the body's last barrier are compared with those before its first
barrier with the loop variable varying; on a conflict one barrier goes at the end of the body
(the classic k-tile loop: ``load; sync; compute; sync``). Existing ``syncthreads`` calls count.
A loop whose trip count may be zero does not count as a barrier for the code after it.

**Divergence.** ``__syncthreads()`` must be reached by every thread of the block. Where a barrier
lands under a condition that depends on ``threadIdx`` (or on values derived from it, or on local
memory), the condition is pushed down around the barrier: ``if (c) {A; sync; B}`` becomes
``if (c) {A} sync; if (c) {B}``, through loops, allocations, lets and uniform branches. This
needs a condition that ``A`` cannot change; a condition reading a buffer the branch writes, an
``else`` branch next to a barrier, or a loop with a thread-dependent trip count around a barrier
raise :class:`~minitvm.errors.CodegenError`.

Finally adjacent barriers are merged. Global memory is not considered (threads of one block
exchanging data through global memory are rare and left to the schedule).
"""
from __future__ import annotations

import dataclasses

from ... import dtype as dt
from ...errors import CodegenError
from .. import expr as E
from ..expr import ADDRESS_READ, ADDRESS_WRITE, address_access
from ..functor import Mutator, Visitor, collect_vars, structural_equal, substitute
from ..stmt import (Allocate, AttrStmt, Evaluate, For, IfThenElse, LetStmt, SeqStmt, Stmt,
                    seq)
from .async_pipeline import PIPELINED
from .double_buffer import DOUBLE_BUFFERED

__all__ = ["insert_shared_sync", "make_sync", "is_sync"]

_SHARED = ("shared", "shared.dyn")


def make_sync() -> Stmt:
    """A ``__syncthreads()`` statement."""
    return Evaluate(E.Call("int32", "syncthreads", ()))


def is_sync(s) -> bool:
    """True if ``s`` is a ``syncthreads`` barrier statement."""
    return isinstance(s, Evaluate) and isinstance(s.value, E.Call) and s.value.op == "syncthreads"


def insert_shared_sync(kernel_stmt: Stmt) -> Stmt:
    """Insert the barriers a kernel body needs around its shared-memory accesses.

    ``kernel_stmt`` is one kernel (everything under its outermost ``thread_extent`` attribute,
    with virtual threads already lowered). See the module docstring for the exact rules.
    Raises :class:`~minitvm.errors.CodegenError` where a needed barrier would sit in
    thread-divergent code and cannot be hoisted out.
    """
    info = _KernelInfo(kernel_stmt)
    planned, _ = _Planner(info).plan(kernel_stmt)
    legal = _Legalize(info).visit(planned)
    return _merge_barriers(legal)


# ------------------------------------------------------------------------------------------
# kernel facts: shared buffers, thread variables, divergent variables
# ------------------------------------------------------------------------------------------
class _KernelInfo(Visitor):
    def __init__(self, stmt):
        self.shared_data = set()   # data Vars of shared buffers
        self.local_data = set()
        self.canon = {}            # thread Var -> canonical Var of its tag
        self._by_tag = {}
        self.divergent = set()     # Vars whose value may differ between threads of a block
        self.prebarriered = set()  # data Vars whose barriers the double-buffer pass already placed
        self.visit(stmt)
        self.shared_data -= self.prebarriered

    def visit_Allocate(self, node):
        if node.buffer.scope in _SHARED:
            self.shared_data.add(node.buffer.data)
        elif node.buffer.scope == "local":
            self.local_data.add(node.buffer.data)
        self.generic_visit(node)

    def visit_BufferLoad(self, node):
        self._note(node.buffer)
        self.generic_visit(node)

    def visit_BufferStore(self, node):
        self._note(node.buffer)
        self.generic_visit(node)

    def _note(self, buf):
        if buf.scope in _SHARED:
            self.shared_data.add(buf.data)
        elif buf.scope == "local":
            self.local_data.add(buf.data)

    def visit_AttrStmt(self, node):
        if node.attr_key in (DOUBLE_BUFFERED, PIPELINED):
            self.prebarriered.add(getattr(node.node, "data", node.node))
        if node.attr_key == "thread_extent" and isinstance(node.node, E.IterVar):
            tag, var = node.node.thread_tag, node.node.var
            if tag.startswith("threadIdx"):
                first = self._by_tag.setdefault(tag, var)
                self.canon[var] = first
                self.divergent.add(var)
        self.generic_visit(node)

    def visit_LetStmt(self, node):
        self.visit(node.value)
        if self.is_divergent(node.value):
            self.divergent.add(node.var)
        self.visit(node.body)

    def visit_For(self, node):
        if self.is_divergent(node.min) or self.is_divergent(node.extent):
            self.divergent.add(node.loop_var)
        self.generic_visit(node)

    def is_divergent(self, e) -> bool:
        """May ``e`` take different values in different threads of one block?"""
        found = [False]
        info = self

        class _V(Visitor):
            def visit(self, n):
                if not found[0]:
                    super().visit(n)

            def visit_Var(self, n):
                if n in info.divergent:
                    found[0] = True

            visit_SizeVar = visit_Var

            def visit_BufferLoad(self, n):
                if n.buffer.scope == "local" or n.buffer.data in info.local_data:
                    found[0] = True
                else:
                    self.generic_visit(n)

            def visit_Let(self, n):
                self.visit(n.value)
                if info.is_divergent(n.value):
                    info.divergent.add(n.var)
                self.visit(n.body)

        _V().visit(e)
        return found[0]


# ------------------------------------------------------------------------------------------
# access summaries
# ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Access:
    data: E.Var
    write: bool
    index: object            # canonical flat index, or None (unknown: conflicts with everything)
    binders: frozenset       # variables bound between the scheduled statement and the access
    db_write: bool = False   # a double_buffer_write store


@dataclasses.dataclass(frozen=True)
class _Summary:
    head: tuple     # accesses that may run before the statement's first barrier
    tail: tuple     # accesses that may run after its last barrier (all of them on barrier-free paths)
    always: bool    # every path through the statement executes a barrier


_EMPTY = _Summary((), (), False)
_BARRIER = _Summary((), (), True)


def _dedupe(entries) -> tuple:
    seen, out = set(), []
    for a in entries:
        key = (id(a.data), a.write, _key(a.index), a.binders, a.db_write)
        if key not in seen:
            seen.add(key)
            out.append(a)
    return tuple(out)


def _key(e):
    """A hashable structural key of an expression (variables by identity)."""
    if e is None:
        return None
    if isinstance(e, E.Var):
        return ("var", id(e))
    if isinstance(e, (E.IntImm, E.FloatImm)):
        return (type(e).__name__, e.dtype, e.value)
    parts = [type(e).__name__, getattr(e, "dtype", None)]
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, (E.PrimExpr, tuple)):
            parts.append(tuple(_key(x) for x in v) if isinstance(v, tuple) else _key(v))
        elif isinstance(v, (int, str, float)):
            parts.append(v)
        else:
            parts.append(id(v))
    return tuple(parts)


def _bind(summary: _Summary, var) -> _Summary:
    def add(entries):
        return tuple(dataclasses.replace(a, binders=a.binders | {var}) for a in entries)
    return _Summary(add(summary.head), add(summary.tail), summary.always)


def _compose(summaries) -> _Summary:
    head, tail, always = [], [], False
    for s in summaries:
        if not always:
            head.extend(s.head)
        if s.always:
            tail = list(s.tail)
            always = True
        else:
            tail.extend(s.tail)
    return _Summary(_dedupe(head), _dedupe(tail), always)


class _Collect(Visitor):
    """Shared-memory accesses of one expression (reads; a call's buffer handles read and write)."""

    def __init__(self, planner):
        self.p = planner
        self.out = []

    def visit_BufferLoad(self, node):
        self.generic_visit(node)
        if node.buffer.data in self.p.info.shared_data:
            self.out.append(self.p.entry(node.buffer.data, False, node.indices))

    def visit_Call(self, node):
        if node.op == "address_of":
            a = node.args[0]
            if isinstance(a, E.BufferLoad):
                for i in a.indices:
                    self.visit(i)
                if a.buffer.data in self.p.info.shared_data:
                    mask = address_access(node)
                    if mask & ADDRESS_READ:
                        self.out.append(_Access(a.buffer.data, False, None, frozenset()))
                    if mask & ADDRESS_WRITE:
                        self.out.append(_Access(a.buffer.data, True, None, frozenset()))
            else:
                self.visit(a)
            return
        for a in node.args:
            if isinstance(a, E.Var) and a in self.p.info.shared_data:
                self.out.append(_Access(a, False, None, frozenset()))
                self.out.append(_Access(a, True, None, frozenset()))
            elif isinstance(a, (E.PrimExpr,)):
                self.visit(a)


class _Planner:
    def __init__(self, info: _KernelInfo):
        self.info = info

    def entry(self, data, write, indices, db=False) -> _Access:
        if len(indices) != 1:
            return _Access(data, write, None, frozenset(), db)
        return _Access(data, write, substitute(indices[0], self.info.canon), frozenset(), db)

    def expr_accesses(self, *exprs) -> tuple:
        c = _Collect(self)
        for e in exprs:
            if e is not None:
                c.visit(e)
        return tuple(c.out)

    # conflicts ------------------------------------------------------------------------
    def conflict(self, prev, cur, carried_var=None) -> bool:
        if not prev or not cur:
            return False
        by_data = {}
        for p in prev:
            by_data.setdefault(p.data, []).append(p)
        for c in cur:
            for p in by_data.get(c.data, ()):
                if p.write == c.write:
                    continue
                if p.index is None or c.index is None:
                    return True
                if carried_var is None and p.write and p.db_write and not c.write:
                    continue
                variant = p.binders | c.binders
                if carried_var is not None:
                    variant = variant | {carried_var}
                if structural_equal(p.index, c.index) and not (collect_vars(p.index) & variant):
                    continue
                return True
        return False

    # planning ---------------------------------------------------------------------------
    def plan(self, s):
        """Return (statement with barriers inserted, its access summary)."""
        method = getattr(self, "plan_" + type(s).__name__, None)
        if method is None:
            raise CodegenError(f"the shared-memory sync pass cannot handle {type(s).__name__} statements "
                               "inside a kernel")
        return method(s)

    def plan_SeqStmt(self, s):
        items = []          # (stmt, summary)
        pending = []
        for child in s.seq:
            c2, summ = self.plan(child)
            if is_sync(c2):
                pending = []
                items.append((c2, summ))
                continue
            if self.conflict(pending, summ.head):
                items.append((make_sync(), _BARRIER))
                pending = []
            items.append((c2, summ))
            if summ.always:
                pending = list(summ.tail)
            else:
                pending.extend(summ.tail)
        return seq(*[x for x, _ in items]), _compose([y for _, y in items])

    def plan_For(self, s):
        header = self.expr_accesses(s.min, s.extent)
        body, summ = self.plan(s.body)
        tail = summ.tail if summ.always else _dedupe(summ.tail + summ.head)
        if self.conflict(tail, summ.head, carried_var=s.loop_var):
            body = seq(body, make_sync())
            summ = _compose([summ, _BARRIER])
        summ = _bind(summ, s.loop_var)
        if not summ.always:
            summ = _Summary(summ.head, _dedupe(summ.tail + summ.head), False)
        runs = isinstance(s.extent, E.IntImm) and s.extent.value > 0
        if not runs:
            summ = _Summary(summ.head, summ.tail, False)
        summ = _compose([_Summary(header, header, False), summ])
        new = s if body is s.body else dataclasses.replace(s, body=body)
        return new, summ

    def plan_IfThenElse(self, s):
        cond = self.expr_accesses(s.condition)
        then, st = self.plan(s.then_case)
        if s.else_case is not None:
            other, se = self.plan(s.else_case)
        else:
            other, se = None, _EMPTY
        summ = _Summary(_dedupe(st.head + se.head), _dedupe(st.tail + se.tail), st.always and se.always)
        summ = _compose([_Summary(cond, cond, False), summ])
        if then is s.then_case and other is s.else_case:
            return s, summ
        return IfThenElse(s.condition, then, other), summ

    def plan_LetStmt(self, s):
        value = self.expr_accesses(s.value)
        body, summ = self.plan(s.body)
        summ = _compose([_Summary(value, value, False), _bind(summ, s.var)])
        return (s if body is s.body else dataclasses.replace(s, body=body)), summ

    def plan_Allocate(self, s):
        body, summ = self.plan(s.body)
        return (s if body is s.body else dataclasses.replace(s, body=body)), summ

    def plan_AttrStmt(self, s):
        body, summ = self.plan(s.body)
        if s.attr_key == "double_buffer_write":
            def mark(entries):
                return tuple(dataclasses.replace(a, db_write=True) if a.write else a for a in entries)
            summ = _Summary(mark(summ.head), mark(summ.tail), summ.always)
        return (s if body is s.body else dataclasses.replace(s, body=body)), summ

    def plan_Evaluate(self, s):
        if is_sync(s):
            return s, _BARRIER
        acc = self.expr_accesses(s.value)
        return s, _Summary(acc, acc, False)

    def plan_BufferStore(self, s):
        acc = list(self.expr_accesses(s.value, *s.indices))
        if s.buffer.data in self.info.shared_data:
            acc.append(self.entry(s.buffer.data, True, s.indices))
        acc = tuple(acc)
        return s, _Summary(acc, acc, False)


# ------------------------------------------------------------------------------------------
# moving barriers out of thread-divergent code
# ------------------------------------------------------------------------------------------
def _contains_sync(s) -> bool:
    found = [False]

    class _V(Visitor):
        def visit(self, n):
            if not found[0]:
                super().visit(n)

        def visit_Evaluate(self, n):
            if is_sync(n):
                found[0] = True

        def visit_BufferLoad(self, n):
            pass

    if s is not None:
        _V().visit(s)
    return found[0]


def _written(s) -> set:
    out = set()

    class _V(Visitor):
        def visit_BufferStore(self, n):
            out.add(n.buffer.data)
            self.generic_visit(n)

        def visit_Call(self, n):
            for a in n.args:
                if isinstance(a, E.Var):
                    out.add(a)
            if n.op == "address_of" and isinstance(n.args[0], E.BufferLoad) and address_access(n) & ADDRESS_WRITE:
                out.add(n.args[0].buffer.data)
            self.generic_visit(n)

    _V().visit(s)
    return out


def _loaded(e) -> set:
    out = set()

    class _V(Visitor):
        def visit_BufferLoad(self, n):
            out.add(n.buffer.data)
            self.generic_visit(n)

    _V().visit(e)
    return out


def _describe(e) -> str:
    return str(e)


class _Legalize(Mutator):
    def __init__(self, info: _KernelInfo):
        self.info = info

    def visit_For(self, node):
        node = self.generic_visit(node)
        if _contains_sync(node.body) and (self.info.is_divergent(node.min)
                                          or self.info.is_divergent(node.extent)):
            raise CodegenError(
                f"a __syncthreads() is needed inside the loop over {node.loop_var.name}, whose trip count "
                f"({_describe(node.extent)}) depends on threadIdx: not every thread would reach the barrier. "
                "Make the loop extent uniform across the block and guard the body instead")
        return node

    def visit_IfThenElse(self, node):
        node = self.generic_visit(node)
        t_sync, e_sync = _contains_sync(node.then_case), _contains_sync(node.else_case)
        if not (t_sync or e_sync) or not self.info.is_divergent(node.condition):
            return node
        if node.else_case is not None:
            raise CodegenError(
                f"a __syncthreads() is needed inside the thread-dependent branch if ({_describe(node.condition)}) "
                "that also has an else branch; only a condition without else can be split around a barrier. "
                "Restructure the schedule so the barrier sits outside the branch")
        return self.push(node.condition, node.then_case)

    def push(self, cond, s):
        """A statement equivalent to ``if (cond) s`` whose barriers run unconditionally."""
        if not _contains_sync(s):
            return IfThenElse(cond, s)
        clash = _loaded(cond) & _written(s)
        if clash:
            names = ", ".join(sorted(v.name for v in clash))
            raise CodegenError(
                f"a __syncthreads() is needed inside the thread-dependent branch if ({_describe(cond)}), "
                f"whose condition reads {names}, which the branch writes; the branch cannot be split "
                "around the barrier. Compute the condition into a local variable before the branch")
        if is_sync(s):
            return s
        if isinstance(s, SeqStmt):
            out, group = [], []
            for c in s.seq:
                if _contains_sync(c):
                    if group:
                        out.append(IfThenElse(cond, seq(*group)))
                        group = []
                    out.append(self.push(cond, c))
                else:
                    group.append(c)
            if group:
                out.append(IfThenElse(cond, seq(*group)))
            return seq(*out)
        if isinstance(s, For):
            if self.info.is_divergent(s.min) or self.info.is_divergent(s.extent):
                raise CodegenError(
                    f"a __syncthreads() is needed inside the loop over {s.loop_var.name}, whose trip count "
                    f"({_describe(s.extent)}) depends on threadIdx")
            return dataclasses.replace(s, body=self.push(cond, s.body))
        if isinstance(s, (Allocate, AttrStmt)):
            return dataclasses.replace(s, body=self.push(cond, s.body))
        if isinstance(s, LetStmt):
            zero = E.const(0, s.var.dtype) if not dt.is_float(s.var.dtype) else E.FloatImm(s.var.dtype, 0.0)
            value = E.Select(cond, s.value, zero) if _loaded(s.value) else s.value
            return LetStmt(s.var, value, self.push(cond, s.body))
        if isinstance(s, IfThenElse):
            # inner divergent branches were already split: this one is uniform
            other = self.push(cond, s.else_case) if s.else_case is not None else None
            return IfThenElse(s.condition, self.push(cond, s.then_case), other)
        raise CodegenError(f"cannot move a __syncthreads() out of a {type(s).__name__} under "
                           f"the thread-dependent condition {_describe(cond)}")


# ------------------------------------------------------------------------------------------
# merging adjacent barriers
# ------------------------------------------------------------------------------------------
class _Merge(Mutator):
    def visit_SeqStmt(self, node):
        out = []
        for c in node.seq:
            c = self.visit(c)
            parts = c.seq if isinstance(c, SeqStmt) else (c,)
            for p in parts:
                if is_sync(p) and out and is_sync(out[-1]):
                    continue
                out.append(p)
        return seq(*out)


def _merge_barriers(s):
    return _Merge().visit(s)
