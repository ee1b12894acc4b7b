"""CPU (LLVM) schedules for injective graphs, pooling, global pooling and softmax.

* :func:`schedule_injective`: every injective producer (``injective,*`` ops, ``pad``,
  ``layout_transform``; any compute without a reduction) is inlined; each output's outer
  axes are fused into one ``parallel`` loop and the innermost axis is vectorized (8 lanes
  when its extent allows, the whole axis when it is at most 16 long).
* :func:`schedule_pool`, :func:`schedule_global_pool`, :func:`schedule_reduce` (ONNX's
  Reduce*), :func:`schedule_softmax`: padding and
  element-wise epilogues inlined; each reduction (window max/sum, global sum, softmax row max
  and exp-sum) is computed into ``local`` storage per block of up to 8 outputs along the
  innermost non-trivial axis (vectorized), or per row for softmax (the softmax axis looping
  inside), at one ``parallel`` loop over the rest (see :func:`schedule_reduce_per_output`).

(They live together here because the graph executor needs all of them for whole CNNs, and
they share the structure "inline what is element-wise, parallelize the outer loop".)
"""
from __future__ import annotations

from ... import dtype as dt
from ..utils import as_list, find_op
from ... import te
from ...errors import ScheduleError
from ..generic.injective import inline_injective
from ..nn.layout import _const

VECTOR_BYTES = 32   # AVX2



def schedule_injective_from_existing(s, out):
    """Parallelize and vectorize output ``out`` of schedule ``s`` (its producers untouched)."""
    st = s[out]
    axes = list(st.op.axis)
    if not axes:   # a 0-d output: one element, nothing to parallelize
        return s
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
    outs = as_list(outs)
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
    """In ``s``: inline injective ops feeding ``out`` and compute each reduction feeding it
    per block of outputs, in ``local`` scope, at one ``parallel`` loop.

    With ``serial_axes`` (softmax), the other axes are fused into the parallel loop (one row
    per iteration) and the serial axes loop inside it. Otherwise the last axis of extent > 1
    (``W`` for NCHW pools, the packed channels of ``NCHW[x]c``, ``C`` of global NCHW pools)
    is split into blocks of up to 8; the other axes and the block index form the parallel
    loop, and the reduction runs with its window loops outside the block, which is
    vectorized (and so is the copy-out). (This loop order also keeps LLVM's optimizer fast:
    reductions of a few elements nested in tiny loops made its loop vectorizer and unroller
    take seconds for some trip counts.)
    """
    reductions = inline_injective(s, [out])
    if out.op in reductions:
        reductions.remove(out.op)
        local = s.cache_write(out, "local")
        reductions.append(local.op)
    st = s[out]
    axes = list(st.op.axis)
    ext = [_const(a.dom.extent) for a in axes]
    vec_axis = None
    if serial_axes:
        serial = [axes[k] for k in serial_axes]
        par = [a for k, a in enumerate(axes) if k not in serial_axes]
        st.reorder(*(par + serial))
        ones = []
    else:
        big = [k for k, e in enumerate(ext) if e is None or e > 1]
        if not big:
            par, ones, serial = [], axes, []
        else:
            k = big[-1]
            e = ext[k]
            b = max(d for d in range(1, min(e, 8) + 1) if e % d == 0) if e is not None else 1
            ko, ki = st.split(axes[k], factor=b)
            par = [a for i, a in enumerate(axes[:k]) if ext[i] != 1] + [ko]
            ones = [a for i, a in enumerate(axes) if i != k and ext[i] == 1]
            st.reorder(*(par + ones + [ki]))   # axes after k all have extent 1
            serial = []
            if b > 1:
                vec_axis = k
                st.vectorize(ki)
    if par:
        at = st.fuse(*par) if len(par) > 1 else par[0]
        st.parallel(at)
    else:
        at, _ = st.split((serial or ones or axes)[0], nparts=1)
    for op in reductions:
        rst = s[op]
        rst.compute_at(st, at)
        rst.set_scope("local")
        if vec_axis is not None and not serial_axes:
            rst.reorder(*(list(rst.op.reduce_axis) + list(rst.op.axis)))
            rst.vectorize(rst.op.axis[vec_axis])
    return s


def schedule_pool(outs, layout: str = "NCHW"):
    """CPU schedule of ``max_pool2d`` / ``avg_pool2d`` (padding and epilogues inlined)."""
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, ("pool_max", "pool_sum"), "schedule_pool")
        schedule_reduce_per_output(s, o)
    return s


def schedule_global_pool(outs, layout: str = "NCHW"):
    """CPU schedule of ``global_max_pool2d`` / ``global_avg_pool2d`` (epilogues inlined)."""
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, ("pool_global_max", "pool_global_sum"), "schedule_global_pool")
        schedule_reduce_per_output(s, o)
    return s


def schedule_reduce(outs):
    """CPU schedule of ``topi.nn.reduction.reduce`` (epilogues inlined): every reduction per block of
    outputs at the parallel loop (a 0-d output: the reductions at root, serial)."""
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        find_op(o, ("reduce_output",), "schedule_reduce")
        if o.ndim == 0:
            inline_injective(s, [o])
        else:
            schedule_reduce_per_output(s, o)
    return s


def schedule_softmax(outs):
    """CPU schedule of ``softmax`` / ``log_softmax``: rows in parallel, one pass per reduction."""
    outs = as_list(outs)
    s = te.create_schedule([o.op for o in outs])
    for o in outs:
        sm = find_op(o, ("softmax_output", "log_softmax_output"), "schedule_softmax")
        if [str(d) for d in o.shape] != [str(d) for d in sm.shape]:
            raise ScheduleError(f"schedule_softmax: the output {o.name} must have the softmax's shape (only "
                                "element-wise epilogues can be fused)")
        schedule_reduce_per_output(s, o, serial_axes=(sm.attrs["axis"],))
    return s


__all__ = ["schedule_injective", "schedule_injective_from_existing", "schedule_pool", "schedule_global_pool",
           "schedule_reduce", "schedule_softmax", "schedule_reduce_per_output", "schedule_elemwise", "schedule_broadcast"]
