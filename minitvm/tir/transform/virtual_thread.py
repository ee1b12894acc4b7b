"""Lower virtual threads (``vthread``) into unrolled copies with expanded register buffers.

A ``vthread`` binding is ``AttrStmt(IterVar(..., thread_tag="vthread"), "thread_extent", n, body)``
(tags ``vthread.x/y/z`` and the attribute key ``virtual_thread`` are accepted too). It means: run
``body`` as ``n`` independent virtual threads inside one real thread. The pass removes the
attribute and rewrites ``body`` so that one real thread does the work of all ``n``:

* a ``local`` allocation inside the scope whose contents differ between virtual threads (some
  store to it depends on the vthread variable, on a let or buffer that does, or runs under a
  loop/branch whose header does) is expanded ``n`` times (``[vt][original]`` layout): virtual
  thread ``k`` uses elements ``k*size ...``; this is what turns a vthread into register tiling.
  Other local buffers are identical in every virtual thread and stay single (TVM's rule);
* the copies are pushed as far down the tree as possible: a loop, branch, let or attribute whose
  header does not depend on the vthread (or on an expanded buffer) is kept once and the pass
  recurses into it; a leaf statement (store, evaluate), or a compound statement whose header does
  depend on it, is replaced by ``n`` copies in order ``k = 0 .. n-1`` with the vthread variable
  replaced by the constant ``k``;
* a statement that uses neither the vthread variable nor an expanded buffer runs once (as in
  TVM: such statements are identical in every virtual thread).

Each virtual thread keeps its own program order, and copies of different virtual threads are
interleaved statement by statement; as with real threads, this is only correct for programs
without races between virtual threads (shared and global stores of different copies must not
overlap unless a barrier separates them). Nested vthreads are lowered innermost first.
Shared buffers are never expanded: virtual threads of one real thread share shared memory just
as real threads of one block do.
"""
from __future__ import annotations

import dataclasses

from ... import dtype as dt
from ...errors import CodegenError
from .. import expr as E
from ..functor import Mutator, Visitor, substitute
from ..stmt import (Allocate, AttrStmt, Buffer, BufferStore, For, IfThenElse, LetStmt, SeqStmt, Stmt,
                    seq)

__all__ = ["inject_virtual_thread", "is_vthread_attr"]


def is_vthread_attr(s) -> bool:
    """True if ``s`` is a virtual-thread binding (``vthread`` thread tag or ``virtual_thread`` key)."""
    if not isinstance(s, AttrStmt):
        return False
    if s.attr_key == "virtual_thread":
        return True
    if s.attr_key != "thread_extent" or not isinstance(s.node, E.IterVar):
        return False
    return s.node.thread_tag.startswith("vthread")


def inject_virtual_thread(stmt: Stmt) -> Stmt:
    """Replace every vthread binding in ``stmt`` by unrolled per-virtual-thread copies.

    Local allocations inside a vthread scope are expanded (one slice per virtual thread); see
    the module docstring for exactly where copies are placed. Raises
    :class:`~minitvm.errors.CodegenError` for a vthread whose extent is not a constant.
    """
    return _VThreadLowering().visit(stmt)


class _VThreadLowering(Mutator):
    def visit_AttrStmt(self, node):
        if not is_vthread_attr(node):
            return self.generic_visit(node)
        body = self.visit(node.body)  # inner vthreads first
        var = node.node.var if isinstance(node.node, E.IterVar) else node.node
        if not isinstance(node.value, E.IntImm) or node.value.value < 1:
            raise CodegenError(
                f"virtual thread {getattr(var, 'name', var)} has extent {node.value}; a vthread "
                "extent must be a positive constant (split the axis by a constant factor first)")
        n = node.value.value
        if n == 1:
            return substitute(body, {var: E.const(0, var.dtype)})
        return _Injector(var, n, body).run(body)


def _local_allocs(body) -> dict:
    """data Var -> (Allocate buffer, flat size) for every local allocation in body."""
    found = {}

    class _V(Visitor):
        def visit_Allocate(self, node):
            b = node.buffer
            if b.scope == "local":
                found[b.data] = b
            self.generic_visit(node)

    _V().visit(body)
    return found


