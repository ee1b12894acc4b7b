"""CPU (LLVM) schedules for ``topi.nn.dense`` (float) and ``dense_int8`` (``dp4a`` tensorized),
also used for 2-D ``topi.nn.matmul`` (``B`` read as ``[k, j]``: its tile is vectorized along ``j``).

``out[i, j] = sum_k data[i, k] * weight[j, k]``: both operands are read along ``k``, so the
tile is ``batch_block`` rows x ``unit_block`` output units accumulated in a ``local`` buffer
(independent accumulators hide the add latency; the float sum is not reassociated, so each
output is an exact sequential sum), the ``k`` loop outside the tile and split by
``k_unroll`` (unrolled). Blocks of units run in parallel (the batch is often 1). For int8
the innermost 4 of ``k`` are one ``dp4a`` (``K`` must be a multiple of 4). Epilogues (bias,
relu, requantize, ...) are inlined into the copy-out.

A dense layer (tag ``dense``) is the tunable template ``dense.x86`` (arguments ``(data_shape,
weight_shape, dtype, out_dtype)``; knobs ``batch_block``, ``unit_block``, ``k_unroll``): called
without ``cfg``, the schedule asks the dispatch context for its workload's config. A 2-D matmul
takes the default.
"""
from __future__ import annotations

from ... import autotune, te
from ...errors import ScheduleError
from ...tensor import ComputeOp
from .. import testing
from ..generic.injective import inline_injective
from ..generic.tensor_intrin import dp4a
from ..nn.dense import dense as dense_compute
from ..nn.dense import dense_packed
from ..utils import as_list, divisors, find_op, largest_divisor, resolve_config
from .conv2d_nchwc import check_divides
from ...tir import expr as E
from ...tir.functor import Visitor

TEMPLATE = "dense.x86"
_KNOBS = ("batch_block", "unit_block", "k_unroll")



def _find(out):
    """The dense layer (tag ``dense``) feeding ``out``, else a ``matmul``-shaped compute (2 data
    axes, 1 reduction axis, e.g. ``topi.nn.matmul``)."""
    stack, seen, fallback = [out.op], set(), None
    while stack:
        op = stack.pop()
        if op in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(op)
        if op.tag == "dense":
            return op.output(0)
        if fallback is None and len(op.axis) == 2 and len(op.reduce_axis) == 1:
            fallback = op
        stack.extend(t.op for t in op.input_tensors)
    if fallback is not None:
        return fallback.output(0)
    raise ScheduleError(f"schedule_dense (cpu): no dense layer (or 2-D matmul) feeds {out.name}")


def _reads_k_major(op) -> bool:
    """Does ``op`` read its second input as ``[k, j]`` (matmul) rather than ``[j, k]`` (dense)?"""
    k = op.reduce_axis[0].var
    second = op.input_tensors[1] if len(op.input_tensors) > 1 else None
    found = []

    class _V(Visitor):
        def visit_ProducerLoad(self, node):
            if second is not None and node.producer == second:
                found.append(isinstance(node.indices[0], E.Var) and node.indices[0] is k)
            self.generic_visit(node)

    for b in op.body:
        _V().visit(b)
    return bool(found) and all(found)


def default_config(dense) -> dict:
    """Sound knob values for a dense layer of this shape."""
    M, N = (int(d.value) for d in dense.shape)
    K = int(dense.op.reduce_axis[0].dom.extent.value)
    int8 = dense.op.input_tensors[0].dtype in ("int8", "uint8")
    units = 16 if _reads_k_major(dense.op) and not int8 else 8
    return {"batch_block": largest_divisor(M, 4), "unit_block": largest_divisor(N, units),
            "k_unroll": 4 if int8 else largest_divisor(K, 8)}


def define_knobs(cfg, dense) -> None:
    """Declare the knobs of ``dense.x86`` for ``dense`` on ``cfg``: ``batch_block`` (divisors of the
    batch up to 8), ``unit_block`` (divisors of the units up to 32), ``k_unroll`` (divisors of the
    features up to 16; int8 reduces 4 at a time and keeps 4)."""
    M, N = (int(d.value) for d in dense.shape)
    K = int(dense.op.reduce_axis[0].dom.extent.value)
    int8 = dense.op.input_tensors[0].dtype in ("int8", "uint8")
    cfg.define_knob("batch_block", [d for d in divisors(M) if d <= 8])
    cfg.define_knob("unit_block", [d for d in divisors(N) if d <= 32])
    cfg.define_knob("k_unroll", [4] if int8 else [d for d in divisors(K) if d <= 16])
    cfg.multi_filter(lambda c: c["batch_block"].val * c["unit_block"].val <= 64)
    if cfg.is_fallback:
        cfg.fallback_with(default_config(dense))


