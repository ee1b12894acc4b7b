"""Helpers shared by the schedule templates: finding the anchor op, tiling arithmetic, inlining,
cooperative shared-memory fetching, template arguments and configs."""
from __future__ import annotations

from .. import autotune, te
from ..errors import ScheduleError
from ..tensor import ComputeOp
from .nn.conv2d import normalize_padding


def as_list(outs) -> list:
    """``outs`` as a list of tensors."""
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def find_op(out, tags, what: str):
    """The operation tagged with one of ``tags`` that (transitively) feeds ``out``."""
    tags = (tags,) if isinstance(tags, str) else tuple(tags)
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


def ops_above(output, anchor) -> list:
    """The compute ops that ``output`` reads (``output``'s own included), back to (not past)
    ``anchor``: a template's epilogue, and side computations such as a correction term."""
    seen, stack, found = set(), [output.op], []
    while stack:
        op = stack.pop()
        if op in seen or op is anchor.op or not isinstance(op, ComputeOp):
            continue
        seen.add(op)
        found.append(op)
        stack.extend(t.op for t in op.input_tensors)
    return found


def reader_of(output, tensor, what: str):
    """The operation between ``output`` and ``tensor`` (inclusive of ``output``'s) that reads
    ``tensor`` (a stage a template computes itself, e.g. its GEMM; the fused epilogue, if any,
    lies between that reader and ``output``)."""
    stack, seen = [output.op], set()
    while stack:
        op = stack.pop()
        if op in seen or not hasattr(op, "input_tensors"):
            continue
        seen.add(op)
        if any(t.op is tensor.op for t in op.input_tensors):
            return op
        stack.extend(t.op for t in op.input_tensors)
    raise ScheduleError(f"{what}: {output.name} does not read {tensor.name}")