def _flat_size(b) -> int:
    size = 1
    for s in b.shape:
        if not isinstance(s, E.IntImm):
            raise CodegenError(
                f"local buffer {b.name} has the symbolic shape {tuple(str(x) for x in b.shape)} inside a "
                "virtual thread; register buffers need constant sizes")
        size *= s.value
    return size


class _Uses(Visitor):
    """Does a node use a vthread-dependent variable or read/write an expanded buffer?"""

    def __init__(self, vvars, expanded):
        self.vvars, self.expanded, self.hit = vvars, expanded, False

    def visit(self, node):
        if not self.hit:
            super().visit(node)

    def visit_Var(self, node):
        if node in self.vvars or node in self.expanded:
            self.hit = True

    visit_SizeVar = visit_Var

    def visit_BufferLoad(self, node):
        if node.buffer.data in self.expanded:
            self.hit = True
        else:
            self.generic_visit(node)

    def visit_BufferStore(self, node):
        if node.buffer.data in self.expanded:
            self.hit = True
        else:
            self.generic_visit(node)

    def visit_Allocate(self, node):
        if node.buffer.data in self.expanded:
            self.hit = True
        else:
            self.generic_visit(node)


class _Injector:
    def __init__(self, var, n, body):
        self.var, self.n = var, n
        self.vvars = {var}          # the vthread var and lets computed from it
        self.expanded = {}          # data Var -> flat size of local buffers that differ per vthread
        self._find_dependent(body)
        self.new_buffers = {}
        self.originals = _local_allocs(body)
        for data, size in self.expanded.items():
            b = self.originals[data]
            self.new_buffers[data] = Buffer(b.name, (n * size,), b.dtype, b.scope, data=b.data)

    def _find_dependent(self, body):
        """Fixed point: which lets and local buffers take different values in different vthreads.

        A local buffer does when some store to it uses the vthread var, a dependent let or buffer,
        or sits under a loop/branch/let whose header does (TVM's "touched by the vthread" rule).
        Buffers that do not are identical in every vthread and stay shared, like TVM.
        """
        locals_ = _local_allocs(body)

        def walk(s, dep):
            changed = False
            if isinstance(s, SeqStmt):
                for c in s.seq:
                    changed |= walk(c, dep)
            elif isinstance(s, For):
                changed |= walk(s.body, dep or self.header_uses(s.min, s.extent))
            elif isinstance(s, IfThenElse):
                d = dep or self.header_uses(s.condition)
                changed |= walk(s.then_case, d)
                if s.else_case is not None:
                    changed |= walk(s.else_case, d)
            elif isinstance(s, LetStmt):
                if (dep or self.header_uses(s.value)) and s.var not in self.vvars:
                    self.vvars.add(s.var)
                    changed = True
                changed |= walk(s.body, dep)
            elif isinstance(s, (Allocate, AttrStmt)):
                changed |= walk(s.body, dep or (isinstance(s, AttrStmt) and self.header_uses(s.value)))
            elif isinstance(s, BufferStore):
                data = s.buffer.data
                if data in locals_ and data not in self.expanded and (dep or self.uses(s)):
                    self.expanded[data] = _flat_size(locals_[data])
                    changed = True
            return changed

        while walk(body, False):
            pass

    def uses(self, node) -> bool:
        v = _Uses(self.vvars, self.expanded)
        v.visit(node)
        return v.hit

    def header_uses(self, *exprs) -> bool:
        return any(e is not None and self.uses(e) for e in exprs)

    def run(self, s):
        if not self.uses(s):
            return s
        if isinstance(s, SeqStmt):
            return seq(*[self.run(c) for c in s.seq])
        if isinstance(s, For):
            if self.header_uses(s.min, s.extent):
                return self.replicate(s)
            return dataclasses.replace(s, body=self.run(s.body))
        if isinstance(s, IfThenElse):
            if self.header_uses(s.condition):
                return self.replicate(s)
            return IfThenElse(s.condition, self.run(s.then_case),
                              self.run(s.else_case) if s.else_case is not None else None)
        if isinstance(s, Allocate):
            buf = self.new_buffers.get(s.buffer.data, s.buffer)
            return Allocate(buf, self.run(s.body))
        if isinstance(s, AttrStmt):
            if self.header_uses(s.value) or (isinstance(s.node, E.PrimExpr) and self.uses(s.node)):
                return self.replicate(s)
            return dataclasses.replace(s, body=self.run(s.body))
        if isinstance(s, LetStmt):
            if self.header_uses(s.value):
                return self.replicate(s)
            return dataclasses.replace(s, body=self.run(s.body))
        return self.replicate(s)

    def replicate(self, s):
        return seq(*[self.copy(s, k) for k in range(self.n)])

    def copy(self, s, k):
        return _Copy(self.var, k, self.expanded, self.new_buffers).visit(s)