def _reference(inputs, data_shape, weight_shape, dtype="float32", out_dtype="float32"):
    """numpy dense of ``inputs = [data, weight]`` (float64 / int64 sums)."""
    return [testing.dense(*inputs).astype(out_dtype)]


@autotune.template(TEMPLATE, reference=_reference)
def dense_x86(cfg, data_shape, weight_shape, dtype="float32", out_dtype="float32"):
    """Tunable template: ``topi.nn.dense`` scheduled for the CPU; returns ``(schedule, [data, weight, out])``."""
    data = te.placeholder(tuple(data_shape), dtype, "data")
    weight = te.placeholder(tuple(weight_shape), dtype, "weight")
    out = dense_compute(data, weight, out_dtype=out_dtype)
    return schedule_dense(out, cfg=cfg), [data, weight, out]


def _config(dense, cfg):
    """Plain knob values: a dense layer asks the dispatch context (``cfg`` None) or reads ``cfg``; a
    matmul-shaped compute takes its default (or the dict given)."""
    if cfg is None and dense.op.tag != "dense":
        cfg = {}
    data, weight = dense.op.input_tensors
    workload = (TEMPLATE, tuple(int(d.value) for d in data.shape), tuple(int(d.value) for d in weight.shape),
                data.dtype, dense.dtype)
    cfg = resolve_config(cfg, workload, default_config(dense), lambda c: define_knobs(c, dense), _KNOBS,
                         "schedule_dense (cpu)", target="llvm")
    return cfg


def schedule_dense(outs, cfg=None):
    """CPU schedule of the dense layer feeding ``outs`` (float, or int8 with ``dp4a``); ``cfg``: a
    config, a dict of knob values over :func:`default_config`, or None (the dispatch context)."""
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    output = outs[0]
    s = te.create_schedule([o.op for o in outs])
    dense = _find(output)
    cfg = _config(dense, cfg)
    data, weight = dense.op.input_tensors
    k_major = _reads_k_major(dense.op)
    use_dp4a = data.dtype in ("int8", "uint8") and not k_major
    for t in (data, weight):
        if isinstance(t.op, ComputeOp) and not t.op.reduce_axis:
            inline_injective(s, [t])
            s[t].parallel(s[t].op.axis[0])
    reds = inline_injective(s, [output], stop={dense.op})
    if reds:
        raise ScheduleError(f"schedule_dense (cpu): {reds[0].name} between the dense layer and {output.name} "
                            "is not element-wise")
    acc = s.cache_write(output, "local") if dense.op is output.op else dense
    if acc is dense:
        s[dense].set_scope("local")
    M, N = (int(d.value) for d in output.shape)
    K = int(dense.op.reduce_axis[0].dom.extent.value)
    mb, nb, ku = cfg["batch_block"], cfg["unit_block"], cfg["k_unroll"]
    for knob, v, extent in (("batch_block", mb, M), ("unit_block", nb, N), ("k_unroll", ku, K)):
        check_divides(knob, v, extent, "schedule_dense (cpu)", knob.split("_")[0] + " extent")
    i, j = s[output].op.axis
    io, ii = s[output].split(i, factor=mb)
    jo, ji = s[output].split(j, factor=nb)
    s[output].reorder(jo, io, ii, ji)
    s[output].parallel(jo)
    s[acc].compute_at(s[output], io)
    ci, cj = s[acc].op.axis
    (k,) = s[acc].op.reduce_axis
    if use_dp4a:
        if K % 4:
            raise ScheduleError(f"schedule_dense (cpu): the reduction length {K} must be a multiple of 4 for dp4a; "
                                "pad the input features")
        ko, k4 = s[acc].split(k, factor=4)
        s[acc].reorder(ko, ci, cj, k4)
        s[acc].tensorize(k4, dp4a())
    else:
        ko, ki = s[acc].split(k, factor=ku)
        s[acc].reorder(ko, ki, ci, cj)
        s[acc].unroll(ki)
    if k_major and nb >= 4:
        s[acc].vectorize(cj)      # weight[k, j:j+nb] is contiguous
        s[output].vectorize(ji)
    else:
        s[acc].unroll(cj)
    if M % mb == 0:
        s[acc].unroll(ci)
    return s


# -------------------------------------------------------------------- packed weights (OI[b]o)
PACKED_TEMPLATE = "dense_packed.x86"


