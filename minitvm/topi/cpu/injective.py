"""CPU (LLVM) schedules for injective graphs, pooling, global pooling and softmax.

* :func:`schedule_injective`: every injective producer (``injective,*`` ops, ``pad``,
  ``layout_transform``; any compute without a reduction) is inlined; each output's outer
  axes are fused into one ``parallel`` loop and the innermost axis is vectorized (8 lanes
  when its extent allows, the whole axis when it is at most 16 long).
* :func:`schedule_pool`, :func:`schedule_global_pool`, :func:`schedule_softmax`: padding and
  element-wise epilogues inlined; the output's data-parallel axes fused into one ``parallel``
  loop; each reduction (window max/sum, global sum, softmax row max and exp-sum) is computed
  per output element / row into a ``local`` scalar at that loop, the softmax axis looping
  inside it.

(They live together here because the graph executor needs all of them for whole CNNs, and
they share the structure "inline what is element-wise, parallelize the outer loop".)
"""
from __future__ import annotations

from ... import dtype as dt
from ... import te
from ...errors import ScheduleError
from ...te.tensor import ComputeOp
from ..cuda.injective import inline_injective
from ..nn.layout import _const

VECTOR_BYTES = 32   # AVX2


def _outs(outs):
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def schedule_injective_from_existing(s, out):
    """Parallelize and vectorize output ``out`` of schedule ``s`` (its producers untouched)."""
    st = s[out]
    axes = list(st.op.axis)
    if len(axes) > 1:
        outer = st.fuse(*axes[:-1]) if len(axes) > 2 else axes[0]
        st.parallel(outer)
    last = axes[-1]
    ext = _const(last.dom.extent)
    if ext is None or dt.is_bool(out.dtype):
        return s
    lanes = max(4, VECTOR_BYTES // max(1, dt.bits(out.dtype) // 8))
    lanes = min(lanes, 16)
    if ext % lanes == 0 and ext > lanes:
        lo, li = st.split(last, factor=lanes)
        st.vectorize(li)
        if len(axes) == 1:
            st.parallel(lo)
    elif 2 <= ext <= 16:
        st.vectorize(last)
    elif len(axes) == 1:
        lo, _ = st.split(last, factor=64)
        st.parallel(lo)
    return s


def schedule_injective(outs):
    """Schedule an injective graph ending in ``outs`` for the CPU (producers inlined)."""
    outs = _outs(outs)
    s = te.create_schedule([o.op for o in outs])
    reductions = inline_injective(s, outs)
    if reductions:
        raise ScheduleError(f"schedule_injective: {reductions[0].name} (tag {reductions[0].tag!r}) is a reduction; "
                            "use the pool / softmax / conv / dense schedule for graphs containing one")
    for o in outs:
        schedule_injective_from_existing(s, o)
    return s


schedule_elemwise = schedule_injective
schedule_broadcast = schedule_injective


def schedule_reduce_per_output(s, out, serial_axes=()):
    """In ``s``: inline injective ops feeding ``out``; fuse ``out``'s data axes but
    ``serial_axes`` into one parallel loop and compute every reduction feeding it at that loop
    (one element / row per iteration) in ``local`` scope."""
    reductions = inline_injective(s, [out])
    if out.op in reductions:
        reductions.remove(out.op)
        local = s.cache_write(out, "local")
        reductions.append(local.op)
    st = s[out]
    axes = list(st.op.axis)
    serial = [axes[k] for k in serial_axes]
    par = [a for k, a in enumerate(axes) if k not in serial_axes]
    if serial:
        st.reorder(*(par + serial))
    if par:
        at = st.fuse(*par) if len(par) > 1 else par[0]
        st.parallel(at)
    else:
        at, _ = st.split(serial[0], nparts=1)
    for op in reductions:
        s[op].compute_at(st, at)
        s[op].set_scope("local")
    return s


def _check(out, tags, what):
    stack, seen = [out.op], set()
    while stack:
        op = stack.pop()
        if op in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(op)
        if op.tag in tags:
            return op
        stack.extend(t.op for t in op.input_tensors)
    raise ScheduleError(f"{what}: no op tagged {' / '.join(tags)} feeds {out.name}")


def schedule_pool(outs, layout: str = "NCHW"):
    """CPU schedule of ``max_pool2d`` / ``avg_pool2d`` (padding and epilogues inlined)."""
    outs = _outs(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        _check(o, ("pool_max", "pool_sum"), "schedule_pool")
        schedule_reduce_per_output(s, o)
    return s


def schedule_global_pool(outs, layout: str = "NCHW"):
    """CPU schedule of ``global_max_pool2d`` / ``global_avg_pool2d`` (epilogues inlined)."""
    outs = _outs(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        _check(o, ("pool_global_max", "pool_global_sum"), "schedule_global_pool")
        schedule_reduce_per_output(s, o)
    return s


def schedule_softmax(outs):
    """CPU schedule of ``softmax`` / ``log_softmax``: rows in parallel, one pass per reduction."""
    outs = _outs(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        sm = _check(o, ("softmax_output", "log_softmax_output"), "schedule_softmax")
        if [str(d) for d in o.shape] != [str(d) for d in sm.shape]:
            raise ScheduleError(f"schedule_softmax: the output {o.name} must have the softmax's shape (only "
                                "element-wise epilogues can be fused)")
        schedule_reduce_per_output(s, o, serial_axes=(sm.attrs["axis"],))
    return s


__all__ = ["schedule_injective", "schedule_injective_from_existing", "schedule_pool", "schedule_global_pool",
           "schedule_softmax", "schedule_reduce_per_output", "schedule_elemwise", "schedule_broadcast"]