class _Copy(Mutator):
    """One virtual thread's copy: vthread var -> k, expanded buffer indices offset by k*size."""

    def __init__(self, var, k, expanded, new_buffers):
        self.var, self.k = var, k
        self.expanded, self.new_buffers = expanded, new_buffers

    def visit_Var(self, node):
        if node is self.var:
            return E.const(self.k, node.dtype)
        return node

    visit_SizeVar = visit_Var

    def _index(self, buffer, indices):
        indices = tuple(fold(self.visit(i)) for i in indices)
        size = self.expanded.get(buffer.data)
        if size is None:
            return buffer, indices
        if len(indices) != 1:
            raise CodegenError(
                f"local buffer {buffer.name} is accessed with {len(indices)} indices inside a virtual "
                "thread; the virtual-thread pass expects flattened (single-index) accesses")
        idx = indices[0]
        off = self.k * size
        if isinstance(idx, E.Ramp):
            idx = E.Ramp(fold(E.Add(idx.base, E.const(off, idx.base.dtype))), idx.stride, idx.lanes)
        elif dt.lanes_of(idx.dtype) == 1:
            idx = fold(E.Add(idx, E.const(off, idx.dtype)))
        else:
            idx = E.Add(idx, E.Broadcast(E.const(off, dt.element_of(idx.dtype)), dt.lanes_of(idx.dtype)))
        return self.new_buffers[buffer.data], (idx,)

    def visit_BufferLoad(self, node):
        buf, idx = self._index(node.buffer, node.indices)
        return E.BufferLoad(buf, idx)

    def visit_BufferStore(self, node):
        buf, idx = self._index(node.buffer, node.indices)
        return BufferStore(buf, fold(self.visit(node.value)), idx)

    def visit_Allocate(self, node):
        buf = self.new_buffers.get(node.buffer.data, node.buffer)
        return Allocate(buf, self.visit(node.body))


# ------------------------------------------------------------------------------------------
# a small constant folder, so copies read ``C_local[(i + 16)]`` rather than ``(1*16) + i``
# ------------------------------------------------------------------------------------------
_INT_FOLD = ("int32", "int64")


class _Fold(Mutator):
    def _binary(self, node):
        node = self.generic_visit(node)
        a, b = node.a, node.b
        if node.dtype not in _INT_FOLD:
            return node
        ca, cb = isinstance(a, E.IntImm), isinstance(b, E.IntImm)
        if ca and cb:
            if isinstance(node, (E.FloorDiv, E.FloorMod)) and b.value == 0:
                return node
            return E._fold(type(node), a, b)
        if isinstance(node, E.Add):
            if cb and b.value == 0:
                return a
            if ca and a.value == 0:
                return b
            # (x + c1) + c2 -> x + (c1 + c2)
            if cb and isinstance(a, E.Add) and isinstance(a.b, E.IntImm):
                return self._binary(E.Add(a.a, E._fold(E.Add, a.b, b)))
        elif isinstance(node, E.Sub):
            if cb and b.value == 0:
                return a
        elif isinstance(node, E.Mul):
            if (ca and a.value == 0) or (cb and b.value == 0):
                return E.const(0, node.dtype)
            if cb and b.value == 1:
                return a
            if ca and a.value == 1:
                return b
        return node

    visit_Add = visit_Sub = visit_Mul = visit_FloorDiv = visit_FloorMod = _binary
    visit_Min = visit_Max = _binary


def fold(e):
    """Fold int32/int64 constant arithmetic and the identities ``x+0``, ``x*1``, ``x*0``."""
    return _Fold().visit(e)
