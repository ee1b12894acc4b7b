"""The batched matmul's schedule, the same on every target but for how one output's reduction
is scheduled."""
from __future__ import annotations

from ... import te
from ..utils import as_list, find_op


def schedule_batch_matmul(outs, schedule_reduce_per_output):
    """Schedule a batched ``topi.nn.matmul`` (tag ``batch_matmul``, epilogues inlined) feeding
    ``outs``: each output's dot products by the target's ``schedule_reduce_per_output(s, out)``."""
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, ("batch_matmul",), "schedule_batch_matmul")
        schedule_reduce_per_output(s, o)
    return s
