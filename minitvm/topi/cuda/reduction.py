"""CUDA schedules for pooling, global pooling and softmax: one thread per output element / row.

All three use :func:`schedule_reduce_per_output`: the output's data-parallel axes are fused
and split over ``blockIdx.x`` x ``threadIdx.x``; every reduction feeding the output (the
window max/sum of a pool, the row max and exp-sum of a softmax) is computed by that thread
into registers (``compute_at`` the thread loop, ``local`` scope); every injective op is
inlined — the pool's padding and the softmax's ``exp`` on the input side, element-wise
epilogues (the average's division, requantize, relu, casts, layout transforms of the same
shape) on the output side. So a pooling layer with its epilogue is one kernel.

Performance notes: pools are memory-bound and one thread per output reads its window
straight from global memory (neighbouring threads read neighbouring windows, so reads are
mostly coalesced and cached). Softmax runs one thread per row (``max``, ``sum(exp)`` and the
normalized row all by that thread): fine for class counts around 1000 at small batch, not a
fast kernel for long rows with few of them (a block-per-row tree reduction would be).
"""
from __future__ import annotations

from ... import te
from ..utils import as_list, find_op
from ...errors import ScheduleError
from ..nn.layout import _const
from ..generic.injective import inline_injective
from .injective import MAX_THREADS

_POOL_TAGS = ("pool_max", "pool_sum")
_GLOBAL_POOL_TAGS = ("pool_global_max", "pool_global_sum")
_SOFTMAX_TAGS = ("softmax_output", "log_softmax_output")




def split_fuse_threads(s, out, axes, extents=None, num_thread=MAX_THREADS):
    """Spread ``axes`` (data axes of ``out``, outer to inner, adjacent in the loop order; their
    ``extents`` as ints or None when symbolic, default: from the axes' domains) over
    ``blockIdx.x`` x ``threadIdx.x`` without splitting a fused loop; returns the thread loop.

    The innermost axes whose extents multiply to at most ``num_thread`` go to the threads;
    the next axis is split (preferably by a divisor) so the threads get its inner part and the
    blocks its outer part together with every axis further out. (Fusing first and splitting
    the fused loop would be simpler, but bound inference then relaxes the region of stages
    computed at the thread loop to the whole tensor: see the module docstring.)
    """
    st = s[out]
    axes = list(axes)
    if extents is None:
        extents = [_const(a.dom.extent) for a in axes]
    prod, k = 1, len(axes)
    while k > 0:
        e = extents[k - 1]
        if e is None or prod * e > num_thread:
            break
        prod *= e
        k -= 1
    block_axes, thread_axes = axes[:k], axes[k:]
    if block_axes and (prod < num_thread // 2 or not thread_axes):
        e = extents[k - 1]
        room = max(1, num_thread // prod)
        if e is not None:
            n = e
            divs = [d for d in range(1, min(n, room) + 1) if n % d == 0]
            factor = divs[-1] if divs[-1] * 2 > min(n, room) else min(n, room)
        else:
            factor = room
        if factor > 1:
            outer, inner = st.split(block_axes[-1], factor=factor)
            block_axes[-1] = outer
            thread_axes = [inner] + thread_axes
    if not block_axes:
        block, _ = st.split(thread_axes[0], nparts=1)
        thread_axes[0] = _
        block_axes = [block]
    bx = st.fuse(*block_axes) if len(block_axes) > 1 else block_axes[0]
    tx = st.fuse(*thread_axes) if len(thread_axes) > 1 else thread_axes[0]
    st.bind(bx, te.thread_axis("blockIdx.x"))
    st.bind(tx, te.thread_axis("threadIdx.x"))
    return tx


def _bind_threads(s, out, serial_axes=(), num_thread=MAX_THREADS):
    """Spread ``out``'s data axes (except ``serial_axes``, moved innermost and left as loops)
    over blocks x threads; returns the thread loop."""
    st = s[out]
    axes = list(st.op.axis)
    serial = [axes[k] for k in serial_axes]
    par = [a for k, a in enumerate(axes) if k not in serial_axes]
    if serial:
        st.reorder(*(par + serial))
    if not par:
        outer, inner = st.split(serial[0], nparts=1)
        st.bind(outer, te.thread_axis("threadIdx.x"))
        return outer
    return split_fuse_threads(s, out, par, num_thread=num_thread)


def schedule_reduce_per_output(s, out, serial_axes=(), num_thread: int = MAX_THREADS):
    """In schedule ``s``: inline injective ops feeding ``out``; compute each reduction per
    thread (registers) at the thread loop of ``out``, whose data axes (but ``serial_axes``,
    looped inside the thread) are spread one element per thread."""
    reductions = inline_injective(s, [out])
    if out.op in reductions:
        reductions.remove(out.op)
        local = s.cache_write(out, "local")
        reductions.append(local.op)
    tx = _bind_threads(s, out, serial_axes, num_thread)
    for op in reductions:
        for r in inline_injective(s, [op.output(0)]):
            if r is not op and r not in reductions:
                raise ScheduleError(f"schedule: {r.name} (tag {r.tag!r}) is a reduction feeding another reduction "
                                    f"{op.name}; this schedule handles only one reduction stage per chain")
        s[op].compute_at(s[out], tx)
        s[op].set_scope("local")
    return s


def schedule_pool(outs, layout: str = "NCHW"):
    """Schedule ``max_pool2d`` / ``avg_pool2d`` (padding and epilogues inlined) for CUDA.

    One thread per output element loops over its window. ``layout`` is accepted for API
    symmetry with TVM; any layout works.
    """
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, _POOL_TAGS, "schedule_pool")
        schedule_reduce_per_output(s, o)
    return s


def schedule_global_pool(outs, layout: str = "NCHW"):
    """Schedule ``global_max_pool2d`` / ``global_avg_pool2d`` (epilogues inlined) for CUDA.

    One thread per (n, channel) reduces all of H x W.
    """
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, _GLOBAL_POOL_TAGS, "schedule_global_pool")
        schedule_reduce_per_output(s, o)
    return s


def schedule_adaptive_pool(outs, layout: str = "NCHW"):
    """Alias of :func:`schedule_global_pool` (global pooling is adaptive pooling to 1 x 1)."""
    return schedule_global_pool(outs, layout)


def schedule_reduce(outs):
    """Schedule ``topi.nn.reduction.reduce`` (with element-wise epilogues) for CUDA: one thread per
    output element computes its reductions in registers."""
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, ("reduce_output",), "schedule_reduce")
        if o.ndim == 0:
            raise ScheduleError(f"schedule_reduce: {o.name} is 0-d; a CUDA kernel needs an axis to bind to threads "
                                "(reduce with keepdims)")
        schedule_reduce_per_output(s, o)
    return s


def schedule_softmax(outs):
    """Schedule ``softmax`` / ``log_softmax`` (with element-wise epilogues) for CUDA.

    One thread per row: it computes the row's max and sum of exponentials in registers,
    then writes the row. Rows are all indices but the softmax axis.
    """
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        sm = find_op(o, _SOFTMAX_TAGS, "schedule_softmax")
        if tuple(o.shape) != tuple(sm.shape) and [str(d) for d in o.shape] != [str(d) for d in sm.shape]:
            raise ScheduleError(f"schedule_softmax: the output {o.name} must have the softmax's shape (only "
                                "element-wise epilogues can be fused)")
        schedule_reduce_per_output(s, o, serial_axes=(sm.attrs["axis"],))
    return s


__all__ = ["schedule_pool", "schedule_global_pool", "schedule_adaptive_pool", "schedule_reduce", "schedule_softmax",
           "schedule_reduce_per_output"]
