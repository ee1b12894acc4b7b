"""Double buffering: fill the next tile of a buffer while the current one is being read.

A stage marked ``double_buffer()`` and computed at loop ``k`` becomes::

    allocate buf[2 * size]
    fill buf half 0 for k = 0;  sync
    for k in 0..n:
        if k + 1 < n: fill buf half (k + 1) % 2 for iteration k + 1
        compute on buf half k % 2
        sync

so the global loads of the next tile overlap the arithmetic on the current one. On a GPU one
barrier per iteration suffices: the half written in iteration ``k`` was last read in
iteration ``k - 1``, which every thread finished before that iteration's closing barrier.
The barriers are placed here; the generic barrier pass leaves buffers marked
:data:`DOUBLE_BUFFERED` alone.

Inside a GPU kernel the fill of the next half is further split in two, through registers::

    for k in 0..n:
        if k + 1 < n: regs = the global values of tile k + 1
        compute on buf half k % 2
        if k + 1 < n: buf half (k + 1) % 2 = regs
        sync

A thread issues its global loads and goes on with the arithmetic while they are in flight;
stored straight to shared memory, each load would stall the thread before its first
``dp4a`` (a GPU issues in order). The fill's loops must have constant extents, and its values
must fit :data:`MAX_STAGING_BYTES` per thread; otherwise it is stored directly.
"""
from __future__ import annotations

from .. import expr as E
from ..arith import simplify
from ..functor import Mutator
from ..stmt import Allocate, AttrStmt, Buffer, BufferStore, Evaluate, For, IfThenElse, SeqStmt, seq

DOUBLE_BUFFER_SCOPE = "double_buffer_scope"
DOUBLE_BUFFERED = "double_buffered"
MAX_STAGING_BYTES = 64      # per thread and buffer: 16 registers


def sync_stmt():
    """``__syncthreads()`` as an IR statement."""
    return Evaluate(E.Call("int32", "syncthreads", ()))


class _Redirect(Mutator):
    """Offsets accesses of ``old`` into one half of ``new``."""

    def __init__(self, old, new, offset, loads: bool, stores: bool):
        self.old, self.new, self.offset = old, new, offset
        self.loads, self.stores = loads, stores

    def _idx(self, idx):
        if isinstance(idx, E.Ramp):
            return E.Ramp(E.Add(idx.base, self.offset), idx.stride, idx.lanes)
        return E.Add(idx, self.offset)

    def visit_BufferLoad(self, node):
        node = self.generic_visit(node)
        if node.buffer is self.old and self.loads:
            return E.BufferLoad(self.new, (self._idx(node.indices[0]),))
        return node

    def visit_BufferStore(self, node):
        node = self.generic_visit(node)
        if node.buffer is self.old and self.stores:
            return BufferStore(self.new, node.value, (self._idx(node.indices[0]),))
        return node


def _writes(stmt, buf) -> bool:
    found = []

    class _V(Mutator):
        def visit_BufferStore(self, node):
            if node.buffer is buf:
                found.append(node)
            return node

    _V().visit(stmt)
    return bool(found)


