"""Tensor intrinsics: a small computation (its semantics as a ``te.compute``) and the code
that performs it in one step (``__dp4a``, ``mma.sync`` ...), used by ``s[T].tensorize``."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ScheduleError
from ..tensor import ComputeOp, PlaceholderOp, Tensor
from ..tir.stmt import Buffer


@dataclass(frozen=True, eq=False)
class TensorIntrin:
    """``op`` declares what the intrinsic computes; ``lower_fn(ins, outs)`` returns its code.

    ``ins``/``outs`` given to ``lower_fn`` are :class:`~minitvm.tir.Buffer` views (with element
    offset and strides) of the regions the tensorized loop nest reads and writes.
    """

    name: str
    op: ComputeOp
    inputs: tuple
    buffers: dict
    lower_fn: object

    def __repr__(self):
        return f"TensorIntrin({self.name})"


def decl_tensor_intrin(op, lower_fn, name: str = "tensor_intrin", binds=None) -> TensorIntrin:
    """Declare a tensor intrinsic from its compute ``op`` and code generator ``lower_fn``.

    ``binds`` optionally maps the op's input/output tensors to Buffers (to fix scope,
    strides or offsets); otherwise dense global buffers are assumed.
    """
    if isinstance(op, Tensor):
        op = op.op
    if not isinstance(op, ComputeOp):
        raise ScheduleError(f"decl_tensor_intrin {name}: op must be a te.compute operation, got {op!r}")
    if not callable(lower_fn):
        raise ScheduleError(f"decl_tensor_intrin {name}: lower_fn must be callable")
    inputs = tuple(op.input_tensors)
    for t in inputs:
        if not isinstance(t.op, PlaceholderOp):
            raise ScheduleError(
                f"decl_tensor_intrin {name}: input {t.name} must be a te.placeholder (the intrinsic's operand)")
    buffers = {}
    binds = dict(binds or {})
    for t in list(inputs) + [op.output(i) for i in range(op.num_outputs)]:
        buf = binds.get(t)
        if buf is None:
            buf = Buffer(t.name, t.shape, t.dtype, "global")
        elif not isinstance(buf, Buffer):
            raise ScheduleError(f"decl_tensor_intrin {name}: binds[{t.name}] must be a tir.Buffer")
        buffers[t] = buf
    return TensorIntrin(name, op, inputs, buffers, lower_fn)
