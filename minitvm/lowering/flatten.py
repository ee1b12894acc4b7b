"""Storage flattening: tensors become buffers, multi-dimensional indices become one offset.

A realized region ``[min, min + extent)`` of a tensor is allocated with the region's extents
(plus ``storage_align`` padding) and indexed relative to ``min``.
"""
from __future__ import annotations

from ..errors import LoweringError
from ..tir import expr as E
from ..tir.arith import simplify
from ..tir.functor import Mutator
from ..tir.stmt import Allocate, AttrStmt, Buffer, BufferStore
from ..tir.transform.async_pipeline import PIPELINE_SCOPE
from ..tir.transform.double_buffer import DOUBLE_BUFFER_SCOPE
from .tensorize import Tensorized, emit_intrinsic


class _Flatten(Mutator):
    def __init__(self, sch, params: dict, align: dict):
        self.sch = sch
        self.buffers = dict(params)          # (stage, value_index) -> (Buffer, mins, strides)
        self.align = align                   # stage -> {dim: (factor, offset)}

    def _key(self, tensor):
        st = self.sch.stage_map.get(tensor.op)
        return (st, tensor.value_index)

    def _lookup(self, tensor):
        entry = self.buffers.get(self._key(tensor))
        if entry is None:
            raise LoweringError(
                f"tensor {tensor.name} is used by the computation but is neither computed inside it nor "
                "passed as an argument; add it to the argument list of lower/build")
        return entry

    def _offset(self, tensor, indices):
        buf, mins, strides = self._lookup(tensor)
        off = None
        for i, m, s in zip(indices, mins, strides):
            term = E.Mul(E.Sub(i, m) if not E.is_const_int(m, 0) else i, s)
            off = term if off is None else E.Add(off, term)
        return buf, (off if off is not None else E.const(0))

    def visit_ProducerRealize(self, node):
        st = self.sch.stage_map.get(node.producer.op)
        extents = [r.extent for r in node.bounds]
        strides = dense_strides(extents, self.align.get(st, {}))
        size = E.Mul(strides[0], extents[0]) if extents else E.const(1)
        size = simplify(size)
        buf = Buffer(node.producer.name, (size,), node.producer.dtype, node.scope)
        self.buffers[(st, node.producer.value_index)] = (buf, [r.min for r in node.bounds], strides)
        body = self.visit(node.body)
        if st is not None and st.double_buffer_:
            return AttrStmt(buf, DOUBLE_BUFFER_SCOPE, E.const(1), Allocate(buf, body))
        if st is not None and st.pipeline_:
            return AttrStmt(buf, PIPELINE_SCOPE, E.const(st.pipeline_), Allocate(buf, body))
        return Allocate(buf, body)

    def visit_Tensorized(self, node):
        node = Tensorized(node.info, tuple(self.visit(m) for m in node.mins))
        return emit_intrinsic(node, self._lookup)

    def visit_ProducerStore(self, node):
        buf, off = self._offset(node.producer, [self.visit(i) for i in node.indices])
        return BufferStore(buf, self.visit(node.value), (off,))

    def visit_ProducerLoad(self, node):
        buf, off = self._offset(node.producer, [self.visit(i) for i in node.indices])
        return E.BufferLoad(buf, (off,))


def dense_strides(extents, align: dict | None = None) -> list:
    """Row-major strides of ``extents``; ``align[dim] = (factor, offset)`` pads that dim's stride."""
    strides = [None] * len(extents)
    acc = E.const(1)
    for k in reversed(range(len(extents))):
        if align and k in align:
            factor, offset = align[k]
            acc = simplify(acc)
            if not isinstance(acc, E.IntImm):
                raise LoweringError(f"storage_align needs a constant stride, got {acc}")
            v = acc.value
            while v % factor != offset:
                v += 1
            acc = E.const(v)
        strides[k] = simplify(acc)
        acc = E.Mul(acc, extents[k])
    return strides


def flatten(stmt, sch, params: dict):
    """Replace tensor realizations/reads/writes by buffers with flat indices.

    ``params`` maps (stage, value_index) -> Buffer for the function's arguments.
    """
    entries = {}
    for key, buf in params.items():
        entries[key] = (buf, [E.const(0)] * buf.ndim, dense_strides(list(buf.shape)))
    align = {st: st.storage_align_ for st in sch.stages if st.storage_align_}
    return _Flatten(sch, entries, align).visit(stmt)
