"""CUDA schedule of ``conv2d_NCHWc_int8`` with ``dp4a`` (after TVM's int8 CUDA template).

Each block computes a tile of (batch, output-channel blocks, rows, columns); virtual threads
and threads split the tile further; every thread accumulates its outputs in registers
(``local``), reading 4-channel int8 words of data and weights from shared memory, and the
innermost 4-channel reduction is one ``__dp4a``. Element-wise epilogues (bias, requantize,
relu, residual add) are inlined into the stage that writes the output.

Knobs (declared on an autotune config space by :func:`define_knobs`; :func:`default_config`
picks sound values from the shape and is the fallback when nothing was tuned):
``tile_n``, ``tile_f``, ``tile_y``, ``tile_x`` — 4-way splits [block, vthread, thread, inner];
``tile_rc``, ``tile_ry``, ``tile_rx`` — 2-way splits [outer, inner] of the reduction;
``fuse_yx`` — bind y and x to one thread axis (``threadIdx.x``; n and f take z and y), or bind
(n, f) fused to ``threadIdx.z``, y and x to y and x; ``double_buffer`` — fuse the outer
reduction loops into one and double-buffer the shared data and weight tiles over it, so the
next tile's global loads overlap the current tile's ``dp4a``s; ``cache_data`` /
``cache_weight`` — stage data / weights through shared memory (else each thread reads them
from global memory, through the L1 cache); ``vector_weight`` — bytes per thread and step when
staging weights: 4 (one word) or 16 (a whole 4x4 channel block, one 128-bit load);
``vector_data`` — bytes per thread and step when staging data: 4 (one pixel's 4 channels) or 16
(4 neighbouring pixels, one 128-bit load; offered for unpadded convs of kernel width 1, stride 1
along x and a width divisible by 4, with a block tile of columns divisible by 4);
``auto_unroll_max_step``, ``unroll_explicit``.

The tunable template is ``conv2d_NCHWc_int8.cuda`` (:func:`conv2d_NCHWc_int8_cuda`, args
``(data_shape, kernel_shape, stride, padding, dilation, groups, dtype, out_dtype)``).
:func:`schedule_conv2d_NCHWc_int8` takes a config object, a plain dict of knob values (merged
over the default), or nothing: then the current ``minitvm.autotune`` dispatch context decides
(the best logged config under ``ApplyHistoryBest``, else the default with a one-time warning).
"""
from __future__ import annotations

from ... import autotune, te
from .. import testing
from ...errors import ScheduleError
from ...tensor import ComputeOp
from ...target import cuda_limits
from ..utils import (UNROLL_KNOBS, apply_split, apply_unroll_knobs, as_list, check_split, conv_args,
                     conv_workload_args, cooperative_fetch, define_unroll_knobs, find_op, inline_between,
                     largest_divisor, resolve_config, tile_conv_output, unroll_compiles_fast)
from ..generic.tensor_intrin import dp4a
from ..nn.conv2d import conv2d_NCHWc_int8

_LIMITS = cuda_limits()  # what a block may ask for; every config filter respects it

