"""Layout rewriting: convolutions move to the layouts their templates (CUDA, x86) read.

int8 convolutions, one layout per template family:

- **NHWC / OHWI** for the implicit GEMM on the int8 tensor cores, where the target has them
  (``Target.features`` has ``mma_s8_m16n8k32``: sm_80 and up) and the conv fits it (groups 1,
  at least 16 input channels, zero-padded to a multiple of 32, output channels a multiple of 8).
  A conv over fewer channels (the RGB first layer) gets there by ``fold_kernel_width``: the taps
  of a kernel row become channels (``KW * C``, padded to 32), and the conv a ``KH x 1`` one over
  them with its weights packed to match (7 x 7 over 3 channels: 21 of every 32 products useful,
  against 3 of 32 with the channels padded alone). An int8 ``deformable_conv2d`` gets there as
  ``deformable_sample`` (its int8 samples as NHWC channels, tap by tap) and a 1 x 1 conv;
- **NCHW[x]c / OIHW[L]o4i (or int16 OIHW8o2i) -> NCHW[L]c** for the x86 template
  (``topi/cpu/conv2d_int8.py``) on an LLVM target with AVX2 or VNNI (``L`` = 16 with AVX512-VNNI,
  else 8; groups 1, output channels a multiple of 8; ``x`` such that a conv reads the previous
  one's output as it is), and NCHW[b]c / OIHW[b]o for int8 depthwise convs there. The template
  multiplies unsigned data: int8 data that is never negative (a relu's, or a clip's at 0 or
  above) enters as uint8 through a cast, which fuses into its producer, and the template skips
  its ``+128`` shift of the data and the correction of the sums;
- **NCHW[x]c / OIHW[x]o[x]i** (``x`` = ``factor``, 4) for the ``dp4a`` templates, which read 4 input
  channels as one 32-bit word: every other int8 conv (older GPUs, other CPUs, grouped convs).

float32 convolutions on an LLVM target with AVX2 or AVX-512 (``float32=True``): **NCHW[ib]c /
OIHW[ib]i[ob]o -> NCHW[ob]c** (depthwise: NCHW[b]c / OIHW[b]o) for ``topi/cpu/conv2d_nchwc.py``,
blocks of up to 16 (AVX-512) or 8 (AVX2) channels. ``build`` runs the pass with ``int8=False``.

An int8 ``dense`` (the classifier of a fully int8 or a pre-quantized model) keeps its layout but,
on CUDA, gets its features padded with zeros to a multiple of 32 and either ``split_k`` (batches
of at most 16 rows: partial dp4a sums over slices of the features, so that many threads stream
the weights) or, with tensor cores, ``gemm_int8`` (the tensor-core GEMM computes it).

The pass rewrites each int8 NCHW conv2d to its layout, lets the element-wise ops and max pools that
follow it (relu, requantize, int8 adds, casts, also with one-element constants such as zero
points; per-channel requantize on the channel axis) and constant padding over H and W work in that
layout too, and inserts ``layout_transform`` only where a value crosses into an op that needs
another layout. Transforms of constants (the weights) are folded, so weights are packed once at
build time, and back-to-back transforms that undo each other cancel. In an int8 ResNet the only
transforms left are at the model's input and output boundaries.
"""
from __future__ import annotations

import numpy as np

from ...target import Target
from .fold_constant import fold_constant

# ops that compute element by element (or window by window over H, W) and so work unchanged
# on a packed tensor; their output keeps the input's layout
LAYOUT_AGNOSTIC = {"relu", "clip", "cast", "requantize", "qadd", "add", "sub", "mul", "max_pool2d",
                   "quantize", "dequantize"}
NHWC, OHWI = "NHWC", "OHWI"
TENSOR_CORE_FEATURE = "mma_s8_m16n8k32"
TENSOR_CORE_K = 32      # input channels per k-step of mma.m16n8k32: NHWC convs pad theirs to a multiple
TENSOR_CORE_N = 8       # output channels per mma.m16n8k32 tile: NHWC convs pad theirs to a multiple


def _is_int8(t) -> bool:
    return t.dtype in ("int8", "uint8")


