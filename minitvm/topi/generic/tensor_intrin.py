"""Tensor intrinsics every backend lowers: ``dp4a`` (4-wide int8 dot product into int32; CUDA
``__dp4a``, LLVM vector multiplies and a horizontal add)."""
from __future__ import annotations

from ... import te
from ...tir import expr as E


def dp4a(name: str = "dp4a"):
    """``z[0] += sum_k int32(x[k]) * int32(y[k])`` over 4 int8 lanes, one ``__dp4a``.

    Each operand must be 4 adjacent int8 values (read as one 32-bit word); the LLVM backend
    lowers the same call to vector multiplies and a horizontal add, so int8 templates run
    (and are tested) on the CPU too.
    """
    x = te.placeholder((4,), "int8", "x")
    y = te.placeholder((4,), "int8", "y")
    k = te.reduce_axis((0, 4), "rc")
    z = te.compute((1,), lambda i: te.sum(x[k].astype("int32") * y[k].astype("int32"), axis=[k]), name="z")

    def lower_fn(ins, outs):
        xv, yv = ins[0].vload([0], 4), ins[1].vload([0], 4)
        out = outs[0]
        body = out.store(E.Call("int32", "dp4a", (xv, yv, E.const(0))))
        reset = out.store(E.const(0))
        update = out.store(E.Call("int32", "dp4a", (xv, yv, out.load())))
        return body, reset, update

    return te.decl_tensor_intrin(z.op, lower_fn, name=name)
