"""The x86 int8 dense layer: ``dense_int8_x86`` tensorized with ``dot_u8s8`` (``vpdpbusd`` /
``vpmaddubsw`` + ``vpmaddwd`` / plain multiplies, from the target's features).

The weight is packed ``[units / L, in / 4, L, 4]`` (layout ``OI[L]o4i``: ``L`` units x 4 input
features, one ``zmm`` for ``L = 16``); each ``dot_u8s8`` broadcasts 4 input bytes and adds their
products into ``L`` int32 lanes. As in the conv (:mod:`.conv2d_int8`), int8 data is shifted into
uint8 (``a + 128``) and ``128 * sum(w)`` of each unit, a reduction over the weight, is subtracted.

Schedule (template ``dense_int8.x86``, arguments ``(data_shape, weight_shape, dtype, out_dtype)``):
a tile of ``unit_block`` blocks of ``L`` units of one row accumulates in vector registers over
the whole reduction; blocks of units run in parallel (the batch is often 1); epilogues (bias,
requantize, ...) are inlined into the vectorized copy-out.
"""
from __future__ import annotations

from ... import autotune, te
from ...errors import ScheduleError, ShapeError
from .. import testing
from ..generic.injective import inline_injective
from ..nn.layout import _const
from ..utils import as_list, divisors, find_op, largest_divisor, ops_above, resolve_config
from .conv2d_nchwc import check_divides
from .tensor_intrin import dot_u8s8

TAG = "dense_int8_x86"
COMP_TAG = "dense_int8_x86_comp"
TEMPLATE = "dense_int8.x86"