def divisors(n: int) -> list:
    """All positive divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit``."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def apply_split(s, stage, axis, factors) -> list:
    """Split ``axis`` into ``len(factors)`` loops with these extents (outermost first)."""
    out = []
    rest = axis
    for f in reversed(factors[1:]):
        rest, inner = s[stage].split(rest, factor=f)
        out.append(inner)
    out.append(rest)
    return list(reversed(out))


def check_split(cfg, key, extent, parts) -> None:
    """Knob ``key`` must hold ``parts`` positive factors whose product is ``extent``."""
    factors = cfg[key]
    if len(factors) != parts:
        raise ScheduleError(f"knob {key}: expected {parts} factors, got {factors}")
    prod = 1
    for f in factors:
        if int(f) < 1:
            raise ScheduleError(f"knob {key}: factors must be positive, got {factors}")
        prod *= int(f)
    if prod != extent:
        raise ScheduleError(f"knob {key}: factors {factors} multiply to {prod}, but the axis has extent {extent}")


def inline_between(s, anchor, output, what: str) -> None:
    """Inline every op on the paths from ``anchor`` to ``output`` (``output`` itself excluded);
    they must be element-wise."""
    memo = {}

    def depends(t):
        if t.op not in memo:
            memo[t.op] = t.op is anchor.op or (isinstance(t.op, ComputeOp)
                                               and any(depends(i) for i in t.op.input_tensors))
        return memo[t.op]

    def visit(t):
        if t.op is anchor.op or not depends(t):
            return
        if t.op is not output.op:
            if t.op.reduce_axis:
                raise ScheduleError(f"{what}: {t.name} between {anchor.name} and the output is not element-wise")
            s[t].compute_inline()
        for i in t.op.input_tensors:
            visit(i)

    visit(output)


def cooperative_fetch(s, load, threads, vector: int = 1):
    """Let a block's threads fill the shared-memory stage ``load`` (a ``cache_read``) together.

    All of ``load``'s loops (its leaf axes: fuse trailing axes beforehand to vectorize across
    them) are fused into one loop, which is split by the thread counts and
    bound: ``threads`` lists ``(extent, thread_axis)`` pairs **innermost first** (the first pair
    takes consecutive elements, e.g. ``[(n_tx, "threadIdx.x"), (n_ty, "threadIdx.y")]``); a
    thread axis may be given as a ``te.thread_axis`` or as its tag. With ``vector > 1`` the last
    axis is first split by ``vector`` and the inner loop vectorized (one ``vector``-wide load per
    thread and step); the fetched region's last extent must then be a multiple of ``vector``
    (and its global address aligned to it). What remains of the fused loop after the thread
    splits runs serially in every thread (guarded where the counts do not divide the region).

    Returns that remaining outer loop.
    """
    stage = s[load]
    axes = list(stage.leaf_iter_vars)
    vector = int(vector)
    if vector < 1:
        raise ScheduleError(f"cooperative_fetch of {load.name}: vector must be >= 1, got {vector}")
    if vector > 1:
        outer, inner = stage.split(axes[-1], factor=vector)
        stage.vectorize(inner)
        axes = axes[:-1] + [outer]
    fused = stage.fuse(*axes)
    for extent, axis in threads:
        if int(extent) < 1:
            raise ScheduleError(f"cooperative_fetch of {load.name}: thread counts must be positive, got {extent}")
        fused, inner = stage.split(fused, factor=int(extent))
        stage.bind(inner, te.thread_axis(axis) if isinstance(axis, str) else axis)
    return fused


def tile_conv_output(s, output, cfg, fuse_yx: bool = False, vectorize_block: bool = False):
    """Tile a conv output ``(n, f, y, x[, c])`` for CUDA by the 4-way knobs ``tile_n``,
    ``tile_f``, ``tile_y``, ``tile_x`` [block, vthread, thread, inner] and bind the parts:
    blocks z = n, y = f, x = y·x; one virtual thread axis each; threads z = n·f, y = y, x = x,
    or with ``fuse_yx`` z = n, y = f, x = y·x. Trailing axes (``c``) stay innermost.

    The per-thread loops (inner parts and trailing axes) are unrolled, so that the values a
    thread keeps in registers are indexed by constants; ``vectorize_block`` vectorizes the
    last trailing axis instead (a packed channel block: one vector store). Returns ``(kernel
    scope, innermost thread loop, threads)``: the outermost block loop (for unroll pragmas),
    the loop to compute the accumulating stage at, and the ``(count, thread axis)`` pairs
    innermost first (for :func:`cooperative_fetch`).
    """
    n, f, y, x, *rest = s[output].op.axis
    for key, ax in (("tile_n", n), ("tile_f", f), ("tile_y", y), ("tile_x", x)):
        check_split(cfg, key, int(ax.dom.extent.value), 4)
    bn, vn, tn, ni = apply_split(s, output, n, cfg["tile_n"])
    bf, vf, tf, fi = apply_split(s, output, f, cfg["tile_f"])
    by, vy, ty, yi = apply_split(s, output, y, cfg["tile_y"])
    bx, vx, tx, xi = apply_split(s, output, x, cfg["tile_x"])
    s[output].reorder(bn, bf, by, bx, vn, vf, vy, vx, tn, tf, ty, tx, ni, fi, yi, xi, *rest)
    block = rest[-1] if vectorize_block and rest else None
    for ax in (ni, fi, yi, xi, *rest):      # registers are indexed by constants only
        if ax is block:
            s[output].vectorize(ax)
        else:
            s[output].unroll(ax)
    s[output].bind(bn, te.thread_axis("blockIdx.z"))
    s[output].bind(bf, te.thread_axis("blockIdx.y"))
    s[output].bind(s[output].fuse(by, bx), te.thread_axis("blockIdx.x"))
    for v, name in ((vn, "vn"), (vf, "vf"), (vy, "vy"), (vx, "vx")):
        s[output].bind(v, te.thread_axis("vthread", name=name))
    tz_axis, ty_axis, tx_axis = (te.thread_axis("threadIdx.z"), te.thread_axis("threadIdx.y"),
                                 te.thread_axis("threadIdx.x"))
    n_t, f_t, y_t, x_t = (cfg[k][2] for k in ("tile_n", "tile_f", "tile_y", "tile_x"))
    if fuse_yx:
        s[output].bind(tn, tz_axis)
        s[output].bind(tf, ty_axis)
        inner = s[output].fuse(ty, tx)
        s[output].bind(inner, tx_axis)
        threads = [(y_t * x_t, tx_axis), (f_t, ty_axis), (n_t, tz_axis)]
    else:
        s[output].bind(s[output].fuse(tn, tf), tz_axis)
        s[output].bind(ty, ty_axis)
        s[output].bind(tx, tx_axis)
        inner = tx
        threads = [(x_t, tx_axis), (y_t, ty_axis), (n_t * f_t, tz_axis)]
    return bn, inner, threads


def conv_args(data_shape, kernel_shape, stride, padding, dilation, groups, dtype, out_dtype) -> tuple:
    """A conv template's arguments in canonical form: int tuples, (h, w) pairs, 4-tuple padding."""

    def pair(v):
        return (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)

    return (tuple(int(d) for d in data_shape), tuple(int(d) for d in kernel_shape), pair(stride),
            normalize_padding(padding if isinstance(padding, int) else tuple(padding)), pair(dilation),
            int(groups), str(dtype), str(out_dtype))


