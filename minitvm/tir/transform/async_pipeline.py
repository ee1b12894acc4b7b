"""Multi-stage software pipelining of shared-memory fills with asynchronous copies (``cp.async``).

A shared stage marked ``pipeline(n)`` and computed at loop ``k`` (its fill comes first in the
loop body) becomes a ring of ``n`` copies of its buffer::

    allocate buf[n * size]
    for s in 0 .. n-2:  if s < K: fill slot s for k = s;  commit          (prologue)
    for k in 0 .. K:
        wait until at most n-2 groups are pending;  sync
        if k + n-1 < K: fill slot (k + n-1) % n for k + n-1;  commit
        compute on slot k % n
    wait for all;  sync

Each thread keeps ``n - 1`` tiles in flight while the block computes on the oldest. One barrier
per iteration suffices: the slot filled in iteration ``k`` was last read in iteration ``k - 1``,
which every thread finished before iteration ``k``'s barrier. The fills run under an
``async_copy`` attribute; after vectorization :func:`inject_async_copy` turns their 16-byte
global-to-shared vector stores into ``cp.async`` (a padding select becomes the copy's zero
fill); any other store stays an ordinary one, which the ring keeps correct. The barrier pass
leaves ring buffers (marked :data:`PIPELINED`) alone.
"""
from __future__ import annotations

from ... import dtype as dt
from .. import expr as E
from ..arith import simplify
from ..functor import Mutator, structural_equal
from ..stmt import Allocate, AttrStmt, Buffer, Evaluate, For, IfThenElse, SeqStmt, seq
from .double_buffer import _Redirect, _subst, _writes, sync_stmt

PIPELINE_SCOPE = "pipeline_scope"     # on a stage's buffer: value = number of stages
PIPELINED = "pipelined"               # on a ring buffer the pass made: its barriers are placed
ASYNC_COPY = "async_copy"             # around fills whose stores may become cp.async


def _extern(name: str, *args) -> Evaluate:
    return Evaluate(E.Call("int32", "call_extern", (E.StringImm(name),) + tuple(args)))


class _InjectPipeline(Mutator):
    def visit_AttrStmt(self, node):
        if node.attr_key == PIPELINE_SCOPE:
            return self.visit(node.body)   # not the first thing in a loop body: left as it is
        return self.generic_visit(node)

    def visit_For(self, node):
        allocs, producers, rest = [], [], node.body
        while True:
            stages, cur = 0, rest
            if isinstance(cur, AttrStmt) and cur.attr_key == PIPELINE_SCOPE:
                stages, cur = int(cur.value.value), cur.body
            if not isinstance(cur, Allocate):
                break
            allocs.append((cur.buffer, stages))
            inner = cur.body
            if isinstance(inner, SeqStmt) and _writes(inner.seq[0], cur.buffer):
                producers.append((cur.buffer, stages, self.visit(inner.seq[0])))
                rest = seq(*inner.seq[1:])
            else:
                rest = inner
        depth = max((n for _, n in allocs), default=0)
        if depth < 2:
            body = self.visit(node.body)
            return node if body is node.body else For(node.loop_var, node.min, node.extent, node.kind, body)
        rest = self.visit(rest)
        k, ext = node.loop_var, node.extent
        rings = {buf: Buffer(buf.name, (simplify(E.Mul(buf.shape[0], E.const(depth))),), buf.dtype, buf.scope)
                 for buf, n in allocs if n}

        def fill(step):
            """The fills of iteration ``step`` into their slots, as asynchronous copies."""
            parts = []
            for buf, n, prod in producers:
                p = _subst(prod, k, step)
                if n:
                    slot = E.Mul(E.FloorMod(step, E.const(depth)), buf.shape[0])
                    p = AttrStmt(E.const(0), ASYNC_COPY, E.const(1),
                                 _Redirect(buf, rings[buf], simplify(slot), False, True).visit(p))
                parts.append(p)
            return seq(*parts)

        commit = _extern("mt_cp_async_commit")
        prologue = []
        for s in range(depth - 1):
            step = E.const(s)
            prologue += [IfThenElse(simplify(E.LT(step, ext)), fill(step)), commit]
        ahead = E.Add(k, E.const(depth - 1))
        for buf, ring in rings.items():
            rest = _Redirect(buf, ring, E.Mul(E.FloorMod(k, E.const(depth)), buf.shape[0]), True, False).visit(rest)
        loop_body = seq(_extern("mt_cp_async_wait", E.const(depth - 2)), sync_stmt(),
                        IfThenElse(E.LT(ahead, ext), fill(ahead)), commit, rest)
        # after the loop: no copy left in flight, and every thread done with the ring (so what
        # follows may reuse its bytes: the shared-memory plan overlaps buffers a barrier separates)
        out = seq(*prologue, For(k, node.min, ext, node.kind, loop_body), _extern("mt_cp_async_wait", E.const(0)),
                  sync_stmt())
        for buf, n in reversed(allocs):
            if n:
                out = AttrStmt(rings[buf], PIPELINED, E.const(1), Allocate(rings[buf], out))
            else:
                out = Allocate(buf, out)
        return out


