"""CUDA schedule for injective (element-wise, broadcast, reshape-like, layout/pad) graphs.

:func:`schedule_injective` computes every output in one kernel of its own: all output axes
fused into one loop, split over ``blockIdx.x`` x ``threadIdx.x`` (256 threads per block, fewer
for tiny tensors), optionally 4 consecutive elements per thread as one vector access
(``char4`` / ``float4`` ...) when the innermost extent is a multiple of 4 and the dtype has 1-4
bytes. Every injective producer (any compute without a reduction: ``injective,*`` ops, ``pad``,
``layout_transform``) is inlined, so a chain becomes one kernel that reads only placeholders.
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import ScheduleError
from ..generic.injective import inline_injective
from ..nn.layout import _const

MAX_THREADS = 256


def _extent(iv):
    return _const(iv.dom.extent)


def schedule_injective_from_existing(s, out, num_thread: int = MAX_THREADS, vectorize: bool = True):
    """Bind output ``out`` of schedule ``s``: fuse its axes, [vectorize 4], split over blocks x threads."""
    st = s[out]
    axes = list(st.op.axis)
    if not axes:
        raise ScheduleError(f"schedule_injective: {out.name} is 0-d; a CUDA kernel needs an axis to bind to threads")
    total = 1
    for iv in axes:
        e = _extent(iv)
        total = None if (total is None or e is None) else total * e
    fused = st.fuse(*axes) if len(axes) > 1 else axes[0]
    inner = _extent(axes[-1])
    lanes = 1
    if (vectorize and inner is not None and inner % 4 == 0 and total is not None and total >= 4 * 32
            and 1 <= dt.bits(out.dtype) // 8 <= 4 and not dt.is_bool(out.dtype)):
        lanes = 4
        fused, vi = st.split(fused, factor=4)
        st.vectorize(vi)
    if total is not None:
        work = -(-total // lanes)
        nthread = min(num_thread, max(32, -(-work // 32) * 32)) if work >= 32 else work
    else:
        nthread = num_thread
    bx, tx = st.split(fused, factor=nthread)
    st.bind(bx, te.thread_axis("blockIdx.x"))
    st.bind(tx, te.thread_axis("threadIdx.x"))
    return s


def schedule_injective(outs, num_thread: int = MAX_THREADS, vectorize: bool = True):
    """Schedule an injective graph ending in ``outs`` (a tensor or list) for CUDA.

    Each output gets one kernel; every injective producer is inlined. A producer with a
    reduction raises ScheduleError (schedule it with its own template).
    """
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    s = te.create_schedule([o.op for o in outs])
    reductions = inline_injective(s, outs)
    if reductions:
        raise ScheduleError(f"schedule_injective: {reductions[0].name} (tag {reductions[0].tag!r}) is a reduction; "
                            "use the pool / softmax / conv / dense schedule for graphs containing one")
    for o in outs:
        schedule_injective_from_existing(s, o, num_thread, vectorize)
    return s


schedule_elemwise = schedule_injective
schedule_broadcast = schedule_injective

__all__ = ["schedule_injective", "schedule_injective_from_existing", "schedule_elemwise", "schedule_broadcast"]
