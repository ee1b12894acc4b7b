"""CPU (LLVM) schedule of ``dense_int8_split_k`` (the split-K int8 dense the CUDA layout gives small
batches): the partial sums in parallel over slices, then their sum with the epilogue inlined. It
exists so that a graph laid out for CUDA also runs, bit for bit the same, on the CPU."""
from __future__ import annotations

from ... import te
from ..nn.dense import SPLIT_K_TAG
from ..utils import as_list, find_op, inline_between, reader_of


def schedule_dense_int8_split_k(outs):
    """Schedule the split-K int8 dense feeding ``outs`` for the CPU."""
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    partial = find_op(output, SPLIT_K_TAG, "schedule_dense_int8_split_k (cpu)").output(0)
    final = reader_of(output, partial, "schedule_dense_int8_split_k (cpu)").output(0)
    inline_between(s, final, output, "schedule_dense_int8_split_k (cpu)")
    if final.op is not output.op:
        s[final].compute_at(s[output], s[output].op.axis[-1])
    s[partial].parallel(s[partial].op.axis[0])
    s[output].parallel(s[output].op.axis[0])
    return s


__all__ = ["schedule_dense_int8_split_k"]