def inject_pipeline(stmt):
    """Turn every stage marked ``pipeline_scope`` into a ring of asynchronously filled slots."""
    return _InjectPipeline().visit(stmt)


class _AsyncCopy(Mutator):
    def __init__(self):
        self.inside = False

    def visit_AttrStmt(self, node):
        if node.attr_key != ASYNC_COPY:
            return self.generic_visit(node)
        saved, self.inside = self.inside, True
        body = self.visit(node.body)
        self.inside = saved
        return body

    def visit_BufferStore(self, node):
        if not self.inside:
            return node
        copy = _as_async_copy(node)
        return copy if copy is not None else node


def _as_async_copy(store):
    """``cp.async`` of a 16-byte store ``shared[ramp] = global[ramp]`` (or of the select of such
    a load and zero, as padding is written), else None."""
    idx = store.indices[0]
    if store.buffer.scope not in ("shared", "shared.dyn") or not isinstance(idx, E.Ramp):
        return None
    if not E.is_const_int(idx.stride, 1) or idx.lanes * dt.bits(dt.element_of(store.buffer.dtype)) != 128:
        return None
    value, nbytes = store.value, E.const(16)
    if isinstance(value, E.Select) and _is_zero(value.false_value):
        cond = value.condition.value if isinstance(value.condition, E.Broadcast) else value.condition
        if dt.lanes_of(cond.dtype) != 1:
            return None
        nbytes, value = E.Select(cond, E.const(16), E.const(0)), _unguarded(value.true_value, cond)
    if not (isinstance(value, E.BufferLoad) and value.buffer.scope == "global"
            and isinstance(value.indices[0], E.Ramp) and E.is_const_int(value.indices[0].stride, 1)):
        return None
    src = E.BufferLoad(value.buffer, (value.indices[0].base,))
    dst = E.BufferLoad(store.buffer, (idx.base,))
    return _extern("mt_cp_async16", E.address_of(dst, "w"), E.address_of(src, "r"), nbytes)


def _unguarded(load, cond):
    """``load`` without the ``select(cond, i, 0)`` that :func:`lower_if_then_else` put on its
    index: a zero-filling copy (``nbytes`` 0) reads nothing, so its address needs no guard, and
    the unguarded address keeps its loop-invariant part hoistable."""
    if not isinstance(load, E.BufferLoad) or not isinstance(load.indices[0], E.Ramp):
        return load
    ramp = load.indices[0]
    base = ramp.base
    if isinstance(base, E.Select) and _is_zero(base.false_value) and structural_equal(base.condition, cond):
        return E.BufferLoad(load.buffer, (E.Ramp(base.true_value, ramp.stride, ramp.lanes),) + load.indices[1:])
    return load


def _is_zero(e) -> bool:
    if isinstance(e, E.Broadcast):
        e = e.value
    return isinstance(e, E.IntImm) and e.value == 0


def inject_async_copy(stmt):
    """Replace the 16-byte vector stores of pipelined fills by ``cp.async`` copies."""
    return _AsyncCopy().visit(stmt)


__all__ = ["inject_pipeline", "inject_async_copy", "PIPELINE_SCOPE", "PIPELINED"]
