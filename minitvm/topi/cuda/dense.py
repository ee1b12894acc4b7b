"""CUDA schedule of ``topi.nn.dense`` (float) and ``dense_int8`` (with ``dp4a``).

``out[i, j] = sum_k data[i, k] * weight[j, k]`` (weight in ``[units, in]`` layout). Blocks
tile (batch rows, units); each thread keeps a register tile of outputs; the reduction runs
over k-tiles of data and weight that the block's threads stage in shared memory together
(4-wide vector loads when the k-tile allows); for int8 the innermost 4 of each k-tile are one
``__dp4a``. Element-wise epilogues (bias, requantize, relu) are inlined into the output.

Knobs (declared by :func:`define_knobs`; :func:`default_config` picks sound values from the
shape and is the fallback when nothing was tuned): ``tile_y`` / ``tile_x`` — 3-way splits
[block, thread, inner] of rows / units (``blockIdx.y`` / ``blockIdx.x``, ``threadIdx.y`` /
``threadIdx.x``); ``tile_k`` — the [outer, inner] split of the reduction (the inner part is
the shared-memory k-tile, at most 256; for int8 a multiple of 4); ``auto_unroll_max_step``
(0 / 512 / 1500) and ``unroll_explicit`` (False / True).

The tunable template is ``dense.cuda`` (:func:`dense_cuda`, args ``(data_shape, weight_shape,
dtype, out_dtype)``; int8 data needs ``out_dtype="int32"``). The search skips configs that
cannot run (over 1024 threads or 48 KB of shared memory) and ones that are rarely fast (over
128 accumulators per thread or half the register file per block, fewer than 32 threads or 128
blocks — each unless the default config has as few). :func:`schedule_dense` takes a config
object, a plain dict of knob values (merged over the default), or nothing: then the current
``minitvm.autotune`` dispatch context decides (the best logged config under
``ApplyHistoryBest``, else the default with a one-time warning).
"""
from __future__ import annotations

from ... import autotune, te
from .. import testing
from ...dtype import bits
from ...errors import ScheduleError
from ...target import cuda_limits
from ..utils import (UNROLL_KNOBS, apply_split, apply_unroll_knobs, as_list, check_split, cooperative_fetch,
                     define_unroll_knobs, find_op, inline_between, largest_divisor, resolve_config,
                     unroll_compiles_fast)
from ..generic.tensor_intrin import dp4a
from ..nn.dense import dense, dense_int8

_LIMITS = cuda_limits()  # what a block may ask for; every config filter respects it
_KNOB_SPLITS = (("tile_y", 3), ("tile_x", 3), ("tile_k", 2))
_MAX_K_TILE = 256
_MAX_LOCAL = 128             # accumulators per thread
_MAX_LOCAL_REGS = 32 * 1024  # accumulators per block: half of the 64K-register file
_MIN_BLOCKS = 128            # about one block per SM, unless the default has fewer
_TARGET_BLOCKS = 512         # what the default aims for
_DEFAULT_SHARED = 16 * 1024  # the default's k-tile fills up to this much shared memory


def _is_int8(dense) -> bool:
    return dense.op.input_tensors[0].dtype in ("int8", "uint8")


def _shape(dense) -> tuple:
    """(M, N, K) of a dense tensor."""
    M, N = (int(d.value) for d in dense.shape)
    return M, N, int(dense.op.reduce_axis[0].dom.extent.value)


def _check_dp4a(dense) -> None:
    M, N, K = _shape(dense)
    if K % 4:
        raise ScheduleError(f"dense_int8: the reduction length {K} must be a multiple of 4 for dp4a; "
                            "pad the input features")
    if dense.dtype != "int32":
        raise ScheduleError(f"dense_int8: dp4a accumulates in int32, but {dense.name} is {dense.dtype}")


