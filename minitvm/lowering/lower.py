"""``lower``: schedule -> loop nest -> flat buffers -> the target's pass pipeline."""
from __future__ import annotations

from ..errors import LoweringError
from ..schedule.schedule import Schedule
from ..tensor import ComputeOp, PlaceholderOp, Tensor
from ..tir.functor import Visitor
from ..tir.limits import deep_recursion
from ..tir.stmt import Buffer, PrimFunc
from .flatten import flatten
from .pipeline import dump_requested, pipeline, print_step, run_passes
from .schedule_ops import NestBuilder


@deep_recursion("lower")
def lower(sch, args, name: str = "main", target="llvm", simple_mode: bool = False, dump: bool | None = None):
    """Lower schedule ``sch`` for ``target`` into a function taking the tensors ``args`` in order.

    ``args`` must list every input placeholder and every output (symbolic dimensions are taken
    from their shapes). The schedule becomes a loop nest with flat buffers, then runs the
    target's pass list (:func:`~minitvm.lowering.pipeline.pipeline`): the result is a
    :class:`~minitvm.tir.stmt.PrimFunc` for ``llvm`` and a :class:`~minitvm.tir.device.DeviceFunc`
    (split kernels) for ``cuda``. ``simple_mode`` only affects how a PrimFunc prints: the body
    alone. ``dump=True`` (or ``MINITVM_DUMP_IR=1``) prints the IR after every step.
    """
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
    dump = dump_requested(dump)
    stmt = NestBuilder(sch).build()
    if dump:
        print_step("schedule_ops", stmt)
    stmt = flatten(stmt, sch, params)
    if dump:
        print_step("flatten", stmt)
    shape_vars = []
    for b in buffers:
        for s in b.shape:
            for v in _vars(s):
                if v not in shape_vars:
                    shape_vars.append(v)
    func = PrimFunc(name, tuple(buffers), stmt, {"shape_vars": tuple(shape_vars), "simple_mode": simple_mode})
    return run_passes(func, pipeline(target), dump)


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
