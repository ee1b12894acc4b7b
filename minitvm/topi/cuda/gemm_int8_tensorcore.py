"""CUDA schedule of the int8 GEMMs of :mod:`minitvm.topi.nn.conv2d_gemm` on tensor cores.

One template serves the implicit-GEMM conv2d (NHWC) and dense: both compute the stage
``gemm[N / 8, M, 8]``. A block computes a ``BM x BN`` tile of ``C``; its warps split it into
``WM x WN`` warp tiles (``threadIdx.y`` along rows, ``threadIdx.z`` along columns, 32 lanes on
``threadIdx.x``). Per k-step of ``BK`` (``k_chunk`` x 32) the block's threads copy the A tile
(im2col rows, inlined) and the B tile (weights) to shared memory with 16-byte ``cp.async`` copies
(a software pipeline of ``stages`` buffers; padding is the copies' zero fill), rows padded
by 16 bytes so that ``ldmatrix`` is free of bank conflicts; each warp then loads 16 x 32 / 8 x 32
fragments with ``ldmatrix`` and accumulates its ``WM/16 x WN/8`` tiles with
``mma.sync.m16n8k32``. The accumulators go to shared memory (``store_acc``) and the block writes
the output tile with ``vector``-wide stores, applying the fused element-wise epilogue (bias,
requantize, relu, residual add) on the way.

Knobs: ``tile_m`` / ``tile_n`` — 3-way splits [blocks, warps, per warp] of the rows ``M`` (per
warp a multiple of 16) and of the 8-column groups ``N / 8``; ``k_chunk`` — 32-wide k-slices per
shared-memory stage; ``stages`` — 1 (one shared buffer, plain loads) or 2 to 4: a ring of shared
buffers filled that many k-steps minus one ahead with ``cp.async``, so the loads of later tiles
overlap the current tile's ``mma``; ``vector`` — output elements per store (a divisor of the block's
columns, at most 16 bytes).

The tunable templates are ``conv2d_NHWC_int8_tensorcore.cuda`` (args ``(data_shape, kernel_shape,
stride, padding, dilation, groups, dtype, out_dtype)``) and ``dense_int8_tensorcore.cuda`` (args
``(data_shape, weight_shape, dtype, out_dtype)``).
"""
from __future__ import annotations

import numpy as np

from ... import autotune, te
from ...dtype import bits
from ...errors import ScheduleError
from ...device_limits import cuda_limits
from ..nn.conv2d_gemm import GEMM_TAG, MMA_K, MMA_M, MMA_N
from .. import testing
from ..utils import conv_args, find_op, inline_between, reader_of, resolve_config
from .tensor_intrin import ldmatrix_a, ldmatrix_b, ldmatrix_b16, mma_s8, store_acc

_LIMITS = cuda_limits("sm_90")   # the template's filter bounds blocks by the largest (Hopper) limits
_ROW_PAD = 16                  # bytes added to each shared row: conflict-free ldmatrix


