"""``lower``: schedule -> ``PrimFunc`` (loop nest, flat buffers, simplified)."""
from __future__ import annotations

from ..errors import LoweringError
from ..te.tensor import ComputeOp, PlaceholderOp, Tensor
from ..tir.functor import Visitor
from .schedule_ops import NestBuilder
from ..tir.stmt import Buffer, PrimFunc
from ..tir.transform.double_buffer import inject_double_buffer
from .flatten import flatten
from ..tir.transform.lower_intrin import lower_if_then_else
from ..tir.transform.simplify import simplify_stmt
from ..tir.transform.unroll import unroll_loops
from ..tir.transform.vectorize import vectorize_loops


def lower(sch, args, name: str = "main", simple_mode: bool = False, explicit_unroll: bool = True):
    """Lower schedule ``sch`` to a :class:`PrimFunc` taking the tensors ``args`` in order.

    ``args`` must list every input placeholder and every output (symbolic dimensions are taken
    from their shapes). ``simple_mode`` only affects how the result prints: the body alone.
    """
    from ..schedule.schedule import Schedule
    if not isinstance(sch, Schedule):
        raise LoweringError(f"lower: expected a schedule from te.create_schedule, got {type(sch).__name__}")
    if not isinstance(args, (list, tuple)):
        raise LoweringError("lower: args must be a list of tensors")
    params = {}
    buffers = []
    for k, t in enumerate(args):
        if not isinstance(t, Tensor):
            raise LoweringError(f"lower: argument {k} is a {type(t).__name__}, not a tensor")
        st = sch.stage_map.get(t.op)
        if st is None:
            raise LoweringError(f"lower: argument {t.name} is not part of this schedule")
        key = (st, t.value_index)
        if key in params:
            raise LoweringError(f"lower: tensor {t.name} is passed twice")
        if isinstance(st.op, ComputeOp) and not st.is_output and st.attach_type != "root":
            raise LoweringError(f"lower: argument {t.name} is computed inside another stage; it cannot be an argument")
        buf = Buffer(t.name, t.shape, t.dtype, "global")
        params[key] = buf
        buffers.append(buf)
    for st in sch.stages:
        if st.is_output and (st, 0) not in params:
            raise LoweringError(f"lower: output {st.name} must be in the argument list")
        if isinstance(st.op, PlaceholderOp) and (st, 0) not in params and _is_read(sch, st):
            raise LoweringError(f"lower: input {st.name} is read but not in the argument list")
    builder = NestBuilder(sch)
    stmt = builder.build()
    stmt = flatten(stmt, sch, params)
    stmt = inject_double_buffer(stmt)
    stmt = lower_if_then_else(stmt)
    stmt = simplify_stmt(stmt)
    stmt = vectorize_loops(stmt)
    stmt = unroll_loops(stmt, explicit=explicit_unroll)
    stmt = simplify_stmt(stmt)
    shape_vars = []
    for b in buffers:
        for s in b.shape:
            for v in _vars(s):
                if v not in shape_vars:
                    shape_vars.append(v)
    return PrimFunc(name, tuple(buffers), stmt, {"shape_vars": tuple(shape_vars), "simple_mode": simple_mode})


def _is_read(sch, st) -> bool:
    t = st.op.output(0)
    return any(isinstance(o.op, ComputeOp) and o.attach_type != "inline" and t in o.op.input_tensors
               for o in sch.stages) or any(
        isinstance(o.op, ComputeOp) and t in o.op.input_tensors for o in sch.stages)


def _vars(e) -> list:
    out = []

    class _V(Visitor):
        def visit_Var(self, n):
            if n not in out:
                out.append(n)

        visit_SizeVar = visit_Var

    _V().visit(e)
    return out
