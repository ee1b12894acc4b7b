"""x86 tensor intrinsics: ``dot_u8s8`` (4-deep uint8 x int8 dot products into ``lanes`` int32
lanes; ``vpdpbusd`` with AVX-VNNI / AVX512-VNNI, ``vpmaddubsw`` + ``vpmaddwd`` with AVX2, plain
widening multiplies elsewhere) and ``dot_i16`` (2-deep int16 dot products, one ``vpmaddwd``:
the int8 path of CPUs without VNNI), chosen by the LLVM code generator from the target's features:
see :mod:`minitvm.codegen.llvm_x86`."""
from __future__ import annotations

from ... import te
from ... import dtype as dt
from ...errors import TensorizeError
from ...tir import expr as E
from ...tir.arith import Analyzer
from ...tir.stmt import BufferStore


def _vstore(view, value, lanes: int):
    view.require_contiguous(lanes)
    return BufferStore(view.buffer, value, (E.Ramp(view.offset_of([0] * len(view.shape)), E.const(1), lanes),))


def dot_u8s8(lanes: int = 16, name: str = "dot_u8s8"):
    """``z[i] += sum_k int32(x[k]) * int32(w[i, k])``: ``x`` 4 uint8 values (broadcast to every
    lane), ``w`` a ``lanes x 4`` int8 tile stored contiguously (``OIHW[lanes]o4i`` kernels),
    ``z`` ``lanes`` int32 accumulators. Exact (the AVX2 lowering is saturation-free)."""
    return _dot_intrin("dot_u8s8", "uint8", "int8", 4, lanes, name)


def dot_i16(lanes: int = 8, name: str = "dot_i16"):
    """``z[i] += sum_k int32(x[k]) * int32(w[i, k])``: ``x`` 2 int16 values (one 32-bit word
    broadcast to every lane), ``w`` a ``lanes x 2`` int16 tile stored contiguously (``OIHW[lanes]o2i``
    kernels), ``z`` ``lanes`` int32 accumulators; one ``vpmaddwd`` per 8 lanes on AVX2. Exact for
    int8 or uint8 data widened to int16 and int8 weights, with no offset."""
    return _dot_intrin("dot_i16", "int16", "int16", 2, lanes, name)


def _dot_intrin(call: str, x_dtype: str, w_dtype: str, depth: int, lanes: int, name: str):
    """The intrinsic ``name``: ``depth``-deep dot products of ``x`` (broadcast) with each row of a
    contiguous ``lanes x depth`` weight tile into ``lanes`` int32 accumulators, lowered to the
    code generator's call ``call(x, w, acc)``."""
    x = te.placeholder((depth,), x_dtype, "x")
    w = te.placeholder((lanes, depth), w_dtype, "w")
    k = te.reduce_axis((0, depth), "rk")
    z = te.compute((lanes,), lambda i: te.sum(x[k].astype("int32") * w[i, k].astype("int32"), axis=[k]), name="z")

    def lower_fn(ins, outs):
        xin, win = ins
        out = outs[0]
        if not E.is_const_int(Analyzer().simplify(win.strides[0]), depth):
            raise TensorizeError(f"{name}: the {lanes} x {depth} weight tile of {win.buffer.name} must be contiguous "
                                 f"(row stride {win.strides[0]}, not {depth}); pack the kernel as OIHW{lanes}o{depth}i")
        xv, wv = xin.vload([0], depth), win.vload([0, 0], depth * lanes)
        acc_t = dt.with_lanes("int32", lanes)
        zero = E.Broadcast(E.const(0), lanes)
        body = _vstore(out, E.Call(acc_t, call, (xv, wv, zero)), lanes)
        reset = _vstore(out, zero, lanes)
        update = _vstore(out, E.Call(acc_t, call, (xv, wv, out.vload([0], lanes))), lanes)
        return body, reset, update

    return te.decl_tensor_intrin(z.op, lower_fn, name=name)


__all__ = ["dot_u8s8", "dot_i16"]