def default_config(conv) -> dict:
    """A sound configuration for ``conv`` (a conv2d_NCHWc_int8 tensor)."""
    N, OCc, OH, OW, _ = (int(d.value) for d in conv.shape)
    ICc, KH, KW = (int(iv.dom.extent.value) for iv in conv.op.reduce_axis[:3])
    tf = largest_divisor(OCc, 8)
    fi = largest_divisor(OCc // tf, 2)
    tx = largest_divisor(OW, 8)
    ty = largest_divisor(OH, max(1, 64 // (tf * tx)))
    tn = 1
    ni = largest_divisor(N, 2) if N > 1 else 1
    rci = largest_divisor(ICc, 4)
    return {
        "tile_n": [N // (tn * ni), 1, tn, ni],
        "tile_f": [OCc // (tf * fi), 1, tf, fi],
        "tile_y": [OH // ty, 1, ty, 1],
        "tile_x": [OW // tx, 1, tx, 1],
        "tile_rc": [ICc // rci, rci],
        "tile_ry": [KH, 1],
        "tile_rx": [KW, 1],
        "fuse_yx": True,
        "double_buffer": False,
        "cache_data": True,
        "cache_weight": True,
        "vector_weight": 4,
        "vector_data": 4,
        "auto_unroll_max_step": 512,
        "unroll_explicit": False,
    }


_KNOB_SPLITS = (("tile_n", 4), ("tile_f", 4), ("tile_y", 4), ("tile_x", 4),
                ("tile_rc", 2), ("tile_ry", 2), ("tile_rx", 2))
_KNOB_FLAGS = ("fuse_yx", "double_buffer", "cache_data", "cache_weight", "vector_weight", "vector_data") \
    + tuple(UNROLL_KNOBS)
_MAX_LOCAL = 128            # int32 accumulators per thread (more spill registers: measured 3-5x slower)
_MAX_VTHREADS = 8           # virtual threads per thread
_MIN_BLOCKS = 128           # about one block per SM (H100: 132), unless the default has fewer


def _footprint(conv, v: dict) -> tuple:
    """(threads per block, accumulators per thread, shared bytes per block, virtual threads,
    blocks) of knob values ``v``."""
    sh, sw = conv.op.attrs.get("stride", (1, 1))
    dh, dw = conv.op.attrs.get("dilation", (1, 1))
    ob = int(conv.shape[4].value)
    ib = int(conv.op.reduce_axis[3].dom.extent.value)
    tn, tf, ty, tx = (v[k][2] for k in ("tile_n", "tile_f", "tile_y", "tile_x"))
    n_t, f_t, y_t, x_t = (v[k][1] * v[k][2] * v[k][3] for k in ("tile_n", "tile_f", "tile_y", "tile_x"))
    rci, ryi, rxi = v["tile_rc"][1], v["tile_ry"][1], v["tile_rx"][1]
    threads = tn * tf * ty * tx
    local = (n_t // tn) * (f_t // tf) * (y_t // ty) * (x_t // tx) * ob
    copies = 2 if v.get("double_buffer") else 1
    smem_w = copies * f_t * rci * ryi * rxi * ob * ib if v.get("cache_weight", True) else 0
    smem_a = copies * n_t * rci * ((y_t - 1) * sh + (ryi - 1) * dh + 1) * ((x_t - 1) * sw + (rxi - 1) * dw + 1) * ib \
        if v.get("cache_data", True) else 0
    vthreads = v["tile_n"][1] * v["tile_f"][1] * v["tile_y"][1] * v["tile_x"][1]
    blocks = v["tile_n"][0] * v["tile_f"][0] * v["tile_y"][0] * v["tile_x"][0]
    return threads, local, smem_w + smem_a, vthreads, blocks


def _wide_data_fetch_possible(conv) -> bool:
    """Can the data tile be fetched 4 pixels (16 bytes) at a time? Each fetched row must start
    16-byte aligned and hold whole 4-pixel groups: no padding, kernel width 1, stride 1 along
    x, a 4-channel block, a width divisible by 4."""
    data = conv.op.input_tensors[0]
    _, _, _, kw, _, _ = (int(d.value) for d in conv.op.input_tensors[1].shape)
    return (not any(conv.op.attrs.get("padding", (0,))) and kw == 1
            and tuple(conv.op.attrs.get("stride", (1, 1)))[1] == 1
            and int(data.shape[3].value) % 4 == 0 and int(data.shape[4].value) == 4)


def _block_columns(v: dict) -> int:
    """Output columns per block under knob values ``v``."""
    return v["tile_x"][1] * v["tile_x"][2] * v["tile_x"][3]


def define_knobs(cfg, conv) -> None:
    """Declare the template's knobs for ``conv`` on ``cfg`` (a ConfigSpace, entity or fallback);
    a fallback gets :func:`default_config`'s values. The search skips configs that cannot run
    (over 1024 threads or 48 KB of shared memory) and, from measurements on an H100, ones that
    are rarely fast: over 128 accumulators or 8 virtual threads per thread, fewer than 32
    threads or 128 blocks (or than the default has, if that is fewer)."""
    n, f, y, x, _ = conv.op.axis
    rc, ry, rx, _ = conv.op.reduce_axis
    for (key, parts), ax in zip(_KNOB_SPLITS, (n, f, y, x, rc, ry, rx)):
        cfg.define_split(key, ax, num_outputs=parts)
    cfg.define_knob("fuse_yx", [True, False])
    cfg.define_knob("double_buffer", [False, True])
    # unstaged data is read straight from global memory by dp4a, which needs no padding select
    cfg.define_knob("cache_data", [True, False] if not any(conv.op.attrs.get("padding", (0,))) else [True])
    cfg.define_knob("cache_weight", [True, False])
    ob, ib = (int(d.value) for d in conv.op.input_tensors[1].shape[-2:])
    cfg.define_knob("vector_weight", [4, 16] if ob * ib % 16 == 0 else [4])
    cfg.define_knob("vector_data", [4, 16] if _wide_data_fetch_possible(conv) else [4])
    define_unroll_knobs(cfg)
    default = default_config(conv)
    d_threads, _, _, _, d_blocks = _footprint(conv, default)
    min_threads, min_blocks = min(32, d_threads), min(_MIN_BLOCKS, d_blocks)

    def sound(c):
        v = dict({k: c[k].size for k, _ in _KNOB_SPLITS}, **{k: c[k].val for k in _KNOB_FLAGS})
        threads, local, smem, vthreads, blocks = _footprint(conv, v)
        tz = v["tile_n"][2] if v["fuse_yx"] else v["tile_n"][2] * v["tile_f"][2]
        # double buffering needs a shared tile to pipeline; the weight fetch width matters only
        # when weights are staged
        meaningful = (v["cache_data"] or v["cache_weight"] or not v["double_buffer"]) \
            and (v["cache_weight"] or v["vector_weight"] == 4) \
            and (v["vector_data"] == 4 or (v["cache_data"] and _block_columns(v) % 4 == 0))
        return (min_threads <= threads <= _LIMITS.max_threads_per_block and tz <= _LIMITS.max_block_dims[2]
                and local <= _MAX_LOCAL and smem <= _LIMITS.max_static_shared_bytes
                and vthreads <= _MAX_VTHREADS and blocks >= min_blocks
                and meaningful and unroll_compiles_fast(c))

    cfg.multi_filter(sound)
    if cfg.is_fallback:
        cfg.fallback_with(default)


def _conv_args(data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="int8",
               out_dtype="int32"):
    """The template's arguments in canonical form (pairs, 4-tuple padding)."""
    return conv_args(data_shape, kernel_shape, stride, padding, dilation, groups, dtype, out_dtype)


def _workload_args(conv) -> tuple:
    """The template arguments that declare ``conv`` (for looking up its tuned config)."""
    return conv_workload_args(conv)


def reference(inputs, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1, dtype="int8",
              out_dtype="int32"):
    """numpy conv2d_NCHWc_int8 of ``inputs = [data, kernel]`` (exact: int64 sums), packed like the output."""
    data, kernel = inputs
    out = testing.conv2d_nchw(testing.unpack_nchwc(data), testing.unpack_oihw(kernel), stride, padding, dilation,
                              groups)
    return [testing.pack_nchwc(out, kernel.shape[4]).astype(out_dtype)]


@autotune.template("conv2d_NCHWc_int8.cuda", normalize=_conv_args, reference=reference)
def conv2d_NCHWc_int8_cuda(cfg, data_shape, kernel_shape, stride=1, padding=0, dilation=1, groups=1,
                           dtype="int8", out_dtype="int32"):
    """Tunable template: int8 conv2d in NCHW[x]c / OIHW[y]o[x]i scheduled for CUDA with dp4a.

    Returns ``(schedule, [data, kernel, out])``. Called without ``cfg``
    (``conv2d_NCHWc_int8_cuda(data_shape, kernel_shape, ...)``) it uses the dispatch context.
    """
    data = te.placeholder(data_shape, dtype, "data")
    kernel = te.placeholder(kernel_shape, dtype, "kernel")
    out = conv2d_NCHWc_int8(data, kernel, stride, padding, dilation, groups, out_dtype)
    return schedule_conv2d_NCHWc_int8(out, cfg=cfg), [data, kernel, out]


def _resolve_config(conv, cfg) -> dict:
    """Plain knob values from a config object, a dict (over the default) or the dispatch context."""
    return resolve_config(cfg, ("conv2d_NCHWc_int8.cuda",) + _workload_args(conv), default_config(conv),
                          lambda c: define_knobs(c, conv), [k for k, _ in _KNOB_SPLITS] + list(_KNOB_FLAGS),
                          "schedule_conv2d_NCHWc_int8")


def schedule_conv2d_NCHWc_int8(outs, cfg=None):
    """Schedule the int8 convolution feeding ``outs`` (its epilogue ops are inlined).

    ``cfg``: an autotune config (space, entity or fallback), a dict of knob values (missing
    ones from :func:`default_config`), or ``None`` to ask the current dispatch context.
    """
    outs = as_list(outs)
    s = te.create_schedule([t.op for t in outs])
    conv = find_op(outs[0], "conv2d_NCHWc_int8", "schedule_conv2d_NCHWc_int8").output(0)
    cfg = _resolve_config(conv, cfg)
    for key in ("vector_weight", "vector_data"):
        if cfg[key] not in (4, 16):
            raise ScheduleError(f"knob {key}: bytes per fetch must be 4 or 16, got {cfg[key]!r}")
    output = outs[0]
    pad_data, packed_kernel = conv.op.input_tensors
    for t in (pad_data, packed_kernel):
        if isinstance(t.op, ComputeOp) and not t.op.reduce_axis and "pad" in t.op.tag:
            s[t].compute_inline()
    # inline epilogues between conv and output
    inline_between(s, conv, output, "schedule_conv2d_NCHWc_int8")
    if conv.op is output.op:
        conv = s.cache_write(conv, "local")
    else:
        s[conv].set_scope("local")
    loads = []
    if not cfg["cache_data"] and any(conv.op.attrs.get("padding", (0,))):
        raise ScheduleError(f"knob cache_data=False: {conv.name} is padded; the padded data must be staged "
                            "through shared memory (cache_data=True)")
    data_load = None
    if cfg["cache_data"]:
        data_load = s.cache_read(conv.op.input_tensors[0], "shared", [conv])
        loads.append(data_load)
    if cfg["vector_data"] == 16:
        if not (cfg["cache_data"] and _wide_data_fetch_possible(conv) and _block_columns(cfg) % 4 == 0):
            raise ScheduleError(f"knob vector_data=16: {conv.name} needs staged data (cache_data), no padding, "
                                "kernel width 1, stride 1 along x, a width divisible by 4 and a block tile "
                                f"of columns divisible by 4 (tile_x {cfg['tile_x']})")
    weight_load = None
    if cfg["cache_weight"]:
        weight_load = s.cache_read(conv.op.input_tensors[1], "shared", [conv])
        loads.append(weight_load)

    bn, inner, threads = tile_conv_output(s, output, cfg, fuse_yx=cfg["fuse_yx"], vectorize_block=True)
    s[conv].compute_at(s[output], inner)
    apply_unroll_knobs(s, output, bn, cfg)

    # reduction
    cn, cf, cy, cx, cc = s[conv].op.axis
    rc, ry, rx, rc_block = s[conv].op.reduce_axis
    for key, ax in (("tile_rc", rc), ("tile_ry", ry), ("tile_rx", rx)):
        check_split(cfg, key, int(ax.dom.extent.value), 2)
    rco, rci = apply_split(s, conv, rc, cfg["tile_rc"])
    ryo, ryi = apply_split(s, conv, ry, cfg["tile_ry"])
    rxo, rxi = apply_split(s, conv, rx, cfg["tile_rx"])
    s[conv].reorder(rco, ryo, rxo, rci, ryi, rxi, cn, cf, cy, cx, cc, rc_block)
    for ax in (cn, cf, cy, cx, cc):     # accumulators stay in registers only if indexed by constants
        s[conv].unroll(ax)
    if int(rc_block.dom.extent.value) % 4:
        raise ScheduleError(f"{conv.name}: the packed channel block ({rc_block.dom.extent}) must be a multiple of 4 for dp4a")
    _, rcb = s[conv].split(rc_block, factor=4)
    s[conv].tensorize(rcb, dp4a())
    attach = rxo
    if cfg["double_buffer"]:
        # one loop over all reduction tiles, so the pipeline runs across rc, ry and rx
        attach = s[conv].fuse(rco, ryo, rxo)
    for load in loads:
        s[load].compute_at(s[conv], attach)
        if cfg["double_buffer"]:
            s[load].double_buffer()
        # cooperative fetching: 4 int8 channels (one 32-bit word) per thread and step, or for
        # weights a whole 4x4 (output x input channel) block, for data 4 neighbouring pixels:
        # 16 contiguous bytes
        vector = 4
        if cfg["vector_data"] == 16 and load is data_load:
            *_, xk, cb = s[load].leaf_iter_vars
            s[load].fuse(xk, cb)
            vector = 16
        if cfg["vector_weight"] == 16 and load is weight_load:
            *_, obk, icb = s[load].leaf_iter_vars
            if int(obk.dom.extent.value) * int(icb.dom.extent.value) % 16:
                raise ScheduleError(f"knob vector_weight=16: the weight block of {conv.name} "
                                    f"({obk.dom.extent} x {icb.dom.extent}) is not a multiple of 16 bytes")
            s[load].fuse(obk, icb)
            vector = 16
        cooperative_fetch(s, load, threads, vector=vector)
    return s


__all__ = ["schedule_conv2d_NCHWc_int8", "default_config", "define_knobs", "conv2d_NCHWc_int8_cuda", "reference"]
