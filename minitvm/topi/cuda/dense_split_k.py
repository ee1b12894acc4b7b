"""CUDA schedule of ``dense_int8_split_k``: int8 dense layers of small batches (at most 16 rows),
whose time is the read of the weights.

Each thread owns one output column ``n`` of one K-slice ``s`` (``blockIdx.y``) and all the batch's
rows: it streams its weight row in 16-byte loads (``unroll`` of them in flight), reads the
matching 16 bytes of every data row (the same address across the warp: one broadcast load from
L1), and accumulates with ``dp4a``. The partial sums go to global memory; a second kernel adds
the ``splits`` partials of each output and applies the fused epilogue (bias, requantize ...).

Knobs: ``threads`` — threads per block of the first kernel (columns per block); ``unroll`` —
16-byte weight loads per thread per loop step. The tunable template is
``dense_int8_split_k.cuda`` (args ``(data_shape, weight_shape, splits)``).
"""
from __future__ import annotations

import numpy as np

from ... import autotune, te
from ...errors import ScheduleError
from .. import testing
from ..generic.tensor_intrin import dp4a
from ..nn.dense import SPLIT_K_TAG, dense_int8_split_k
from ..utils import as_list, divisors, find_op, inline_between, reader_of, resolve_config

VECTOR = 16                  # bytes per weight load
MAX_ROWS = 16                # batch rows this template takes (each thread keeps them all)
_TARGET_THREADS = 64 * 1024  # streams of weights the default aims for (about 32 KB in flight per SM)
_MIN_SLICE = 256             # bytes of a weight row per K-slice, at least