def alter_layout(graph, factor: int = 4, target=None, int8: bool = True, float32: bool = True):
    """Rewrite int8 conv2d (``int8``) and, on LLVM targets with AVX2 or AVX-512, float32 conv2d
    (``float32``) and their neighbours to their templates' layouts for ``target`` (a
    :class:`~minitvm.target.Target` or its string; None: the current target, else the dp4a
    layouts only); return a new graph. Convs already in another layout stay as they are, so
    running the pass again on its result changes nothing."""
    from ..ir import Graph
    target = Target(target) if target is not None else Target.current()
    tensor_cores = target is not None and TENSOR_CORE_FEATURE in target.features
    packed, kernel_packed = f"NCHW{factor}c", f"OIHW{factor}o{factor}i"
    x86 = x86_int8_lanes(target)
    vnni = x86 is not None and bool({"avxvnni", "avx512vnni"} & target.features)
    float_lanes = x86_float_lanes(target) if float32 else None
    g = Graph(graph.name)
    channels: dict = {}   # value this pass put in another layout -> its true channel count
    twin: dict = {}       # (value, layout) -> the value converted to that layout

    def convert(v, layout):
        t = g.node(v).type
        cur = t.layout or "NCHW"
        if cur == layout:
            return v
        key = (v, layout)
        if key not in twin:
            attrs = {"src_layout": cur, "dst_layout": layout}
            if v in channels and (cur != NHWC or channels[v] < t.shape[3]):
                attrs["extents"] = {"C": channels[v]}
            twin[key] = g.add_op("layout_transform", [v], attrs, name=g.unique_name(f"{v}_{layout}"))
            if layout != "NCHW":
                channels[twin[key]] = channels.get(v, t.shape[1] if cur == "NCHW" else t.shape[3])
        return twin[key]

    def pad_axis(v, axis, size, value=0):
        """``v`` padded with ``value`` along ``axis`` to ``size`` (a constant's padding is folded)."""
        t = g.node(v).type
        extra = size - t.shape[axis]
        if extra <= 0:
            return v
        key = (v, "pad", axis, size)
        if key not in twin:
            pw = tuple((0, extra) if a == axis else (0, 0) for a in range(t.ndim))
            twin[key] = g.add_op("pad", [v], {"pad_width": pw, "value": value},
                                 name=g.unique_name(f"{v}_pad{size}"))
            if v in channels:
                channels[twin[key]] = channels[v]
        return twin[key]

    def pad_channels(v):
        """``v`` (NHWC or OHWI data and weights, or a dense's [N, K] ones) with its last axis
        zero-padded to a multiple of the k-step."""
        t = g.node(v).type
        extra = -t.shape[-1] % TENSOR_CORE_K
        key = (v, "pad")
        if key not in twin:
            twin[key] = g.add_op("pad", [v], {"pad_width": ((0, 0),) * (t.ndim - 1) + ((0, extra),)},
                                 name=g.unique_name(f"{v}_pad{t.shape[-1] + extra}"))
        return twin[key]

    for name in graph.topo_order():
        node = graph.node(name)
        if node.is_input:
            g.add_input(name, node.type.shape, node.type.dtype, node.type.layout)
            continue
        if node.is_const:
            g.add_const(name, node.value, node.type.layout)
            continue
        in_types = [g.node(i).type for i in node.inputs]
        attrs = dict(node.attrs)
        layouts, unsigned_data = None, False
        if node.op == "conv2d" and attrs.get("data_layout", "NCHW") == "NCHW" and float_lanes \
                and in_types[0].dtype == "float32":
            layouts = _float_layouts(in_types, attrs, float_lanes)
        elif node.op == "conv2d" and _is_int8(in_types[0]) and attrs.get("data_layout", "NCHW") == "NCHW" and int8:
            if tensor_cores and _foldable(in_types, attrs, graph.node(node.inputs[1])):
                fold_width(g, node, convert(node.inputs[0], NHWC), graph.node(node.inputs[1]).value)
                channels[name] = in_types[1].shape[0]
                continue
            if tensor_cores and _fits_tensor_cores(in_types, attrs, graph.node(node.inputs[1])):
                layouts = (NHWC, OHWI)
            elif x86 and _x86_int8_layouts(in_types, attrs, x86, vnni):
                layouts = _x86_int8_layouts(in_types, attrs, x86, vnni)
                unsigned_data = layouts[1].endswith("o4i") and attrs.get("groups", 1) == 1
            elif _packable(in_types, attrs, factor):
                layouts = (packed, kernel_packed)
        if layouts is not None:
            w = node.inputs[1]
            if layouts[1].endswith("o2i"):      # dot_i16 multiplies int16 weights (cast once, folded)
                w = g.add_op("cast", [w], {"dtype": "int16"}, name=g.unique_name(f"{w}_int16"))
            w = g.add_op("layout_transform", [w], {"src_layout": "OIHW", "dst_layout": layouts[1]},
                         name=g.unique_name(f"{node.inputs[1]}_{layouts[1]}"))
            data = convert(node.inputs[0], layouts[0])
            if unsigned_data and g.node(data).type.dtype == "int8" and _nonnegative(g, data):
                # int8 that is never negative is its own uint8: the template then needs no +128 shift
                # of the data and no correction of the sums
                data = g.add_op("cast", [data], {"dtype": "uint8"}, name=g.unique_name(f"{data}_u8"))
            if layouts[0] == NHWC and (in_types[1].shape[1] % TENSOR_CORE_K or
                                       g.node(data).type.shape[3] != in_types[1].shape[1]):
                # channels padded with zeros to whole k-steps, on the data and (folded) on the weights
                data, w = pad_channels(data), pad_channels(w)
            ins = [data, w] + list(node.inputs[2:])
            O = in_types[1].shape[0]
            if layouts[0] == NHWC and O % TENSOR_CORE_N:
                # output channels padded to whole 8-column tiles: zero weight rows (and bias); the
                # padded channels are cropped where the value leaves NHWC
                size = -(-O // TENSOR_CORE_N) * TENSOR_CORE_N
                ins = [data, pad_axis(w, 0, size)] + [pad_axis(b, 0, size) for b in ins[2:]]
            attrs.update(data_layout=layouts[0], kernel_layout=layouts[1])
            if len(layouts) > 2:
                attrs.update(out_layout=layouts[2])
            g.add_op("conv2d", ins, attrs, name=name)
            channels[name] = O
            continue
        if node.op == "deformable_conv2d" and int8 and tensor_cores and \
                _deformable_fits_tensor_cores(in_types, attrs, graph, node):
            sample_gemm(g, node, convert(node.inputs[0], NHWC), convert(node.inputs[1], "NCHW"),
                        graph.node(node.inputs[2]).value)
            channels[name] = in_types[2].shape[0]
            continue
        if node.op == "dense" and int8 and _dense_fits_split_k(target, in_types):
            from ...topi.cuda.dense_split_k import choose_splits
            ins = list(node.inputs)
            if in_types[0].shape[1] % TENSOR_CORE_K:
                ins[:2] = [pad_channels(v) for v in ins[:2]]
            features = g.node(ins[0]).type.shape[1]
            attrs["split_k"] = choose_splits(in_types[0].shape[0], in_types[1].shape[0], features)
            g.add_op("dense", ins, attrs, name=name)
            continue
        if node.op == "dense" and tensor_cores and _dense_fits_tensor_cores(in_types):
            ins = list(node.inputs)
            if in_types[0].shape[1] % TENSOR_CORE_K:
                # features padded with zeros to whole k-steps, on the data and (folded) on the weights
                ins[:2] = [pad_channels(v) for v in ins[:2]]
            attrs["gemm_int8"] = True
            g.add_op("dense", ins, attrs, name=name)
            continue
        if node.op == "dense" and attrs.get("weight_layout", "OI") == "OI" and \
                _x86_dense(g, node, in_types, attrs, float_lanes, x86 if int8 else None):
            continue
        layout_in = [t.layout if i in channels else None for i, t in zip(node.inputs, in_types)]
        first = next((lay for lay in layout_in if lay), None)
        if node.op == "requantize_per_channel" and first and attrs.get("axis", 1) % 4 == 1:
            ins = list(node.inputs)
            if first == NHWC:
                attrs["axis"] = 3                                     # the channel axis of NHWC
                # per-channel constants padded like the channels (with a valid multiplier and shift)
                c = in_types[0].shape[3]
                ins[1:] = [pad_axis(ins[1], 0, c, 1 << 30), pad_axis(ins[2], 0, c, 0)]
            g.add_op(node.op, ins, attrs, name=name)                 # per-channel constants stay [C]
            channels[name] = channels.get(node.inputs[0], in_types[0].shape[1] * factor)
            continue
        scalar = [g.node(i).is_const and g.node(i).type.size == 1 for i in node.inputs]
        if first and node.op in LAYOUT_AGNOSTIC and \
                all(sc or (t.ndim in (4, 5) and not g.node(i).is_const)
                    for i, t, sc in zip(node.inputs, in_types, scalar)):
            # a one-element constant (a zero point, a scale) broadcasts the same in any layout
            ins = [i if sc else convert(i, first) for i, sc in zip(node.inputs, scalar)]
            if first == NHWC:   # values with padded channels beside ones without: pad them all alike
                widest = max(g.node(i).type.shape[3] for i, sc in zip(ins, scalar) if not sc)
                ins = [i if sc else pad_axis(i, 3, widest) for i, sc in zip(ins, scalar)]
            g.add_op(node.op, ins, attrs, name=name)
            channels[name] = max(channels[i] for i, sc in zip(ins, scalar) if not sc)
            continue
        if node.op in ("global_avg_pool2d", "global_max_pool2d") and first == NHWC:
            # channels contiguous: each thread's reduction reads memory its neighbours read beside it
            g.add_op(node.op, list(node.inputs), attrs, name=name)
            channels[name] = channels[node.inputs[0]]
            continue
        if node.op == "pad" and first and attrs.get("mode", "constant") == "constant" \
                and all(tuple(p) == (0, 0) for p in attrs["pad_width"][:2]):
            # padding over H and W only: the channels get no padding
            pw = tuple(tuple(p) for p in attrs["pad_width"])
            attrs["pad_width"] = pw + ((0, 0),) if first != NHWC else (pw[0], pw[2], pw[3], pw[1])
            g.add_op(node.op, [node.inputs[0]], attrs, name=name)
            channels[name] = channels[node.inputs[0]]
            continue
        g.add_op(node.op, [convert(i, "NCHW") if lay else i for i, lay in zip(node.inputs, layout_in)], attrs,
                 name=name)
    unpacked = {}
    for o in graph.outputs:
        if o in channels:
            unpacked[o] = convert(o, "NCHW")
        g.mark_output(unpacked.get(o, o))
    g = cancel_transforms(fold_constant(g))
    return _keep_output_names(g, unpacked) if unpacked else g


def _keep_output_names(graph, unpacked: dict):
    """``graph`` with the transform back to NCHW of each output ``o`` (``unpacked[o]``) named ``o``
    again, so that a model's outputs keep their names, and the packed value ``o`` renamed."""
    from ..ir import Graph
    names = {}
    for o, t in unpacked.items():
        names[o] = graph.unique_name(f"{o}_{graph.node(o).type.layout}")
        names[t] = o
    g = Graph(graph.name)
    for name in graph.topo_order():
        node, new = graph.node(name), names.get(name, name)
        if node.is_input:
            g.add_input(new, node.type.shape, node.type.dtype, node.type.layout)
        elif node.is_const:
            g.add_const(new, node.value, node.type.layout)
        else:
            g.add_op(node.op, [names.get(i, i) for i in node.inputs], dict(node.attrs), name=new)
    for o in graph.outputs:
        g.mark_output(names.get(o, o))
    return g


def x86_float_lanes(target):
    """floats per vector register of an LLVM ``target`` with AVX-512 (16) or AVX2 (8), else None
    (float convs keep NCHW)."""
    if target is None or target.kind != "llvm":
        return None
    return 16 if "avx512f" in target.features else 8 if "avx2" in target.features else None


def channel_block(channels: int, lanes: int):
    """Channels per block of a packed float tensor: the largest power of two dividing ``channels``,
    at most ``lanes`` (so that a conv's output blocks are the next conv's input blocks); all of
    them when that is 1 and they fit a vector (the 3 channels of an image), else None."""
    block = min(lanes, channels & -channels)
    return block if block > 1 else channels if channels <= lanes else None


def _float_layouts(in_types, attrs, lanes):
    """(data, kernel, output layout) of the CPU's packed float conv (``topi/nn/conv2d_nchwc.py``):
    ``NCHW[ib]c`` / ``OIHW[ib]i[ob]o`` -> ``NCHW[ob]c`` for groups 1, ``NCHW[b]c`` / ``OIHW[b]o`` for a
    depthwise conv; None for other grouped convs and channel counts with no block."""
    O, I = in_types[1].shape[0], in_types[1].shape[1]    # (the data may be packed already: read the weight)
    groups = attrs.get("groups", 1)
    if groups == 1:
        ib, ob = channel_block(I, lanes), channel_block(O, lanes)
        return (f"NCHW{ib}c", f"OIHW{ib}i{ob}o", f"NCHW{ob}c") if ib and ob else None
    b = channel_block(O, lanes)
    if groups == O and I == 1 and b:
        return f"NCHW{b}c", f"OIHW{b}o", f"NCHW{b}c"
    return None


def _x86_dense(g, node, in_types, attrs, float_lanes, int8_lanes) -> bool:
    """Add ``node`` (a dense layer with a constant weight) to ``g`` with its weight packed for the CPU
    templates, if it fits one; return whether it did.

    - float32 (``float_lanes``): ``OI[b]o`` (``b`` units a vector, :func:`channel_block`) for
      ``dense_packed``;
    - int8 on x86 (``int8_lanes``): ``OI[L]o4i`` for ``dot_u8s8`` (``L`` units, 4 features a
      step; features a multiple of 4). int8 data enters as uint8 (``a + 128``: a cast, an add and a
      cast, fused into one small kernel) and the bias absorbs ``-128 * sum(w)`` of each unit, folded
      from the constant weight, so the kernel computes no correction.
    """
    import numpy as np
    weight = g.node(node.inputs[1])
    bias = g.node(node.inputs[2]) if len(node.inputs) > 2 else None
    if not weight.is_const or (bias is not None and not bias.is_const):
        return False
    O, K = weight.type.shape
    ins = list(node.inputs)
    if float_lanes and in_types[0].dtype == weight.type.dtype == "float32":
        b = channel_block(O, float_lanes)
        if b is None:
            return False
        layout = f"OI{b}o"
    elif int8_lanes and _is_int8(in_types[0]) and weight.type.dtype == "int8" and K % 4 == 0:
        lanes = int8_lanes if O % int8_lanes == 0 else 8 if O % 8 == 0 else None
        if lanes is None:
            return False
        layout = f"OI{lanes}o4i"
        if in_types[0].dtype == "int8":
            wide = g.add_op("cast", [ins[0]], {"dtype": "int32"}, name=g.unique_name(f"{ins[0]}_i32"))
            c128 = g.add_const(g.unique_name(f"{node.name}_128"), np.array(128, np.int32))
            shifted = g.add_op("add", [wide, c128], name=g.unique_name(f"{ins[0]}_plus128"))
            ins[0] = g.add_op("cast", [shifted], {"dtype": "uint8"}, name=g.unique_name(f"{ins[0]}_u8"))
            comp = -128 * weight.value.astype(np.int64).sum(axis=1)
            total = comp + (bias.value.astype(np.int64) if bias is not None else 0)
            ins[2:] = [g.add_const(g.unique_name(f"{node.name}_bias_u8"), total.astype(np.int32))]
    else:
        return False
    ins[1] = g.add_op("layout_transform", [ins[1]], {"src_layout": "OI", "dst_layout": layout},
                      name=g.unique_name(f"{ins[1]}_{layout}"))
    g.add_op("dense", ins, dict(attrs, weight_layout=layout), name=node.name)
    return True


def _dense_fits_split_k(target, in_types) -> bool:
    """An int8 dense of at most 16 rows (a small batch) on a CUDA target with dp4a: its time is the
    read of the weights, which the split-K template streams (``topi/cuda/dense_split_k.py``)."""
    from ...topi.cuda.dense_split_k import MAX_ROWS
    data, weight = in_types[0], in_types[1]
    return (target is not None and target.kind == "cuda" and "dp4a" in target.features and data.ndim == 2
            and data.dtype == weight.dtype == "int8" and data.shape[0] <= MAX_ROWS)


def _dense_fits_tensor_cores(in_types) -> bool:
    """int8 data and weights (uint8 stays on dp4a), a multiple of 8 outputs, at least 16 features."""
    data, weight = in_types[0], in_types[1]
    return (data.dtype == weight.dtype == "int8" and data.ndim == 2 and weight.shape[0] % 8 == 0
            and weight.shape[1] >= 16)


def _fits_tensor_cores(in_types, attrs, weight) -> bool:
    """groups 1, int8 data, at least 16 input channels (fewer would be mostly padding: those fold
    their kernel width instead), output channels a multiple of 8 or constant weights (whose rows
    are padded to one: DCN's 18-channel offset convs)."""
    O, I = in_types[1].shape[0], in_types[1].shape[1]
    return (attrs.get("groups", 1) == 1 and in_types[0].dtype == "int8" and I >= 16
            and (O % TENSOR_CORE_N == 0 or weight.is_const))


def _foldable(in_types, attrs, weight) -> bool:
    """A conv over too few channels for the tensor cores (under 16: the RGB first layer) whose
    kernel width can fold into the channels: groups 1, int8, constant weights, output channels a
    multiple of 8."""
    O, I = in_types[1].shape[0], in_types[1].shape[1]
    return (attrs.get("groups", 1) == 1 and in_types[0].dtype == in_types[1].dtype == "int8" and I < 16
            and O % 8 == 0 and weight.is_const)


def fold_width(g, node, data, weight):
    """Add ``node`` (an NCHW / OIHW int8 conv2d) to ``g`` as ``fold_kernel_width`` of its NHWC
    ``data`` feeding a ``KH x 1`` NHWC conv whose weights (``weight``, OIHW, as a new constant)
    are packed to ``[O, KH, 1, KW * C]`` with the channels zero-padded like the folded data's."""
    from ...topi.nn.conv2d_gemm import folded_width
    a = dict(node.attrs)
    O, C, KH, KW = weight.shape
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilation"], a["padding"]
    folded = g.add_op("fold_kernel_width", [data], {"kernel_w": KW, "stride_w": sw, "dilation_w": dw,
                                                   "pad_left": pl, "pad_right": pr},
                      name=g.unique_name(f"{node.name}_fold_width"))
    w = np.zeros((O, KH, 1, folded_width(C, KW)), weight.dtype)
    w[..., :KW * C] = weight.transpose(0, 2, 3, 1).reshape(O, KH, 1, KW * C)
    w = g.add_const(g.unique_name(f"{node.inputs[1]}_folded"), w, OHWI)
    a.update(strides=(sh, 1), dilation=(dh, 1), padding=(pt, 0, pb, 0), data_layout=NHWC, kernel_layout=OHWI)
    return g.add_op("conv2d", [folded, w] + list(node.inputs[2:]), a, name=node.name)


def _deformable_fits_tensor_cores(in_types, attrs, graph, node) -> bool:
    """An int8 deformable conv (one group, one deformable group, constant weights, output channels
    a multiple of 8): its samples become NHWC channels for a 1 x 1 conv on the tensor cores."""
    return (in_types[0].dtype == "int8" and attrs.get("groups", 1) == 1 and attrs.get("deformable_groups", 1) == 1
            and in_types[2].shape[0] % TENSOR_CORE_N == 0 and graph.node(node.inputs[2]).is_const)


def sample_gemm(g, node, data, offset, weight):
    """Add ``node`` (an int8 deformable conv2d) to ``g`` as ``deformable_sample`` of its NHWC
    ``data`` at ``offset`` feeding a 1 x 1 NHWC conv whose weights (``weight``, OIHW, as a new
    constant) are laid out ``[O, 1, 1, KH * KW * C]`` like the samples' channels (zero-padded)."""
    from ..ops.deformable import sample_channels
    a = dict(node.attrs)
    O, C, KH, KW = weight.shape
    samples = g.add_op("deformable_sample", [data, offset],
                       {"kernel_size": (KH, KW), "strides": a["strides"], "padding": a["padding"],
                        "dilation": a["dilation"]}, name=g.unique_name(f"{node.name}_sample"))
    w = np.zeros((O, 1, 1, sample_channels(C, (KH, KW))), weight.dtype)
    w[..., :KH * KW * C] = weight.transpose(0, 2, 3, 1).reshape(O, 1, 1, KH * KW * C)
    w = g.add_const(g.unique_name(f"{node.inputs[2]}_taps"), w, OHWI)
    attrs = {"strides": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1), "groups": 1, "data_layout": NHWC,
             "kernel_layout": OHWI, "out_dtype": a["out_dtype"]}
    return g.add_op("conv2d", [samples, w] + list(node.inputs[3:]), attrs, name=node.name)


