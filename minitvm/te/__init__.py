"""The tensor-expression language: describe *what* to compute, then schedule *how*.

The user-facing namespace: the tensors and operations of :mod:`minitvm.tensor`, the scalar
helpers of :mod:`minitvm.te.intrin`, and, from :mod:`minitvm.schedule`, ``create_schedule`` and
``decl_tensor_intrin``. It sits above ``schedule``; nothing inside minitvm below it imports it.
"""
from ..schedule import create_schedule  # noqa: F401
from ..schedule.tensor_intrin import decl_tensor_intrin  # noqa: F401
from ..tensor import (CommReducer, ComputeOp, Operation, PlaceholderOp, Tensor, comm_reducer, compute,  # noqa: F401
                      max, min, placeholder, reduce_axis, sum)
from ..tir.expr import IterVar, PrimExpr, Range, Var  # noqa: F401
from .intrin import (abs, all, any, ceil, const, exp, floor, floordiv, floormod, if_then_else, log,  # noqa: F401,A004
                     power, round, select, sigmoid, size_var, sqrt, tanh, thread_axis, var)