def choose_splits(M: int, N: int, K: int) -> int:
    """The number of K-slices for an ``M x K`` by ``N x K`` int8 dense: enough that ``N *
    splits`` threads stream the weights, slices of whole 16-byte loads and at least 256 bytes."""
    best = 1
    for s in divisors(K):
        if (K // s) % VECTOR or K // s < _MIN_SLICE:
            continue
        if N * best >= _TARGET_THREADS:
            break
        best = s
    return best


def _shape(partial) -> tuple:
    splits, M, N = (int(d.value) for d in partial.shape)
    return splits, M, N, int(partial.op.reduce_axis[0].dom.extent.value)


def default_config(partial) -> dict:
    """128 threads a block where the columns allow (else the largest divisor up to 256), 4 loads
    in flight per thread."""
    _, _, N, ks = _shape(partial)
    threads = 128 if N % 128 == 0 else max(d for d in divisors(N) if d <= 256)
    unroll = max(u for u in (1, 2, 4) if (ks // VECTOR) % u == 0)
    return {"threads": threads, "unroll": unroll}


def check_config(partial, v: dict) -> None:
    """Raise ScheduleError naming the knob when ``v`` cannot schedule ``partial``."""
    _, M, N, ks = _shape(partial)
    if M > MAX_ROWS:
        raise ScheduleError(f"dense_int8_split_k: {M} batch rows; the template keeps at most {MAX_ROWS} per thread")
    if ks % VECTOR:
        raise ScheduleError(f"dense_int8_split_k: a K-slice of {ks} is not a whole number of {VECTOR}-byte loads")
    if v["threads"] < 1 or N % v["threads"] or v["threads"] > 1024:
        raise ScheduleError(f"knob threads: {v['threads']} must divide the {N} columns (at most 1024)")
    if v["unroll"] < 1 or (ks // VECTOR) % v["unroll"]:
        raise ScheduleError(f"knob unroll: {v['unroll']} must divide the {ks // VECTOR} loads of a K-slice")


_KNOBS = ("threads", "unroll")


def define_knobs(cfg, partial) -> None:
    """Declare ``threads`` and ``unroll`` on ``cfg``; a fallback gets :func:`default_config`'s."""
    _, _, N, ks = _shape(partial)
    cfg.define_knob("threads", [t for t in (32, 64, 128, 256, 512) if N % t == 0] or [default_config(partial)["threads"]])
    cfg.define_knob("unroll", [u for u in (1, 2, 4, 8) if (ks // VECTOR) % u == 0])
    if cfg.is_fallback:
        cfg.fallback_with(default_config(partial))


def _workload(partial) -> tuple:
    data, weight = partial.op.input_tensors
    return ("dense_int8_split_k.cuda", tuple(int(d.value) for d in data.shape),
            tuple(int(d.value) for d in weight.shape), int(partial.shape[0].value))


def _args(data_shape, weight_shape, splits):
    return tuple(int(d) for d in data_shape), tuple(int(d) for d in weight_shape), int(splits)


def _reference(inputs, data_shape, weight_shape, splits):
    return [testing.dense(*inputs).astype(np.int32)]


@autotune.template("dense_int8_split_k.cuda", normalize=_args, reference=_reference)
def dense_int8_split_k_cuda(cfg, data_shape, weight_shape, splits):
    """Tunable template: int8 dense of a small batch as ``splits`` K-slices. Returns
    ``(schedule, [data, weight, out])``."""
    data = te.placeholder(data_shape, "int8", "data")
    weight = te.placeholder(weight_shape, "int8", "weight")
    out = dense_int8_split_k(data, weight, splits)
    return schedule_dense_int8_split_k(out, cfg=cfg), [data, weight, out]


def schedule_dense_int8_split_k(outs, cfg=None):
    """Schedule the split-K int8 dense feeding ``outs`` (its element-wise epilogue inlined into
    the second kernel). ``cfg``: a config object, a dict of knob values, or ``None`` (the current
    dispatch context's config for the workload)."""
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    partial = find_op(output, SPLIT_K_TAG, "schedule_dense_int8_split_k").output(0)
    final = reader_of(output, partial, "schedule_dense_int8_split_k").output(0)
    v = resolve_config(cfg, _workload(partial), default_config(partial), lambda c: define_knobs(c, partial),
                       _KNOBS, "schedule_dense_int8_split_k")
    check_config(partial, v)
    splits, M, N, ks = _shape(partial)
    tx = te.thread_axis("threadIdx.x")

    # kernel 2: one thread an output, adding the partials (then the epilogue)
    inline_between(s, final, output, "schedule_dense_int8_split_k")
    if final.op is output.op:
        final = s.cache_write(final, "local")
    else:
        s[final].set_scope("local")
    fused = s[output].fuse(*s[output].op.axis)
    per_block = max(d for d in divisors(M * N) if d <= 256)
    ob, ot = s[output].split(fused, factor=per_block)
    s[output].bind(ob, te.thread_axis("blockIdx.x"))
    s[output].bind(ot, tx)
    s[final].compute_at(s[output], ot)

    # kernel 1: a thread a (slice, column), all rows, 16-byte weight loads, dp4a
    data, weight = partial.op.input_tensors
    PL = s.cache_write(partial, "local")
    ps, pm, pn = s[partial].op.axis
    nb, nt = s[partial].split(pn, factor=v["threads"])
    s[partial].reorder(ps, nb, nt, pm)
    s[partial].bind(nb, te.thread_axis("blockIdx.x"))
    s[partial].bind(ps, te.thread_axis("blockIdx.y"))
    s[partial].bind(nt, tx)
    s[PL].compute_at(s[partial], nt)
    (r,) = s[PL].op.reduce_axis
    ro, r16 = s[PL].split(r, factor=VECTOR)
    roo, roi = s[PL].split(ro, factor=v["unroll"])
    r4o, r4 = s[PL].split(r16, factor=4)
    _, lm, _ = s[PL].op.axis
    s[PL].reorder(roo, roi, r4o, lm, r4)
    s[PL].unroll(roi)
    s[PL].unroll(r4o)
    s[PL].unroll(lm)
    s[PL].tensorize(r4, dp4a())
    for tensor in (weight, data):
        load = s.cache_read(tensor, "local", [PL])
        s[load].compute_at(s[PL], roi)
        *rows, cols = s[load].op.axis
        s[load].vectorize(cols)
        for ax in rows:
            s[load].unroll(ax)
    return s


__all__ = ["schedule_dense_int8_split_k", "choose_splits", "default_config", "define_knobs", "check_config",
           "dense_int8_split_k_cuda"]