def dense_int8_x86(data, weight, out_dtype="int32", name="dense_int8_x86"):
    """int8 (or uint8) data ``[batch, in]`` x int8 weight ``[units / L, in / 4, L, 4]`` -> int32
    ``[batch, units]``, computed as unsigned x signed bytes (module docstring)."""
    if data.ndim != 2 or weight.ndim != 4:
        raise ShapeError(f"{name}: data must be [batch, in] (2-D) and weight OI[L]o4i (4-D), got {data.ndim}-D "
                         f"and {weight.ndim}-D")
    if data.dtype not in ("int8", "uint8") or weight.dtype != "int8" or out_dtype != "int32":
        raise ShapeError(f"{name}: int8 or uint8 data, int8 weight, int32 output; got {data.dtype}, "
                         f"{weight.dtype}, {out_dtype}")
    M, K = (_const(d) for d in data.shape)
    Oc, Kc, lanes, four = (_const(d) for d in weight.shape)
    if four != 4 or Kc * 4 != K:
        raise ShapeError(f"{name}: weight {weight.name} packs {Kc} x {four} input features, data {data.name} "
                         f"has {K} (pack the weight as OI[L]o4i with the features a multiple of 4)")
    signed = data.dtype == "int8"
    if signed:
        data = te.compute(data.shape, lambda *i: (data(*i).astype("int32") + 128).astype("uint8"),
                          name=f"{name}_u8", tag="injective,elemwise")
    ko = te.reduce_axis((0, Kc), "ko")
    ki = te.reduce_axis((0, 4), "ki")
    acc = te.compute((M, Oc, lanes),
                     lambda i, jo, ji: te.sum(data[i, ko * 4 + ki].astype("int32")
                                              * weight[jo, ko, ji, ki].astype("int32"), axis=[ko, ki]),
                     name=f"{name}_acc", tag=TAG)
    if signed:
        kc = te.reduce_axis((0, Kc), "kc")
        kb = te.reduce_axis((0, 4), "kb")
        comp = te.compute((Oc, lanes), lambda jo, ji: te.sum(weight[jo, kc, ji, kb].astype("int32") * 128,
                                                              axis=[kc, kb]), name=f"{name}_comp", tag=COMP_TAG)
        return te.compute((M, Oc * lanes), lambda i, j: acc[i, j // lanes, j % lanes] - comp[j // lanes, j % lanes],
                          name=name, tag="injective,elemwise")
    return te.compute((M, Oc * lanes), lambda i, j: acc[i, j // lanes, j % lanes], name=name,
                      tag="injective,elemwise")


def default_config(acc) -> dict:
    """Sound knob values: ``unit_block`` blocks of ``L`` units per tile (up to 4)."""
    return {"unit_block": largest_divisor(int(acc.shape[1].value), 4)}


def define_knobs(cfg, acc) -> None:
    """Declare ``unit_block`` (divisors of the unit blocks up to 8) on ``cfg``."""
    cfg.define_knob("unit_block", [d for d in divisors(int(acc.shape[1].value)) if d <= 8])
    if cfg.is_fallback:
        cfg.fallback_with(default_config(acc))


def _workload_args(acc) -> tuple:
    data, weight = acc.op.input_tensors
    if data.op.input_tensors:        # back through the uint8 offset
        data = data.op.input_tensors[0]
    return (tuple(int(d.value) for d in data.shape), tuple(int(d.value) for d in weight.shape), data.dtype,
            "int32")


def _reference(inputs, data_shape, weight_shape, dtype="int8", out_dtype="int32"):
    """numpy dense of ``inputs = [data, packed weight]`` (exact)."""
    data, w = inputs
    Oc, Kc, lanes, four = w.shape
    return [testing.dense(data, w.transpose(0, 2, 1, 3).reshape(Oc * lanes, Kc * four)).astype(out_dtype)]


@autotune.template(TEMPLATE, reference=_reference)
def dense_int8_x86_template(cfg, data_shape, weight_shape, dtype="int8", out_dtype="int32"):
    """Tunable template: :func:`dense_int8_x86` scheduled with ``dot_u8s8``; returns
    ``(schedule, [data, weight, out])``."""
    data = te.placeholder(tuple(data_shape), dtype, "data")
    weight = te.placeholder(tuple(weight_shape), "int8", "weight")
    out = dense_int8_x86(data, weight, out_dtype)
    return schedule_dense_int8_x86(out, cfg=cfg), [data, weight, out]


def schedule_dense_int8_x86(outs, cfg=None):
    """CPU schedule of :func:`dense_int8_x86` feeding ``outs`` (knob ``unit_block``; ``cfg`` a config,
    a dict over :func:`default_config`, or None for the dispatch context)."""
    outs = as_list(outs)
    output = outs[0]
    what = "schedule_dense_int8_x86 (cpu)"
    s = te.create_schedule([o.op for o in outs])
    acc = find_op(output, TAG, what).output(0)
    cfg = resolve_config(cfg, (TEMPLATE,) + _workload_args(acc), default_config(acc),
                         lambda c: define_knobs(c, acc), ("unit_block",), what, target="llvm")
    M, Oc, lanes = (int(d.value) for d in acc.shape)
    ub = cfg["unit_block"]
    check_divides("unit_block", ub, Oc, what, "blocks of units")
    stop = {acc.op} | {op for op in ops_above(output, acc) if op.tag == COMP_TAG}
    for t in acc.op.input_tensors:       # the uint8 offset: computed once
        if t.op.input_tensors:
            inline_injective(s, [t])
            s[t].parallel(s[t].op.axis[0])
    reds = inline_injective(s, [output], stop=stop)
    for op in reds:
        if op.tag != COMP_TAG:
            raise ScheduleError(f"{what}: {op.name} between the dense layer and {output.name} is not element-wise")
    for op in stop - {acc.op}:
        s[op].parallel(s[op].op.axis[0])
    s[acc].set_scope("local")
    i, j = s[output].op.axis
    jo, ji = s[output].split(j, factor=lanes * ub)
    s[output].reorder(jo, i, ji)
    s[output].parallel(jo)
    jio, jii = s[output].split(ji, factor=lanes)
    s[output].vectorize(jii)
    s[acc].compute_at(s[output], i)
    ci, cjo, cji = s[acc].op.axis
    ko, ki = s[acc].op.reduce_axis
    s[acc].reorder(ci, ko, cjo, cji, ki)
    s[acc].unroll(cjo)
    s[acc].tensorize(cji, dot_u8s8(lanes))
    return s


__all__ = ["dense_int8_x86", "schedule_dense_int8_x86", "dense_int8_x86_template", "default_config",
           "define_knobs", "TEMPLATE"]