def x86_int8_lanes(target):
    """int32 lanes of the widest ``dot_u8s8`` of an LLVM ``target``: 16 with AVX512-VNNI, 8 with
    AVX-VNNI or AVX2, else None (the dp4a layouts)."""
    if target is None or target.kind != "llvm" or not {"avx2", "avxvnni", "avx512vnni"} & target.features:
        return None
    return 16 if "avx512vnni" in target.features else 8


def _x86_int8_layouts(in_types, attrs, lanes, vnni):
    """(data, kernel, output layout) of the x86 int8 templates for this conv, or None (dp4a):

    - groups 1, output channels a multiple of 8: ``NCHW[x]c`` (``x`` = ``lanes``, 8 or 4, the first
      that divides the input channels, else the dot product's depth with zero padding) /
      ``OIHW[L]o4i`` (``dot_u8s8``; without VNNI ``OIHW8o2i``, int16 weights for ``dot_i16``) ->
      ``NCHW[L]c`` (``L`` = ``lanes`` where it divides the output channels, else 8);
    - depthwise: ``NCHW[b]c`` / ``OIHW[b]o`` -> ``NCHW[b]c`` (``b`` as for float convs, up to 16).
    """
    O, I = in_types[1].shape[0], in_types[1].shape[1]
    groups = attrs.get("groups", 1)
    if groups == 1:
        out = lanes if O % lanes == 0 else 8 if O % 8 == 0 else None
        if out is None:
            return None
        depth = 4 if vnni else 2        # input channels per dot product: the kernel pads I to a multiple
        # the data block: as the previous x86 conv writes it where it divides I, else the kernel's padding
        ib = next((b for b in (lanes, 8, 4) if I % b == 0 and b >= depth), depth)
        return f"NCHW{ib}c", f"OIHW{out}o{depth}i", f"NCHW{out}c"
    b = channel_block(O, 16)
    if groups == O and I == 1 and b:
        return f"NCHW{b}c", f"OIHW{b}o", f"NCHW{b}c"
    return None


