"""CUDA-only tensor intrinsics: the int8 tensor cores (``mma.sync.aligned.m16n8k32`` and the
``ldmatrix`` fragment loads and accumulator stores around it). ``dp4a``, which the CPU backend
lowers too, is in :mod:`minitvm.topi.generic.tensor_intrin`.
"""
from __future__ import annotations

from ... import te
from ...errors import TensorizeError
from ...tir import expr as E
from ...tir.stmt import Buffer, Evaluate, seq

# ------------------------------------------------------------------------------------------
# int8 tensor cores (sm_80+): mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32
#
# A warp computes a 16 x 8 int32 tile C += A (16 x 32) . B^T (8 x 32). The operands live in
# "warp" fragment buffers: a warp's tile of S elements, each lane holding S / 32 of them in its
# registers, laid out as the PTX ISA's mma.m16n8k32 fragments. Only these intrinsics touch
# fragments: ldmatrix fills A and B from shared memory, mma accumulates, store_acc writes C out.
# Each fragment tile must be contiguous in its buffer (the lane's slice is elem_offset / 32).
# ------------------------------------------------------------------------------------------
MMA_M, MMA_N, MMA_K = 16, 8, 32


def _call(name: str, *args):
    return Evaluate(E.Call("int32", "call_extern", (E.StringImm(name),) + tuple(args)))


def _fragment(view, what: str, intrin: str):
    """The address of a fragment tile, which must be a dense warp-scope tile."""
    if view.scope != "warp":
        raise TensorizeError(f"{intrin}: {what} ({view.buffer.name}) must be a warp fragment (scope 'warp'), "
                             f"not {view.scope!r}")
    dense = 1
    for dim, stride in reversed(list(zip(view.shape, view.strides))):
        if not E.is_const_int(stride, dense):
            raise TensorizeError(f"{intrin}: fragment {view.buffer.name} must hold each tile contiguously "
                                 f"(strides {[str(s) for s in view.strides]})")
        dense *= int(dim.value)
    return E.address_of(view.load(), "rw" if what == "accumulator" else ("w" if what == "destination" else "r"))


def _row_stride(view, intrin: str, align: int):
    """The row stride of a 2-D shared/global tile with unit inner stride."""
    if view.scope == "warp":
        raise TensorizeError(f"{intrin}: {view.buffer.name} must be in shared or global memory, not a fragment")
    if not E.is_const_int(view.strides[-1], 1):
        raise TensorizeError(f"{intrin}: the rows of {view.buffer.name} must be contiguous")
    stride = view.strides[0]
    if isinstance(stride, E.IntImm) and stride.value % align:
        raise TensorizeError(f"{intrin}: rows of {view.buffer.name} are {stride.value} elements apart; they must "
                             f"start on {align}-element boundaries")
    return stride


def _ldmatrix(rows: int, fn: str, name: str):
    src = te.placeholder((rows, MMA_K), "int8", "src")
    dst = te.compute((rows, MMA_K), lambda i, k: src[i, k], name="dst")

    def lower_fn(ins, outs):
        (s,), (d,) = ins, outs
        if s.scope not in ("shared", "shared.dyn"):
            raise TensorizeError(f"{name}: ldmatrix reads shared memory; {s.buffer.name} is {s.scope!r}")
        stride = _row_stride(s, name, 16)
        return _call(fn, _fragment(d, "destination", name), E.address_of(s.load(), "r"), stride)

    return te.decl_tensor_intrin(dst.op, lower_fn, name=name)


def ldmatrix_a(name: str = "ldmatrix_a"):
    """Load a 16 x 32 int8 A tile (rows m, contiguous k) from shared memory into a warp fragment
    (``ldmatrix.sync.aligned.m8n8.x4.shared.b16``). Rows must start on 16-byte boundaries."""
    return _ldmatrix(MMA_M, "mt_ldmatrix_a", name)


def ldmatrix_b(name: str = "ldmatrix_b"):
    """Load an 8 x 32 int8 B tile (rows n, contiguous k: B transposed, as weights are stored) from
    shared memory into a warp fragment (``ldmatrix ... .x2``)."""
    return _ldmatrix(MMA_N, "mt_ldmatrix_b", name)


def ldmatrix_b16(name: str = "ldmatrix_b16"):
    """Load two 8 x 32 int8 B tiles (16 rows n, contiguous k) from shared memory into two
    consecutive warp fragments with one ``ldmatrix ... .x4``."""
    return _ldmatrix(2 * MMA_N, "mt_ldmatrix_b16", name)


def mma_s8(name: str = "mma_s8"):
    """``c[i, j] += sum_k a[i, k] * b[j, k]`` in int32 over a 16 x 8 x 32 tile, one warp-wide
    ``mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32``; its reset zeroes the accumulators."""
    a = te.placeholder((MMA_M, MMA_K), "int8", "a")
    b = te.placeholder((MMA_N, MMA_K), "int8", "b")
    k = te.reduce_axis((0, MMA_K), "k")
    c = te.compute((MMA_M, MMA_N), lambda i, j: te.sum(a[i, k].astype("int32") * b[j, k].astype("int32"), axis=[k]),
                   name="c")

    def lower_fn(ins, outs):
        (x, y), (z,) = ins, outs
        acc = _fragment(z, "accumulator", name)
        update = _call("mt_mma_s8", acc, _fragment(x, "operand", name), _fragment(y, "operand", name))
        reset = _call("mt_zero_acc", E.address_of(z.load(), "w"))
        return seq(reset, update), reset, update

    binds = {t: Buffer(t.name, t.shape, t.dtype, "warp") for t in (a, b, c)}
    return te.decl_tensor_intrin(c.op, lower_fn, name=name, binds=binds)


def store_acc(name: str = "store_acc"):
    """Write a 16 x 8 int32 accumulator fragment to shared or global memory (row stride even)."""
    src = te.placeholder((MMA_M, MMA_N), "int32", "src")
    dst = te.compute((MMA_M, MMA_N), lambda i, j: src[i, j], name="dst")

    def lower_fn(ins, outs):
        (s,), (d,) = ins, outs
        stride = _row_stride(d, name, 2)
        return _call("mt_store_acc", E.address_of(d.load(), "w"), stride, _fragment(s, "operand", name))

    return te.decl_tensor_intrin(dst.op, lower_fn, name=name)
