"""CPU (LLVM) schedule of the int8 GEMMs of :mod:`minitvm.topi.nn.conv2d_gemm` (the NHWC implicit-GEMM
conv2d the tensor-core layout produces, and dense).

The GEMM stage ``gemm[N / 8, M, 8]`` is computed at the root into a scratch buffer (the im2col view
inlined into it), blocks of 8 output columns in parallel and vectorized along the 8 columns; the
output stage reads it back with the element-wise epilogue inlined. It exists so that a graph laid
out for the tensor cores also runs, bit for bit the same, on the CPU; it is not tuned for speed.
"""
from __future__ import annotations

from ... import te
from ..nn.conv2d_gemm import GEMM_TAG
from ..utils import as_list, find_op, inline_between, reader_of


def schedule_int8_gemm(outs):
    """Schedule the int8 GEMM feeding ``outs`` for the CPU."""
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    gemm = find_op(output, GEMM_TAG, "schedule_int8_gemm (cpu)").output(0)
    A = gemm.op.input_tensors[0]
    s[A].compute_inline()
    remap = reader_of(output, gemm, "schedule_int8_gemm (cpu)")
    inline_between(s, remap.output(0), output, "schedule_int8_gemm (cpu)")
    if remap is not output.op:
        s[remap].compute_inline()
    nb, m, ni = s[gemm].op.axis
    s[gemm].reorder(nb, m, *s[gemm].op.reduce_axis, ni)
    s[gemm].parallel(nb)
    s[gemm].vectorize(ni)
    s[output].parallel(s[output].op.axis[0])
    return s


__all__ = ["schedule_int8_gemm"]