def conv_workload_args(conv) -> tuple:
    """The (canonical) template arguments that declare convolution ``conv``: its unpadded input
    and kernel shapes, its attributes and dtypes — the key its tuned config is logged under."""
    pad_data, kernel = conv.op.input_tensors[:2]
    data = pad_data
    if isinstance(pad_data.op, ComputeOp) and "pad" in pad_data.op.tag and pad_data.op.input_tensors:
        data = pad_data.op.input_tensors[0]
    attrs = conv.op.attrs
    return conv_args(tuple(int(d.value) for d in data.shape), tuple(int(d.value) for d in kernel.shape),
                     attrs.get("stride", 1), attrs.get("padding", 0), attrs.get("dilation", 1),
                     attrs.get("groups", 1), data.dtype, conv.dtype)


def resolve_config(cfg, workload: tuple, default: dict, define_knobs, knobs, what: str,
                   target: str = "cuda") -> dict:
    """Plain knob values for a template's schedule function.

    ``cfg``: ``None`` (ask the current autotune dispatch context for ``workload``, a tuple
    ``(template name, *args)``), a dict (merged over ``default``; a name not in ``knobs`` is a
    ScheduleError) or a config object (space, entity, fallback), on which ``define_knobs(cfg)``
    declares the template's knobs first.
    """
    if cfg is None:
        cfg = autotune.DispatchContext.current().query(target, workload)
    if isinstance(cfg, dict):
        unknown = [k for k in cfg if k not in knobs]
        if unknown:
            raise ScheduleError(f"{what}: unknown knob(s) {unknown} (knobs: {list(knobs)})")
        return dict(default, **cfg)
    define_knobs(cfg)
    return {key: (cfg[key].size if hasattr(cfg[key], "size") else cfg[key].val) for key in knobs}


#: the unroll knobs every CUDA template declares (after its splits): ``auto_unroll_max_step``
#: becomes the kernel's ``#pragma unroll`` budget, ``unroll_explicit`` unrolls in the IR instead
UNROLL_KNOBS = {"auto_unroll_max_step": [0, 512, 1500], "unroll_explicit": [False, True]}


def define_unroll_knobs(cfg) -> None:
    """Declare :data:`UNROLL_KNOBS` on ``cfg``."""
    for key, values in UNROLL_KNOBS.items():
        cfg.define_knob(key, values)


def unroll_compiles_fast(cfg) -> bool:
    """Whether the unroll knobs of config ``cfg`` (values or knob entities) give CUDA C that NVRTC
    compiles in about a second: explicit copies only where no loop is unrolled by step count.
    Copied out in the IR across virtual threads, a 1500-step unroll was measured at 3.8 MB of
    source and two minutes of NVRTC; ``#pragma unroll`` lets nvcc unroll the same loops at once."""
    def val(k):
        v = cfg[k]
        return getattr(v, "val", v)
    return not val("unroll_explicit") or val("auto_unroll_max_step") == 0


def apply_unroll_knobs(s, stage, axis, cfg) -> None:
    """Set the unroll knobs of ``cfg`` (plain values) as pragmas on ``axis`` of ``stage``: they
    cover the loops below it. ``auto_unroll_max_step`` must be a non-negative int and
    ``unroll_explicit`` a bool."""
    step = cfg["auto_unroll_max_step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ScheduleError(f"knob auto_unroll_max_step: expected a non-negative int, got {step!r}")
    if not isinstance(cfg["unroll_explicit"], (bool, int)):
        raise ScheduleError(f"knob unroll_explicit: expected a bool, got {cfg['unroll_explicit']!r}")
    s[stage].pragma(axis, "auto_unroll_max_step", step)
    s[stage].pragma(axis, "unroll_explicit", int(cfg["unroll_explicit"]))