def footprint(gemm, v: dict) -> dict:
    """Threads, accumulator registers per thread, shared bytes and blocks of knob values ``v``."""
    (bm, wm, pm), (bn, wn, pn) = v["tile_m"], v["tile_n"]
    kb = v["k_chunk"] * MMA_K
    copies = v["stages"]
    rows_b, cols_b = wm * pm, wn * pn * MMA_N
    stage = (rows_b + cols_b) * (kb + _ROW_PAD) * copies
    acc = (rows_b * MMA_N + _acc_plane_pad(rows_b, cols_b, v["vector"])) * (cols_b // MMA_N) * 4
    # a warp's pm x (pn * 8) int32 accumulators, spread over its 32 lanes
    return {"threads": 32 * wm * wn, "acc_regs": pm * pn * MMA_N // 32, "shared": stage + acc,
            "blocks": bm * bn}


#: warp tiles (16-row tiles, 8-column tiles) and warps per block (rows, columns), most preferred
#: first: :func:`default_config` takes the first that gives a full wave of blocks
_DEFAULT_TILES = ((4, 4, 2, 4), (4, 4, 2, 2), (2, 4, 2, 2), (2, 2, 2, 2), (1, 2, 2, 2), (1, 1, 2, 2),
                  (1, 1, 1, 2), (1, 1, 1, 1))
_WAVE = 132                    # SMs of an H100 / H200: one block each is a full wave


def default_config(gemm, output) -> dict:
    """A sound configuration for any shape: the largest of :data:`_DEFAULT_TILES` (128 x 128
    blocks of eight 64 x 32 warp tiles, down to one 16 x 8 warp tile) that divides the GEMM and
    still gives a wave of blocks over the SMs (else half a wave, else the one with the most
    blocks); 64-wide k-steps
    where the channels allow, in a 3-stage cp.async pipeline; the widest output vector."""
    nb, rows, _ = (int(d.value) for d in gemm.shape)
    fits = [(tm, tn, wm, wn) for tm, tn, wm, wn in _DEFAULT_TILES
            if rows % (tm * MMA_M * wm) == 0 and nb % (tn * wn) == 0]
    def blocks(t):
        tm, tn, wm, wn = t
        return rows // (tm * MMA_M * wm) * (nb // (tn * wn))
    # a full wave, else half a wave of larger tiles rather than a full one of tiny tiles
    full = [t for t in fits if blocks(t) >= _WAVE] or [t for t in fits if blocks(t) >= _WAVE // 2]
    tm, tn, wm, wn = full[0] if full else max(fits, key=blocks)
    chunk = 2 if _inner_channels(gemm) % (2 * MMA_K) == 0 else 1
    block_rows, cols = wm * tm * MMA_M, wn * tn * MMA_N
    return {"tile_m": [rows // block_rows, wm, tm * MMA_M], "tile_n": [nb // (tn * wn), wn, tn],
            "k_chunk": chunk, "stages": 3,
            "vector": _widest_vector(cols, block_rows * cols // (32 * wm * wn), output.dtype)}


def _inner_channels(gemm) -> int:
    return int(gemm.op.reduce_axis[-1].dom.extent.value)


def _widest_vector(cols: int, per_thread: int, dtype: str) -> int:
    """The widest store (at most 16 bytes) that divides a tile row and a thread's share of the tile."""
    elem = max(1, bits(dtype) // 8)
    return max(v for v in (1, 2, 4, 8, 16) if cols % v == 0 and per_thread % v == 0 and v * elem <= 16)


def _acc_plane_pad(rows: int, cols: int, vector: int) -> int:
    """Words (mod 32) added to each ``[rows, 8]`` plane of the accumulator tile so that the
    epilogue's vector reads (a lane reads ``vector`` consecutive words of a tile row; a warp's
    16-byte reads are served 8 lanes at a time) hit the fewest times the same bank."""
    def conflicts(pad):
        worst = 1
        for first in range(0, 32, 8):
            banks: dict = {}
            for lane in range(first, first + 8):
                r, c = divmod(lane * vector, cols)
                if r >= rows:
                    break
                word = (c // MMA_N) * (rows * MMA_N + pad) + r * MMA_N + c % MMA_N
                for w in range(word, word + min(vector, 4)):
                    banks.setdefault(w % 32, set()).add(w // 32)
            worst = max([worst] + [len(rows_) for rows_ in banks.values()])
        return worst
    return min(range(0, 32, 4), key=lambda pad: (conflicts(pad), pad))


def check_config(gemm, output, v: dict) -> None:
    """Raise ScheduleError naming the knob when ``v`` cannot schedule ``gemm``."""
    nb, rows, _ = (int(d.value) for d in gemm.shape)
    for key, total in (("tile_m", rows), ("tile_n", nb)):
        f = v[key]
        if len(f) != 3 or any(int(x) < 1 for x in f) or f[0] * f[1] * f[2] != total:
            raise ScheduleError(f"knob {key}: {f} must be 3 positive factors of {total}")
    if v["tile_m"][2] % MMA_M:
        raise ScheduleError(f"knob tile_m: rows per warp ({v['tile_m'][2]}) must be a multiple of {MMA_M}")
    if v["stages"] not in (1, 2, 3, 4):
        raise ScheduleError(f"knob stages: {v['stages']} must be 1 (no pipeline) to 4")
    c = _inner_channels(gemm)
    if v["k_chunk"] < 1 or c % (v["k_chunk"] * MMA_K):
        raise ScheduleError(f"knob k_chunk: {v['k_chunk']} x {MMA_K} must divide the {c} input channels")
    f = footprint(gemm, v)
    if f["threads"] > _LIMITS.max_threads_per_block or v["tile_n"][1] > _LIMITS.max_block_dims[2]:
        raise ScheduleError(f"knobs tile_m/tile_n: {f['threads']} threads per block (at most "
                            f"{_LIMITS.max_threads_per_block}, {_LIMITS.max_block_dims[2]} warps along threadIdx.z)")
    if f["shared"] > _LIMITS.max_shared_bytes_per_block:
        raise ScheduleError(f"knobs tile_m/tile_n/k_chunk: {f['shared']} bytes of shared memory per block "
                            f"(at most {_LIMITS.max_shared_bytes_per_block})")
    cols = v["tile_n"][1] * v["tile_n"][2] * MMA_N
    vec = v["vector"]
    elem = max(1, bits(output.dtype) // 8)
    if vec not in (1, 2, 4, 8, 16) or cols % vec or vec * elem > 16:
        raise ScheduleError(f"knob vector: {vec} must divide the block's {cols} columns and fit 16 bytes "
                            f"of {output.dtype}")
    if (cols * v["tile_m"][1] * v["tile_m"][2]) % (vec * f["threads"]):
        raise ScheduleError(f"knob vector: the {v['tile_m'][1] * v['tile_m'][2]} x {cols} output tile does not "
                            f"split into {f['threads']} threads of {vec} elements")


_SPLITS = ("tile_m", "tile_n")
_FLAGS = ("k_chunk", "stages", "vector")
_MAX_ACC = 128                 # int32 accumulators per thread (more spill)


def define_knobs(cfg, gemm, output) -> None:
    """Declare the template's knobs for ``gemm`` on ``cfg`` (a ConfigSpace, entity or fallback);
    a fallback gets :func:`default_config`'s values. The search skips configs that cannot run
    (:func:`check_config`) and ones with over 128 accumulators per thread or 8 warps per block."""
    nb_axis, m_axis, _ = gemm.op.axis
    cfg.define_split("tile_m", m_axis, num_outputs=3,
                     filter=lambda e: e.size[2] % MMA_M == 0 and e.size[2] <= 8 * MMA_M and e.size[1] <= 8)
    cfg.define_split("tile_n", nb_axis, num_outputs=3, filter=lambda e: e.size[1] <= 8 and e.size[2] <= 8)
    c = _inner_channels(gemm)
    cfg.define_knob("k_chunk", [k for k in (1, 2, 4) if c % (k * MMA_K) == 0])
    cfg.define_knob("stages", [1, 2, 3, 4])
    elem = max(1, bits(output.dtype) // 8)
    cfg.define_knob("vector", [v for v in (4, 8, 16) if v * elem <= 16] or [1])

    def sound(c):
        v = {k: c[k].size for k in _SPLITS}
        v.update({k: c[k].val for k in _FLAGS})
        if v["tile_m"][1] * v["tile_n"][1] > 8 or footprint(gemm, v)["acc_regs"] > _MAX_ACC:
            return False
        try:
            check_config(gemm, output, v)
        except ScheduleError:
            return False
        return True

    cfg.multi_filter(sound)
    if cfg.is_fallback:
        cfg.fallback_with(default_config(gemm, output))


def _workload(gemm) -> tuple:
    """``(template name, *args)`` that declare ``gemm``: the key its tuned config is logged under."""
    A, W = gemm.op.input_tensors
    data = A.op.input_tensors[0]
    shapes = (tuple(int(d.value) for d in data.shape), tuple(int(d.value) for d in W.shape))
    a = gemm.op.attrs
    if "stride" in a:
        return ("conv2d_NHWC_int8_tensorcore.cuda",) + _conv_args(*shapes, a["stride"], a["padding"], a["dilation"])
    return ("dense_int8_tensorcore.cuda",) + _dense_args(*shapes)


def _conv_args(data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="int8",
               out_dtype="int32"):
    return conv_args(data_shape, kernel_shape, stride, padding, dilation, groups, dtype, out_dtype)


def _dense_args(data_shape, weight_shape, dtype="int8", out_dtype="int32"):
    return tuple(int(d) for d in data_shape), tuple(int(d) for d in weight_shape), str(dtype), str(out_dtype)


def _conv_reference(inputs, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="int8",
                    out_dtype="int32"):
    """numpy NHWC / OHWI int8 conv2d of ``inputs = [data, kernel]`` (int64 sums)."""
    data, kernel = inputs
    out = testing.conv2d_nchw(data.transpose(0, 3, 1, 2), kernel.transpose(0, 3, 1, 2), stride, padding, dilation)
    return [np.ascontiguousarray(out.transpose(0, 2, 3, 1)).astype(out_dtype)]


def _dense_reference(inputs, data_shape, weight_shape, dtype="int8", out_dtype="int32"):
    """numpy ``data @ weight.T`` in int64."""
    return [testing.dense(*inputs).astype(out_dtype)]


@autotune.template("conv2d_NHWC_int8_tensorcore.cuda", normalize=_conv_args, reference=_conv_reference)
def conv2d_NHWC_int8_tensorcore(cfg, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1,
                                dtype="int8", out_dtype="int32"):
    """Tunable template: int8 conv2d, data NHWC and kernel OHWI, as an implicit GEMM on the int8
    tensor cores. Returns ``(schedule, [data, kernel, out])``."""
    from ..nn.conv2d_gemm import conv2d_NHWC_int8_gemm
    if groups != 1:
        raise ScheduleError(f"conv2d_NHWC_int8_tensorcore: groups={groups}; the tensor-core GEMM takes groups=1")
    data = te.placeholder(data_shape, dtype, "data")
    kernel = te.placeholder(kernel_shape, dtype, "kernel")
    out = conv2d_NHWC_int8_gemm(data, kernel, stride, padding, dilation)
    return schedule_int8_gemm(out, cfg=cfg), [data, kernel, out]


@autotune.template("dense_int8_tensorcore.cuda", normalize=_dense_args, reference=_dense_reference)
def dense_int8_tensorcore(cfg, data_shape, weight_shape, dtype="int8", out_dtype="int32"):
    """Tunable template: int8 dense (``data @ weight.T``, int32) on the int8 tensor cores.
    Returns ``(schedule, [data, weight, out])``."""
    from ..nn.conv2d_gemm import dense_int8_gemm
    data = te.placeholder(data_shape, dtype, "data")
    weight = te.placeholder(weight_shape, dtype, "weight")
    out = dense_int8_gemm(data, weight)
    return schedule_int8_gemm(out, cfg=cfg), [data, weight, out]


def schedule_int8_gemm(outs, cfg=None):
    """Schedule the int8 tensor-core GEMM feeding ``outs`` (its element-wise epilogue inlined).

    ``cfg``: an autotune config (space, entity or fallback), a dict of knob values (missing ones
    from :func:`default_config`), or ``None`` to ask the current dispatch context for the
    workload's tuned config.
    """
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    gemm = find_op(output, GEMM_TAG, "schedule_int8_gemm").output(0)
    v = resolve_config(cfg, _workload(gemm), default_config(gemm, output),
                       lambda c: define_knobs(c, gemm, output), _SPLITS + _FLAGS, "schedule_int8_gemm")
    check_config(gemm, output, v)
    (_, wm, pm), (_, wn, pn) = v["tile_m"], v["tile_n"]
    bm_rows, bn_cols = wm * pm, wn * pn * MMA_N

    remap = reader_of(output, gemm, "schedule_int8_gemm")
    inline_between(s, remap.output(0), output, "schedule_int8_gemm")
    if remap is not output.op:
        s[remap].compute_inline()
    A, W = gemm.op.input_tensors
    s[A].compute_inline()
    s[gemm].set_scope("warp")
    CS = s.cache_read(gemm, "shared", [remap.output(0)])
    AS = s.cache_read(A, "shared", [gemm])
    AF = s.cache_read(AS, "warp", [gemm])
    BS = s.cache_read(W, "shared", [gemm])
    BF = s.cache_read(BS, "warp", [gemm])
    tx, ty, tz = (te.thread_axis(f"threadIdx.{a}") for a in "xyz")

    # the output tile of a block, written by all its threads, vector-wide
    axes = list(s[output].op.axis)
    p = s[output].fuse(*axes[:-1]) if len(axes) > 2 else axes[0]
    pb, pi = s[output].split(p, factor=bm_rows)
    ob, oi = s[output].split(axes[-1], factor=bn_cols)
    s[output].reorder(pb, ob, pi, oi)
    s[output].bind(pb, te.thread_axis("blockIdx.x"))
    s[output].bind(ob, te.thread_axis("blockIdx.y"))
    rest = s[output].fuse(pi, oi)
    rest, vec = s[output].split(rest, factor=v["vector"])
    s[output].vectorize(vec)
    for n_threads, axis in ((32, tx), (wm, ty), (wn, tz)):
        rest, inner = s[output].split(rest, factor=n_threads)
        s[output].bind(inner, axis)
    s[output].unroll(rest)

    # accumulators -> shared, one 16 x 8 tile per store_acc, each warp its own tiles
    s[CS].compute_at(s[output], ob)
    s[CS].storage_align(s[CS].op.axis[0], 32, _acc_plane_pad(bm_rows, bn_cols, v["vector"]))
    c_nb, c_m, c_ni = s[CS].op.axis
    cwn, cjn = s[CS].split(c_nb, factor=pn)
    cwm, cmi = s[CS].split(c_m, factor=pm)
    ci, cm16 = s[CS].split(cmi, factor=MMA_M)
    s[CS].reorder(cwn, cwm, cjn, ci, cm16, c_ni)
    s[CS].bind(cwn, tz)
    s[CS].bind(cwm, ty)
    s[CS].unroll(cjn)
    s[CS].unroll(ci)
    s[CS].tensorize(cm16, store_acc())

    # the warp's accumulation: k-steps of BK, 32 at a time, over its WM/16 x WN/8 tiles
    s[gemm].compute_at(s[CS], cwm)
    g_nb, g_m, g_ni = s[gemm].op.axis
    *outer_k, rc = s[gemm].op.reduce_axis
    gi, gm16 = s[gemm].split(g_m, factor=MMA_M)
    rco, rcc = s[gemm].split(rc, factor=v["k_chunk"] * MMA_K)
    rcci, rc32 = s[gemm].split(rcc, factor=MMA_K)
    s[gemm].reorder(*outer_k, rco, rcci, g_nb, gi, gm16, g_ni, rc32)
    # one loop over all k-steps (filter taps x channel chunks), so the pipeline spans all of them
    rco = s[gemm].fuse(*outer_k, rco) if outer_k else rco
    for ax in (rcci, g_nb, gi):
        s[gemm].unroll(ax)
    s[gemm].tensorize(gm16, mma_s8())

    # B fragments two n8 tiles per ldmatrix.x4 where the warp has an even number of them
    b_rows, b_load = (2 * MMA_N, ldmatrix_b16()) if pn % 2 == 0 else (MMA_N, ldmatrix_b())
    for shared, frag, intrin, rows_per_load in ((AS, AF, ldmatrix_a(), MMA_M), (BS, BF, b_load, b_rows)):
        s[shared].compute_at(s[gemm], rco)
        s[frag].compute_at(s[gemm], rcci)
        f0, *_ = s[frag].op.axis
        fo, f16 = s[frag].split(f0, factor=rows_per_load)
        s[frag].unroll(fo)
        s[frag].tensorize(f16, intrin)
        s[shared].storage_align(s[shared].op.axis[0], 32, _ROW_PAD)
        if v["stages"] > 1:
            s[shared].pipeline(v["stages"])
        fused = s[shared].fuse(*s[shared].leaf_iter_vars)
        fused, lanes = s[shared].split(fused, factor=16)
        s[shared].vectorize(lanes)
        for n_threads, axis in ((32, tx), (wm, ty), (wn, tz)):
            fused, inner = s[shared].split(fused, factor=n_threads)
            s[shared].bind(inner, axis)
        s[shared].unroll(fused)
        # copies made here, not by nvcc, so that each copy's pixel address is a loop invariant
        # that hoist_invariant_terms takes out of the k-loop
        s[shared].pragma(fused, "unroll_explicit", 1)
    return s


__all__ = ["schedule_int8_gemm", "default_config", "define_knobs", "check_config", "footprint",
           "conv2d_NHWC_int8_tensorcore", "dense_int8_tensorcore"]
