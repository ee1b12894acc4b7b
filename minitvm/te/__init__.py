"""The tensor-expression language: describe *what* to compute, then schedule *how*."""
from ..tir.expr import IterVar, PrimExpr, Range, Var  # noqa: F401
from .intrin import (abs, all, any, ceil, const, exp, floor, floordiv, floormod, if_then_else, log,  # noqa: F401,A004
                     power, round, select, sigmoid, size_var, sqrt, tanh, thread_axis, var)
from .tensor import (CommReducer, ComputeOp, Operation, PlaceholderOp, Tensor, comm_reducer, compute,  # noqa: F401
                     max, min, placeholder, reduce_axis, sum)


def create_schedule(ops):
    """A default schedule (every stage a plain loop nest, computed at root) for ``ops``."""
    from ..schedule import create_schedule as _create
    return _create(ops)


def decl_tensor_intrin(op, lower_fn, name: str = "tensor_intrin", binds=None):
    """Declare a tensor intrinsic: ``op`` states its semantics, ``lower_fn`` emits its code."""
    from ..schedule.tensor_intrin import decl_tensor_intrin as _decl
    return _decl(op, lower_fn, name=name, binds=binds)