def default_config(dense) -> dict:
    """A sound configuration for ``dense`` (a dense / dense_int8 tensor).

    Small batches are bound by reading the weights: a block takes all rows of the batch (up to
    16), so each weight is read once, and as few units as still give about 512 blocks, with a
    warp of threads or more (8 for batch 1, spreading the weights over more SMs). With 16K
    outputs or more (and 16 rows or more) each thread computes 2 rows x 2 units, else one
    output. The k-tile is as long as 16 KB of shared memory allows (at most 256; for int8 a
    multiple of 4). Measured on an H200 against the earlier fixed tiles: 2.2-4.4x faster on
    the seed models' classifier layers at batch 1 and 16.
    """
    M, N, K = _shape(dense)
    int8 = _is_int8(dense)
    if int8:
        _check_dp4a(dense)
    many = M * N >= 16 * 1024
    reg = M >= 16 and many
    yi = largest_divisor(M, 2) if reg or M >= 32 else 1
    ty = largest_divisor(M // yi, 8 if reg else 16)
    xi = largest_divisor(N, 2) if many else 1
    blocks_y = M // (ty * yi)
    units = N // (xi * -(-_TARGET_BLOCKS // blocks_y))        # per block, for about 512 blocks
    min_threads = 8 if M == 1 else 32
    tx = largest_divisor(N // xi, min(32, max(-(-min_threads // ty), units)))
    y_t, x_t = ty * yi, tx * xi
    elem = max(1, bits(dense.op.input_tensors[0].dtype) // 8)
    limit = max(1, min(_MAX_K_TILE, _DEFAULT_SHARED // ((y_t + x_t) * elem)))
    if int8:
        kt = 4 * largest_divisor(K // 4, max(1, limit // 4))
    else:
        kt = largest_divisor(K, limit)
    return {"tile_y": [M // y_t, ty, yi], "tile_x": [N // x_t, tx, xi], "tile_k": [K // kt, kt],
            "auto_unroll_max_step": 512, "unroll_explicit": False}


def _footprint(dense, v: dict) -> dict:
    """What knob values ``v`` (plain split sizes) ask of the GPU: threads per block,
    accumulators per thread, shared bytes per block, blocks."""
    elem = max(1, bits(dense.op.input_tensors[0].dtype) // 8)
    (by, ty, yi), (bx, tx, xi), (_, kt) = v["tile_y"], v["tile_x"], v["tile_k"]
    return {"threads": ty * tx, "local": yi * xi, "shared": (ty * yi + tx * xi) * kt * elem, "blocks": by * bx}


def define_knobs(cfg, dense) -> None:
    """Declare the template's knobs for ``dense`` on ``cfg`` (a ConfigSpace, entity or fallback);
    a fallback gets :func:`default_config`'s values. int8 k-tiles are multiples of 4 (dp4a).
    The search skips configs that cannot run (over 1024 threads or 48 KB of shared memory)
    and ones that are rarely fast: over 128 accumulators per thread, more accumulators per
    block than half the register file, fewer than 32 threads or 128 blocks (or than the
    default has, if that is fewer)."""
    int8 = _is_int8(dense)
    if int8:
        _check_dp4a(dense)
    i, j = dense.op.axis
    (k,) = dense.op.reduce_axis
    cfg.define_split("tile_y", i, num_outputs=3)
    cfg.define_split("tile_x", j, num_outputs=3)
    cfg.define_split("tile_k", k, num_outputs=2, max_factor=_MAX_K_TILE,
                     filter=(lambda e: e.size[1] % 4 == 0) if int8 else None)
    define_unroll_knobs(cfg)
    default = default_config(dense)
    d = _footprint(dense, default)
    min_threads, min_blocks = min(32, d["threads"]), min(_MIN_BLOCKS, d["blocks"])
    max_local = max(_MAX_LOCAL, d["local"])
    max_regs = max(_MAX_LOCAL_REGS, d["local"] * d["threads"])

    def sound(c):
        f = _footprint(dense, {key: c[key].size for key, _ in _KNOB_SPLITS})
        return (min_threads <= f["threads"] <= _LIMITS.max_threads_per_block
                and f["shared"] <= _LIMITS.max_static_shared_bytes
                and f["local"] <= max_local and f["local"] * f["threads"] <= max_regs
                and f["blocks"] >= min_blocks and unroll_compiles_fast(c))

    cfg.multi_filter(sound)
    if cfg.is_fallback:
        cfg.fallback_with(default)


def _dense_args(data_shape, weight_shape, dtype="float32", out_dtype=None):
    """The template's arguments in canonical form (``out_dtype`` filled in: int32 for int8)."""
    dtype = str(dtype)
    if out_dtype is None:
        out_dtype = "int32" if dtype in ("int8", "uint8") else dtype
    return tuple(int(d) for d in data_shape), tuple(int(d) for d in weight_shape), dtype, str(out_dtype)


def _workload_args(dense) -> tuple:
    """The template arguments that declare ``dense`` (for looking up its tuned config)."""
    data, weight = dense.op.input_tensors[:2]
    return _dense_args(tuple(int(d.value) for d in data.shape), tuple(int(d.value) for d in weight.shape),
                       data.dtype, dense.dtype)


def reference(inputs, data_shape, weight_shape, dtype="float32", out_dtype=None):
    """numpy ``data @ weight.T`` of ``inputs = [data, weight]`` (int64 / float64 sums)."""
    data, weight = inputs
    out_dtype = _dense_args(data_shape, weight_shape, dtype, out_dtype)[3]
    return [testing.dense(data, weight).astype(out_dtype)]


@autotune.template("dense.cuda", normalize=_dense_args, reference=reference)
def dense_cuda(cfg, data_shape, weight_shape, dtype="float32", out_dtype=None):
    """Tunable template: ``out = data @ weight.T`` (weight ``[units, in]``) scheduled for CUDA;
    int8 inputs (``out_dtype="int32"``) use dp4a.

    Returns ``(schedule, [data, weight, out])``. Called without ``cfg``
    (``dense_cuda(data_shape, weight_shape, dtype)``) it uses the dispatch context.
    """
    out_dtype = _dense_args(data_shape, weight_shape, dtype, out_dtype)[3]
    data = te.placeholder(data_shape, dtype, "data")
    weight = te.placeholder(weight_shape, dtype, "weight")
    if dtype in ("int8", "uint8") and out_dtype == "int32":
        out = dense_int8(data, weight)
    else:
        out = dense(data, weight, out_dtype=out_dtype)
    return schedule_dense(out, cfg=cfg), [data, weight, out]


def _resolve_config(dense, cfg) -> dict:
    """Plain knob values from a config object, a dict (over the default) or the dispatch context."""
    return resolve_config(cfg, ("dense.cuda",) + _workload_args(dense), default_config(dense),
                          lambda c: define_knobs(c, dense), [k for k, _ in _KNOB_SPLITS] + list(UNROLL_KNOBS),
                          "schedule_dense")


def schedule_dense(outs, cfg=None):
    """Schedule the dense layer feeding ``outs`` (int8 inputs use dp4a; element-wise epilogues
    are inlined).

    ``cfg``: an autotune config (space, entity or fallback), a dict of knob values (missing
    ones from :func:`default_config`), or ``None`` to ask the current dispatch context for
    the ``dense.cuda`` workload of this layer.
    """
    outs = as_list(outs)
    output = outs[0]
    s = te.create_schedule([t.op for t in outs])
    dense = find_op(output, "dense", "schedule_dense").output(0)
    use_dp4a = _is_int8(dense)
    if use_dp4a:
        _check_dp4a(dense)
    cfg = _resolve_config(dense, cfg)
    data, weight = dense.op.input_tensors
    inline_between(s, dense, output, "schedule_dense")
    if dense.op is output.op:
        dense = s.cache_write(dense, "local")
    else:
        s[dense].set_scope("local")
    AA = s.cache_read(data, "shared", [dense])
    WW = s.cache_read(weight, "shared", [dense])

    i, j = s[output].op.axis
    check_split(cfg, "tile_y", int(i.dom.extent.value), 3)
    check_split(cfg, "tile_x", int(j.dom.extent.value), 3)
    by, ty, yi = apply_split(s, output, i, cfg["tile_y"])
    bx, tx, xi = apply_split(s, output, j, cfg["tile_x"])
    s[output].reorder(by, bx, ty, tx, yi, xi)
    thread_y, thread_x = te.thread_axis("threadIdx.y"), te.thread_axis("threadIdx.x")
    s[output].bind(by, te.thread_axis("blockIdx.y"))
    s[output].bind(bx, te.thread_axis("blockIdx.x"))
    s[output].bind(ty, thread_y)
    s[output].bind(tx, thread_x)
    s[dense].compute_at(s[output], tx)
    apply_unroll_knobs(s, output, by, cfg)

    (k,) = s[dense].op.reduce_axis
    check_split(cfg, "tile_k", int(k.dom.extent.value), 2)
    kt = cfg["tile_k"][1]
    ko, ki = apply_split(s, dense, k, cfg["tile_k"])
    ci, cj = s[dense].op.axis
    if use_dp4a:
        if kt % 4:
            raise ScheduleError(f"knob tile_k: the inner k-tile ({kt}) must be a multiple of 4 for dp4a")
        kio, k4 = s[dense].split(ki, factor=4)
        s[dense].reorder(ko, kio, ci, cj, k4)
        s[dense].tensorize(k4, dp4a())
    else:
        s[dense].reorder(ko, ki, ci, cj)
        s[dense].unroll(ki)
    s[AA].compute_at(s[dense], ko)
    s[WW].compute_at(s[dense], ko)
    # 4-wide loads need k-tiles (and so, as they divide it, K) of a multiple of 4: aligned rows
    vector = 4 if kt % 4 == 0 else 1
    threads = [(cfg["tile_x"][1], thread_x), (cfg["tile_y"][1], thread_y)]
    for load in (AA, WW):
        cooperative_fetch(s, load, threads, vector=vector)
    return s


__all__ = ["schedule_dense", "default_config", "define_knobs", "dense_cuda", "reference"]