def default_config_packed(dense) -> dict:
    """Sound knob values for a dense_packed: ``unit_block`` blocks of ``b`` units per tile (up to 4:
    independent FMA chains), ``k_unroll`` (up to 4)."""
    K = int(dense.op.reduce_axis[0].dom.extent.value)
    blocks = int(dense.op.input_tensors[1].shape[0].value)
    return {"unit_block": largest_divisor(blocks, 4), "k_unroll": largest_divisor(K, 4)}


def define_knobs_packed(cfg, dense) -> None:
    """Declare ``unit_block`` (divisors of the unit blocks up to 8) and ``k_unroll`` (up to 16)."""
    K = int(dense.op.reduce_axis[0].dom.extent.value)
    blocks = int(dense.op.input_tensors[1].shape[0].value)
    cfg.define_knob("unit_block", [d for d in divisors(blocks) if d <= 8])
    cfg.define_knob("k_unroll", [d for d in divisors(K) if d <= 16])
    if cfg.is_fallback:
        cfg.fallback_with(default_config_packed(dense))


def _reference_packed(inputs, data_shape, weight_shape, dtype="float32", out_dtype="float32"):
    """numpy dense of ``inputs = [data, weight [units / b, in, b]]`` (float64 sums)."""
    data, w = inputs
    return [testing.dense(data, w.transpose(0, 2, 1).reshape(-1, w.shape[1])).astype(out_dtype)]


@autotune.template(PACKED_TEMPLATE, reference=_reference_packed)
def dense_packed_x86(cfg, data_shape, weight_shape, dtype="float32", out_dtype="float32"):
    """Tunable template: ``topi.nn.dense_packed`` scheduled for the CPU; returns ``(schedule, [data,
    weight, out])``."""
    data = te.placeholder(tuple(data_shape), dtype, "data")
    weight = te.placeholder(tuple(weight_shape), dtype, "weight")
    out = dense_packed(data, weight, out_dtype=out_dtype)
    return schedule_dense_packed(out, cfg=cfg), [data, weight, out]


def schedule_dense_packed(outs, cfg=None):
    """CPU schedule of the ``dense_packed`` layer feeding ``outs``: tiles of ``unit_block`` vectors
    of ``b`` units accumulate over all of ``k`` (each step broadcasts one input and loads one weight
    vector per block: ``weight[j // b, k, :]`` is contiguous), blocks of units in parallel."""
    what = "schedule_dense_packed (cpu)"
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([o.op for o in outs])
    dense = find_op(output, "dense_packed", what).output(0)
    data, weight = dense.op.input_tensors
    workload = (PACKED_TEMPLATE, tuple(int(d.value) for d in data.shape), tuple(int(d.value) for d in weight.shape),
                data.dtype, dense.dtype)
    cfg = resolve_config(cfg, workload, default_config_packed(dense), lambda c: define_knobs_packed(c, dense),
                         ("unit_block", "k_unroll"), what, target="llvm")
    blocks, K, b = (int(d.value) for d in weight.shape)
    ub, ku = cfg["unit_block"], cfg["k_unroll"]
    check_divides("unit_block", ub, blocks, what, "blocks of units")
    check_divides("k_unroll", ku, K, what, "input features")
    reds = inline_injective(s, [output], stop={dense.op})
    if reds:
        raise ScheduleError(f"{what}: {reds[0].name} between the dense layer and {output.name} is not element-wise")
    acc = s.cache_write(output, "local") if dense.op is output.op else dense
    if acc is dense:
        s[dense].set_scope("local")
    i, j = s[output].op.axis
    jo, ji = s[output].split(j, factor=b * ub)
    s[output].reorder(jo, i, ji)
    s[output].parallel(jo)
    _, jii = s[output].split(ji, factor=b)
    s[output].vectorize(jii)
    s[acc].compute_at(s[output], i)
    ci, cj = s[acc].op.axis
    (k,) = s[acc].op.reduce_axis
    cjo, cji = s[acc].split(cj, factor=b)
    ko, ki = s[acc].split(k, factor=ku)
    s[acc].reorder(ci, ko, ki, cjo, cji)
    s[acc].vectorize(cji)
    s[acc].unroll(cjo)
    s[acc].unroll(ki)
    return s


__all__ = ["schedule_dense", "default_config", "define_knobs", "dense_x86", "TEMPLATE", "schedule_dense_packed",
           "dense_packed_x86", "default_config_packed", "define_knobs_packed", "PACKED_TEMPLATE"]