class _InjectDoubleBuffer(Mutator):
    def __init__(self):
        self.in_kernel = False

    def visit_AttrStmt(self, node):
        if node.attr_key == "thread_extent":
            saved = self.in_kernel
            self.in_kernel = True
            out = self.generic_visit(node)
            self.in_kernel = saved
            return out
        if node.attr_key == DOUBLE_BUFFER_SCOPE:
            # a marker the loop above did not consume: the stage is not inside a loop
            return self.visit(node.body)
        return self.generic_visit(node)

    def visit_For(self, node):
        allocs, producers, rest = [], [], node.body
        while True:
            db = False
            cur = rest
            if isinstance(cur, AttrStmt) and cur.attr_key == DOUBLE_BUFFER_SCOPE:
                db, cur = True, cur.body
            if not isinstance(cur, Allocate):
                break
            allocs.append((cur.buffer, db))
            inner = cur.body
            if isinstance(inner, SeqStmt) and _writes(inner.seq[0], cur.buffer):
                producers.append((cur.buffer, db, self.visit(inner.seq[0])))
                rest = seq(*inner.seq[1:])
            else:
                rest = inner
        if not any(db for _, db in allocs):
            body = self.visit(node.body)
            return node if body is node.body else For(node.loop_var, node.min, node.extent, node.kind, body)
        rest = self.visit(rest)
        k, ext = node.loop_var, node.extent
        doubled = {}
        for buf, db in allocs:
            if db:
                size = buf.shape[0]
                doubled[buf] = (Buffer(buf.name, (simplify(E.Mul(size, E.const(2))),), buf.dtype, buf.scope), size)
        prologue, prefetch, plain, fills, regs = [], [], [], [], []
        has_next = E.LT(E.Add(k, E.const(1)), ext)
        for buf, db, prod in producers:
            if db:
                new, size = doubled[buf]
                first = _Redirect(buf, new, E.const(0), False, True).visit(_subst(prod, k, E.const(0)))
                prologue.append(first)
                nxt = _subst(prod, k, E.Add(k, E.const(1)))
                half = E.Mul(E.FloorMod(E.Add(k, E.const(1)), E.const(2)), size)
                nxt = _Redirect(buf, new, half, False, True).visit(nxt)
                staged = _stage_in_registers(nxt, new) if self.in_kernel else None
                if staged is None:
                    prefetch.append(IfThenElse(has_next, nxt))
                else:
                    load, store, reg = staged
                    prefetch.append(IfThenElse(has_next, load))
                    fills.append(IfThenElse(has_next, store))
                    regs.append(reg)
            else:
                plain.append(prod)
        for buf, (new, size) in doubled.items():
            rest = _Redirect(buf, new, E.Mul(E.FloorMod(k, E.const(2)), size), True, False).visit(rest)
        barrier = [sync_stmt()] if self.in_kernel else []
        loop_body = seq(*prefetch, *plain, rest, *fills, *barrier)
        for reg in regs:
            loop_body = Allocate(reg, loop_body)
        out = seq(*prologue, *barrier, For(k, node.min, ext, node.kind, loop_body))
        for buf, db in reversed(allocs):
            if db:
                new = doubled[buf][0]
                out = AttrStmt(new, DOUBLE_BUFFERED, E.const(1), Allocate(new, out))
            else:
                out = Allocate(buf, out)
        return out


def _stage_in_registers(fill, buf):
    """Split ``fill`` (loops and guards around stores into ``buf``) into a statement that
    evaluates the stored values into a new local buffer and one that stores them from there:
    ``(load, store, register buffer)``, or None where the fill has another shape, a loop of
    non-constant extent, or more than :data:`MAX_STAGING_BYTES` of values per thread."""
    from ... import dtype as dt

    def slots(stmt, iters):
        """Registers the stores under ``stmt`` need (``iters`` times each), or None."""
        if isinstance(stmt, For):
            if not (isinstance(stmt.extent, E.IntImm) and E.is_const_int(stmt.min, 0)):
                return None
            return slots(stmt.body, iters * stmt.extent.value)
        if isinstance(stmt, IfThenElse) and stmt.else_case is None:
            return slots(stmt.then_case, iters)
        if isinstance(stmt, SeqStmt):
            parts = [slots(c, iters) for c in stmt.seq]
            return None if any(p is None for p in parts) else sum(parts)
        if isinstance(stmt, BufferStore) and stmt.buffer is buf and dt.lanes_of(stmt.value.dtype) == 1:
            return iters
        return None

    total = slots(fill, 1)
    if not total or total * dt.numpy_dtype(buf.dtype).itemsize > MAX_STAGING_BYTES:
        return None
    reg = Buffer(buf.name + ".reg", (E.const(total),), buf.dtype, "local")
    used = [0]

    def split(stmt, slot, iters):
        """(load half, store half) of ``stmt``; ``slot`` numbers the ``iters`` iterations of
        the loops around it."""
        if isinstance(stmt, For):
            # serial loops unroll, so that the registers are indexed by constants
            kind = "unrolled" if stmt.kind == "serial" else stmt.kind
            load, store = split(stmt.body, E.Add(E.Mul(slot, stmt.extent), stmt.loop_var),
                                iters * stmt.extent.value)
            return (For(stmt.loop_var, stmt.min, stmt.extent, kind, load),
                    For(stmt.loop_var, stmt.min, stmt.extent, kind, store))
        if isinstance(stmt, IfThenElse):
            load, store = split(stmt.then_case, slot, iters)
            return IfThenElse(stmt.condition, load), IfThenElse(stmt.condition, store)
        if isinstance(stmt, SeqStmt):
            halves = [split(c, slot, iters) for c in stmt.seq]
            return seq(*(h[0] for h in halves)), seq(*(h[1] for h in halves))
        start = used[0]
        used[0] += iters
        at = simplify(E.Add(slot, E.const(start)))
        return BufferStore(reg, stmt.value, (at,)), BufferStore(buf, E.BufferLoad(reg, (at,)), stmt.indices)

    load, store = split(fill, E.const(0), 1)
    return load, store, reg


def _subst(stmt, var, value):
    from ..functor import substitute
    return substitute(stmt, {var: value})


def inject_double_buffer(stmt):
    """Apply double buffering to every buffer marked with ``double_buffer_scope``."""
    return _InjectDoubleBuffer().visit(stmt)