def _nonnegative(g, v) -> bool:
    """Whether value ``v`` of ``g`` is never negative: a relu, or a clip at 0 or above, seen
    through layout changes and max pooling."""
    while True:
        node = g.node(v)
        if node.is_input or node.is_const:
            return False
        if node.op == "relu":
            return True
        if node.op == "clip":
            return node.attrs["min"] >= 0
        if node.op not in ("layout_transform", "max_pool2d"):
            return False
        v = node.inputs[0]


def _packable(in_types, attrs, factor) -> bool:
    O, I = in_types[1].shape[0], in_types[1].shape[1]
    return O % factor == 0 and (attrs.get("groups", 1) == 1 or I % factor == 0)


def cancel_transforms(graph):
    """Remove ``layout_transform`` pairs A->B->A (uses of the second read the original)."""
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        for name in list(g.topo_order()):
            if name not in g:
                continue
            node = g.node(name)
            if not node.is_op or node.op != "layout_transform":
                continue
            src = g.node(node.inputs[0])
            if src.is_op and src.op == "layout_transform" and src.attrs["src_layout"] == node.attrs["dst_layout"] \
                    and src.attrs["dst_layout"] == node.attrs["src_layout"] \
                    and g.node(src.inputs[0]).type.shape == node.type.shape:
                g.replace_all_uses(name, src.inputs[0])
                g.remove(name)
                if not g.consumers(src.name) and src.name not in g.outputs:
                    g.remove(src.name)
                changed = True
    return g
