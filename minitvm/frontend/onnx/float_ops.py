"""Converters of the float ONNX ops: Conv, Gemm, MatMul, Add/Sub/Mul, the activations, Cast,
BatchNormalization (inference and training mode), pooling (any rank and dilation), Softmax,
Reduce*, and the shape ops on graph tensors (Flatten, Reshape, Squeeze/Unsqueeze, Transpose,
Concat, Pad)."""
from __future__ import annotations

import itertools

import numpy as np

from .attrs import (_auto_pad, _axes, _check_axes, _graph_dtype, _ints, _pad_args, _reduce_axes, _reshape_target,
                    _spatial_2d)
from .registry import ConverterTable

__all__ = ["CONVERTERS", "conv_attrs", "pool", "leaky_relu", "softmax"]

#: the float converters
CONVERTERS = ConverterTable()


# ====================================================================== conv / dense
def conv_attrs(node, xs, ws) -> dict:
    """conv2d attributes (strides, padding, dilation, groups) of an ONNX Conv-like node.

    ``xs`` / ``ws`` are the data and weight shapes; shared by Conv and QLinearConv.
    """
    _spatial_2d(node, node.op, len(xs))
    kernel = _ints(node, "kernel_shape", ws[2:])
    if list(kernel) != list(ws[2:]):
        raise node.error(f"= {kernel} differs from the weight's {list(ws[2:])}", "kernel_shape")
    strides = _ints(node, "strides", [1, 1])
    dil = _ints(node, "dilations", [1, 1])
    pads = _auto_pad(node, xs[2:], kernel, strides, dil, _ints(node, "pads", [0, 0, 0, 0]))
    if len(pads) != 4:
        raise node.error(f"= {pads} must have 4 values for a 2-D conv", "pads")
    return {"strides": strides, "padding": (pads[0], pads[1], pads[2], pads[3]), "dilation": dil,
            "groups": int(node.get("group", 1))}


@CONVERTERS.converter("Conv")
def _conv(imp, node):
    x = imp.tensor(node, node.input(0))
    xs, _ = imp.type(node, node.input(0))
    ws, _ = imp.type(node, node.input(1))
    attrs = conv_attrs(node, xs, ws)
    ins = [x, imp.tensor(node, node.input(1))]
    if node.input(2):
        ins.append(imp.tensor(node, node.input(2)))
    return imp.add(node, "conv2d", ins, attrs)


@CONVERTERS.converter("Gemm")
def _gemm(imp, node):
    alpha, beta = float(node.get("alpha", 1.0)), float(node.get("beta", 1.0))
    ta, tb = int(node.get("transA", 0)), int(node.get("transB", 0))
    a_name, b_name, c_name = node.input(0), node.input(1), node.input(2)
    if ta and imp.is_const(node, a_name):
        a = imp.new_const(f"{a_name}_T", imp.const(node, a_name, "A").T)
    elif ta:
        a = imp.add(node, "transpose", [imp.tensor(node, a_name)], {"axes": [1, 0]}, suffix=".A_T")
    else:
        a = imp.tensor(node, a_name)
    if imp.is_const(node, b_name):
        b = imp.const(node, b_name, "B")
        w = b if tb else b.T
        if alpha != 1.0:
            w = (w * alpha).astype(b.dtype)
        units = w.shape[0]
        if tb and alpha == 1.0:
            ins = [a, imp.tensor(node, b_name)]
        else:
            ins = [a, imp.new_const(f"{b_name}_weight", w)]
        extra = None
        if c_name:
            if imp.is_const(node, c_name):
                c = imp.const(node, c_name, "C").astype(np.float64) * beta
                if c.size == units and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1):
                    ins.append(imp.new_const(f"{c_name}_bias", c.reshape(units).astype(b.dtype)))
                elif c.size == 1:
                    ins.append(imp.new_const(f"{c_name}_bias", np.full(units, c.reshape(()), b.dtype)))
                else:
                    extra = imp.new_const(f"{c_name}_scaled", c.astype(b.dtype))
            else:
                extra = _scaled(imp, node, imp.tensor(node, c_name), beta, ".beta")
        y = imp.add(node, "dense", ins, suffix="" if extra is None else ".dense")
        return y if extra is None else imp.add(node, "add", [y, extra])
    b = imp.tensor(node, b_name)
    y = imp.add(node, "dense" if tb else "matmul", [a, b], suffix=".mm")
    if alpha != 1.0:
        y = _scaled(imp, node, y, alpha, ".alpha")
    if c_name:
        c = imp.tensor(node, c_name)
        if beta != 1.0:
            c = _scaled(imp, node, c, beta, ".beta")
        y = imp.add(node, "add", [y, c])
    return y


def _scaled(imp, node, x, factor, suffix):
    dtype = imp.g.node(x).type.dtype
    k = imp.new_const(f"{node.name}{suffix}", np.asarray(factor, dtype))
    return imp.add(node, "mul", [x, k], suffix=suffix)


@CONVERTERS.converter("MatMul")
def _matmul(imp, node):
    """MatMul (numpy semantics): 2-D by a constant -> ``dense``; otherwise ``matmul`` (batch dims
    broadcast), a 1-D operand made a matrix first and its axis dropped from the result."""
    a_shape, _ = imp.type(node, node.input(0))
    b_shape, _ = imp.type(node, node.input(1))
    a = imp.tensor(node, node.input(0))
    if len(a_shape) == 2 and len(b_shape) == 2 and imp.is_const(node, node.input(1)):
        w = imp.const(node, node.input(1), "B")
        return imp.add(node, "dense", [a, imp.new_const(f"{node.input(1)}_T", w.T)])
    if not a_shape or not b_shape:
        raise node.error(f"0-d operands are invalid (shapes {list(a_shape)} and {list(b_shape)})")
    b = imp.tensor(node, node.input(1))
    if len(a_shape) == 1:
        a = imp.add(node, "reshape", [a], {"newshape": [1, a_shape[0]]}, suffix=".a_row")
    if len(b_shape) == 1:
        b = imp.add(node, "reshape", [b], {"newshape": [b_shape[0], 1]}, suffix=".b_column")
    if len(a_shape) > 1 and len(b_shape) > 1:
        return imp.add(node, "matmul", [a, b])
    y = imp.add(node, "matmul", [a, b], suffix=".matmul")
    shape = list(imp.g.node(y).type.shape)
    shape = shape[:-2] + ([shape[-2]] if len(a_shape) > 1 else []) + ([shape[-1]] if len(b_shape) > 1 else [])
    return imp.add(node, "reshape", [y], {"newshape": shape})


# ====================================================================== element-wise
def _binary_graph(imp, node, op):
    a, b = node.input(0), node.input(1)
    return imp.add(node, op, [imp.tensor(node, a), imp.tensor(node, b)])


@CONVERTERS.converter("Add")
def _add(imp, node):
    return _binary_graph(imp, node, "add")


@CONVERTERS.converter("Sub")
def _sub(imp, node):
    return _binary_graph(imp, node, "sub")


@CONVERTERS.converter("Mul")
def _mul(imp, node):
    return _binary_graph(imp, node, "mul")


@CONVERTERS.converter("Relu")
def _relu(imp, node):
    return imp.add(node, "relu", [imp.tensor(node, node.input(0))])


@CONVERTERS.converter("Sigmoid")
def _sigmoid(imp, node):
    return imp.add(node, "sigmoid", [imp.tensor(node, node.input(0))])


def leaky_relu(imp, node, x, alpha, suffix=""):
    """``relu(x) + alpha * min(x, 0)``: ONNX's ``x if x >= 0 else alpha * x`` exactly (one of
    the two terms is 0), from ops the compiler fuses into one kernel."""
    dtype = imp.g.node(x).type.dtype
    pos = imp.add(node, "relu", [x], suffix=suffix + ".positive")
    neg = imp.add(node, "clip", [x], {"min": -np.inf, "max": 0.0}, suffix=suffix + ".negative")
    neg = imp.add(node, "mul", [neg, imp.new_const(f"{node.name}{suffix}.alpha", np.asarray(alpha, dtype))],
                  suffix=suffix + ".scaled")
    return imp.add(node, "add", [pos, neg], suffix=suffix)


@CONVERTERS.converter("LeakyRelu")
def _leakyrelu(imp, node):
    return leaky_relu(imp, node, imp.tensor(node, node.input(0)), float(node.get("alpha", 0.01)))


@CONVERTERS.converter("Clip")
def _clip(imp, node):
    if imp.opset >= 11:
        lo = float(imp.const(node, node.input(1), "min")) if node.input(1) else -np.inf
        hi = float(imp.const(node, node.input(2), "max")) if node.input(2) else np.inf
    else:
        lo, hi = float(node.get("min", -np.inf)), float(node.get("max", np.inf))
    x = imp.tensor(node, node.input(0))
    _, dtype = imp.type(node, node.input(0))
    if lo > hi:   # ONNX: every value becomes max (min(max(x, lo), hi) with lo > hi)
        lo = hi
    if np.dtype(dtype).kind in "iu":   # an integer tensor's own range bounds it already
        info = np.iinfo(dtype)
        lo, hi = max(lo, float(info.min)), min(hi, float(info.max))
        if lo <= float(info.min) and hi >= float(info.max):
            return x
    return imp.add(node, "clip", [x], {"min": lo, "max": hi})


def _hard_sigmoid(imp, node, x, alpha, beta, suffix):
    dtype = imp.g.node(x).type.dtype
    y = imp.add(node, "mul", [x, imp.new_const(f"{node.name}{suffix}.alpha", np.asarray(alpha, dtype))],
                suffix=suffix + ".mul")
    y = imp.add(node, "add", [y, imp.new_const(f"{node.name}{suffix}.beta", np.asarray(beta, dtype))],
                suffix=suffix + ".add")
    return imp.add(node, "clip", [y], {"min": 0.0, "max": 1.0}, suffix=suffix)


@CONVERTERS.converter("HardSigmoid")
def _hardsigmoid(imp, node):
    return _hard_sigmoid(imp, node, imp.tensor(node, node.input(0)), float(node.get("alpha", 0.2)),
                         float(node.get("beta", 0.5)), "")


@CONVERTERS.converter("HardSwish")
def _hardswish(imp, node):
    x = imp.tensor(node, node.input(0))
    return imp.add(node, "mul", [x, _hard_sigmoid(imp, node, x, 1.0 / 6, 0.5, ".hardsigmoid")])


@CONVERTERS.converter("Identity", "Dropout")
def _identity(imp, node):
    """Identity; Dropout in inference mode (or training with ratio 0): the input, and a mask of ones."""
    if node.op == "Dropout":
        mode = node.input(2)
        if mode and bool(imp.const(node, mode, "training_mode").reshape(-1)[0]):
            ratio = float(imp.const(node, node.input(1), "ratio").reshape(-1)[0]) if node.input(1) else 0.5
            if ratio != 0.0:
                raise node.error(f"training_mode = true with ratio {ratio} is not supported (random masks; "
                                 "inference only)")
        if len(node.outputs) > 1 and node.outputs[1]:
            x = imp.value(node, node.input(0))
            shape, _ = imp.type(node, node.input(0))
            return [x, np.ones(shape, bool)]
    return imp.value(node, node.input(0))


@CONVERTERS.converter("Cast")
def _cast(imp, node):
    dtype = _graph_dtype(node, node.get("to"))
    x = imp.tensor(node, node.input(0))
    if imp.g.node(x).type.dtype == dtype:
        return x
    return imp.add(node, "cast", [x], {"dtype": dtype})


# ====================================================================== normalization / pooling
@CONVERTERS.converter("BatchNormalization")
def _bn(imp, node):
    """BatchNormalization: inference (``batch_norm``), or ``training_mode`` (opset 14 on) with the
    batch's statistics (:func:`_bn_training`)."""
    if int(node.get("training_mode", 0)):
        return _bn_training(imp, node)
    if imp.opset < 9 and int(node.get("spatial", 1)) != 1:
        raise node.error("= 0 is not supported", "spatial")
    if len([o for o in node.outputs if o]) > 1:
        raise node.error("the running mean/var outputs (training) are not supported")
    ins = [imp.tensor(node, node.input(i)) for i in range(5)]
    return imp.add(node, "batch_norm", ins, {"epsilon": float(node.get("epsilon", 1e-5)), "axis": 1})


def _bn_training(imp, node):
    """Training-mode BatchNormalization: ``y`` normalized by the batch's mean and (population)
    variance over every axis but 1, and the running statistics ``stat * momentum + batch stat *
    (1 - momentum)``, as the ONNX reference computes them."""
    xs, dtype = imp.type(node, node.input(0))
    axes = [a for a in range(len(xs)) if a != 1]
    x = imp.tensor(node, node.input(0))
    channel = [1, xs[1]] + [1] * (len(xs) - 2)

    def per_channel(i, suffix):
        return imp.add(node, "reshape", [imp.tensor(node, node.input(i))], {"newshape": channel}, suffix=suffix)

    mean = imp.add(node, "reduce", [x], {"axes": axes, "kind": "mean"}, suffix=".batch_mean")
    d = imp.add(node, "sub", [x, mean], suffix=".centered")
    var = imp.add(node, "reduce", [imp.add(node, "mul", [d, d], suffix=".square")], {"axes": axes, "kind": "mean"},
                  suffix=".batch_var")
    eps = imp.new_const(f"{node.name}.epsilon", np.asarray(float(node.get("epsilon", 1e-5)), dtype))
    std = imp.add(node, "sqrt", [imp.add(node, "add", [var, eps], suffix=".var_eps")], suffix=".std")
    y = imp.add(node, "divide", [imp.add(node, "mul", [d, per_channel(1, ".scale")], suffix=".scaled"), std],
                suffix=".normalized")
    y = imp.add(node, "add", [y, per_channel(2, ".bias")])
    momentum = float(node.get("momentum", 0.9))
    keep = imp.new_const(f"{node.name}.momentum", np.asarray(momentum, dtype))
    rest = imp.new_const(f"{node.name}.one_minus_momentum", np.asarray(1 - momentum, dtype))
    outs = [y]
    for i, batch, what in ((3, mean, "mean"), (4, var, "var")):
        run = imp.add(node, "mul", [imp.tensor(node, node.input(i)), keep], suffix=f".running_{what}_kept")
        new = imp.add(node, "mul", [imp.add(node, "reshape", [batch], {"newshape": [xs[1]]}, suffix=f".{what}_flat"),
                                    rest], suffix=f".running_{what}_new")
        outs.append(imp.add(node, "add", [run, new], suffix=f".running_{what}"))
    return outs


def pool(imp, node, op, x=None, suffix=""):
    """``max_pool2d`` / ``avg_pool2d`` of ``x`` (default: the node's first input) with the ONNX
    pooling attributes of ``node``; a 1-D pool (N, C, W) runs as a 2-D one of height 1, a dilated
    or 3-D one as its taps (:func:`_pool_by_taps`)."""
    xs, _ = imp.type(node, node.input(0))
    indices = len(node.outputs) > 1 and bool(node.outputs[1])
    if indices and (op != "max_pool2d" or x is not None):
        raise node.error("the Indices output is not supported here")
    rank = len(xs) - 2
    if rank < 1:
        raise node.error(f"needs an input of rank >= 3 (N, C, spatial ...), got {list(xs)}")
    kernel = _ints(node, "kernel_shape")
    if kernel is None or len(kernel) != rank:
        raise node.error(f"= {kernel} must give {rank} values", "kernel_shape")
    strides = _ints(node, "strides", [1] * rank)
    dil = _ints(node, "dilations", [1] * rank)
    pads = _auto_pad(node, xs[2:], kernel, strides, dil, _ints(node, "pads", [0] * 2 * rank))
    ceil = bool(node.get("ceil_mode", 0))
    include_pad = bool(node.get("count_include_pad", 0))
    x = imp.tensor(node, node.input(0)) if x is None else x
    if rank > 2 or any(d != 1 for d in dil) or indices:
        return _pool_by_taps(imp, node, op, x, xs, kernel, strides, dil, pads, ceil, include_pad, suffix, indices)
    one_d = rank == 1
    if one_d:
        kernel, strides, pads = [1] + kernel, [1] + strides, [0, pads[0], 0, pads[1]]
    attrs = {"pool_size": kernel, "strides": strides, "padding": tuple(pads), "ceil_mode": ceil}
    if op == "avg_pool2d":
        attrs["count_include_pad"] = include_pad
    if not one_d:
        return imp.add(node, op, [x], attrs, suffix=suffix)
    x = imp.add(node, "reshape", [x], {"newshape": [xs[0], xs[1], 1, xs[2]]}, suffix=suffix + ".2d")
    y = imp.add(node, op, [x], attrs, suffix=suffix + ".pool")
    return imp.add(node, "reshape", [y], {"newshape": [xs[0], xs[1], imp.g.node(y).type.shape[3]]}, suffix=suffix)


def _pool_by_taps(imp, node, op, x, xs, kernel, strides, dil, pads, ceil, include_pad, suffix, indices=False):
    """A pooling of any rank and dilation as the max / mean of its taps: the input padded (with the
    dtype's lowest value for max, 0 for the mean), one strided slice per window tap, combined by
    ``maximum`` or ``add`` and divided by the count of the window's elements (in the input, or
    in the explicitly padded input with ``count_include_pad``), all element-wise ops that fuse. With
    ``indices`` (MaxPool's second output) the taps are compared in order and the flat index
    (``storage_order`` 0: row major, 1: column major over the spatial axes) of the first maximum
    is kept."""
    rank, sp = len(kernel), list(xs[2:])
    out, need = [], []
    for a in range(rank):
        span = (kernel[a] - 1) * dil[a] + 1
        size = (sp[a] + pads[a] + pads[rank + a] - span) / strides[a] + 1
        o = int(np.ceil(size)) if ceil else int(np.floor(size))
        if ceil and (o - 1) * strides[a] >= sp[a] + pads[a]:
            o -= 1     # the last window must start inside the input or its leading padding
        if o < 1:
            raise node.error(f"the window (extent {span}) does not fit axis {a + 2} ({sp[a]} + padding)")
        out.append(o)
        need.append(max(0, (o - 1) * strides[a] + span - sp[a] - pads[a]))
    _, dtype = imp.type(node, node.input(0))
    fill = (-np.inf if np.dtype(dtype).kind == "f" else float(np.iinfo(dtype).min)) if op == "max_pool2d" else 0.0
    width = [(0, 0), (0, 0)] + [(pads[a], need[a]) for a in range(rank)]
    xp = imp.add(node, "pad", [x], {"pad_width": width, "value": fill}, suffix=suffix + ".pad")
    combine = "maximum" if op == "max_pool2d" else "add"
    y = best = None
    for k, taps in enumerate(itertools.product(*(range(n) for n in kernel))):
        begin = [t * d for t, d in zip(taps, dil)]
        part = imp.add(node, "strided_slice", [xp], {
            "begin": begin, "end": [b + (o - 1) * s + 1 for b, o, s in zip(begin, out, strides)],
            "strides": strides, "axes": list(range(2, 2 + rank))}, suffix=f"{suffix}.tap{k}")
        if indices:
            at = imp.new_const(f"{node.name}.index{k}", _tap_index(xs, out, strides, pads, begin,
                                                                   int(node.get("storage_order", 0))))
            if y is not None:
                better = imp.add(node, "greater", [part, y], suffix=f".better{k}")
                best = imp.add(node, "where", [better, at, best], suffix=f".arg{k}")
                part = imp.add(node, "where", [better, part, y], suffix=f".max{k}")
            else:
                best = at
            y = part
            continue
        y = part if y is None else imp.add(node, combine, [y, part], suffix=f"{suffix}.acc{k}")
    if indices:
        return [y, best]
    if op == "max_pool2d":
        return y
    counts = np.ones(out)
    for a in range(rank):
        pos = np.arange(out[a])[:, None] * strides[a] + np.arange(kernel[a])[None, :] * dil[a] - pads[a]
        lo, hi = (-pads[a], sp[a] + pads[rank + a]) if include_pad else (0, sp[a])
        shape = [1] * rank
        shape[a] = out[a]
        counts = counts * ((pos >= lo) & (pos < hi)).sum(axis=1).reshape(shape)
    count = imp.new_const(f"{node.name}{suffix}.count", counts.reshape([1, 1] + out).astype(dtype))
    return imp.add(node, "divide", [y, count], suffix=suffix)


def _tap_index(xs, out, strides, pads, begin, storage_order):
    """int64 [N, C, *out]: the flat index into the input of one window tap at every output position."""
    rank = len(out)
    sp = xs[2:]
    pos = [np.arange(o) * s + b - p for o, s, b, p in zip(out, strides, begin, pads[:rank])]
    grid = np.meshgrid(*pos, indexing="ij")
    order = range(rank) if not storage_order else range(rank - 1, -1, -1)
    flat, mult = np.zeros(out, np.int64), 1
    for a in reversed(list(order)):
        flat += np.clip(grid[a], 0, sp[a] - 1) * mult
        mult *= sp[a]
    plane = int(np.prod(sp))
    nc = (np.arange(xs[0])[:, None] * xs[1] + np.arange(xs[1])[None, :]) * plane
    return (nc.reshape(xs[0], xs[1], *([1] * rank)) + flat).astype(np.int64)


@CONVERTERS.converter("MaxPool")
def _maxpool(imp, node):
    return pool(imp, node, "max_pool2d")


@CONVERTERS.converter("AveragePool")
def _avgpool(imp, node):
    return pool(imp, node, "avg_pool2d")


@CONVERTERS.converter("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(imp, node):
    xs, _ = imp.type(node, node.input(0))
    _spatial_2d(node, node.op, len(xs))
    op = "global_avg_pool2d" if node.op == "GlobalAveragePool" else "global_max_pool2d"
    return imp.add(node, op, [imp.tensor(node, node.input(0))])


def softmax(imp, node, x, opset, suffix=""):
    """ONNX Softmax of ``x`` (shaped like the node's first input) with ``node``'s ``axis`` as
    opset ``opset`` defines it: one axis from 13 on, the 2-D coercion at ``axis`` before."""
    xs, _ = imp.type(node, node.input(0))
    if opset >= 13:
        return imp.add(node, "softmax", [x], {"axis": int(node.get("axis", -1))}, suffix=suffix)
    axis = int(node.get("axis", 1)) % len(xs)
    if axis == len(xs) - 1:
        return imp.add(node, "softmax", [x], {"axis": -1}, suffix=suffix)
    flat = imp.add(node, "flatten", [x], {"axis": axis}, suffix=suffix + ".flatten")
    y = imp.add(node, "softmax", [flat], {"axis": -1}, suffix=suffix + ".softmax")
    return imp.add(node, "reshape", [y], {"newshape": list(xs)}, suffix=suffix)


_REDUCE_KINDS = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
                 "ReduceProd": "prod", "ReduceSumSquare": "sum_square", "ReduceL1": "l1", "ReduceL2": "l2",
                 "ReduceLogSum": "log_sum", "ReduceLogSumExp": "log_sum_exp"}


@CONVERTERS.converter(*_REDUCE_KINDS)
def _reduce(imp, node):
    """Reduce* of a graph tensor over its ``axes`` (attribute, or input from opset 18 / ReduceSum 13;
    none or empty: every axis, or no reduction with ``noop_with_empty_axes``) -> ``reduce``; a
    ReduceMean / ReduceMax of NCHW over the spatial axes (``x.mean((2, 3))``) -> the global pools."""
    xs, _ = imp.type(node, node.input(0))
    axes = _reduce_axes(node, imp.const(node, node.input(1), "axes") if node.input(1) else None)
    x = imp.tensor(node, node.input(0))
    if not axes and int(node.get("noop_with_empty_axes", 0)):
        return x
    axes = sorted(_check_axes(node, axes, len(xs))) if axes else list(range(len(xs)))
    keep = bool(int(node.get("keepdims", 1)))
    kind = _REDUCE_KINDS[node.op]
    if len(xs) == 4 and axes == [2, 3] and kind in ("mean", "max"):
        op = "global_avg_pool2d" if kind == "mean" else "global_max_pool2d"
        if keep:
            return imp.add(node, op, [x])
        y = imp.add(node, op, [x], suffix=".pool")
        return imp.add(node, "reshape", [y], {"newshape": list(xs[:2])})
    if not keep and len(axes) == len(xs):   # a 0-d result: reduce keeping dims, then drop them
        y = imp.add(node, "reduce", [x], {"axes": axes, "keepdims": True, "kind": kind}, suffix=".reduce")
        return imp.add(node, "reshape", [y], {"newshape": []})
    return imp.add(node, "reduce", [x], {"axes": axes, "keepdims": keep, "kind": kind})


@CONVERTERS.converter("Softmax")
def _softmax(imp, node):
    return softmax(imp, node, imp.tensor(node, node.input(0)), imp.opset)


# ====================================================================== shapes
@CONVERTERS.converter("Flatten")
def _flatten(imp, node):
    xs, _ = imp.type(node, node.input(0))
    axis = int(node.get("axis", 1))
    if not -len(xs) <= axis <= len(xs):
        raise node.error(f"= {axis} is out of range for a {len(xs)}-D input", "axis")
    return imp.add(node, "flatten", [imp.tensor(node, node.input(0))], {"axis": axis + len(xs) if axis < 0 else axis})


@CONVERTERS.converter("Reshape")
def _reshape(imp, node):
    xs, _ = imp.type(node, node.input(0))
    return imp.add(node, "reshape", [imp.tensor(node, node.input(0))],
                   {"newshape": list(_reshape_target(imp, node, xs))})


@CONVERTERS.converter("Unsqueeze", "Squeeze")
def _squeeze_graph(imp, node):
    xs, _ = imp.type(node, node.input(0))
    axes = _axes(imp, node, 1)
    if node.op == "Unsqueeze":
        if axes is None:
            raise node.error("is required", "axes")
        rank = len(xs) + len(axes)
        axes = _check_axes(node, axes, rank)
        out, rest = [], iter(xs)
        for k in range(rank):
            out.append(1 if k in axes else next(rest))
    elif axes is None:
        out = [d for d in xs if d != 1]
    else:
        axes = _check_axes(node, axes, len(xs))
        if any(xs[a] != 1 for a in axes):
            raise node.error(f"= {sorted(axes)} names a dimension that is not 1 in {list(xs)}", "axes")
        out = [d for k, d in enumerate(xs) if k not in axes]
    return imp.add(node, "reshape", [imp.tensor(node, node.input(0))], {"newshape": out})


@CONVERTERS.converter("Transpose")
def _transpose(imp, node):
    perm = _ints(node, "perm")
    return imp.add(node, "transpose", [imp.tensor(node, node.input(0))], {"axes": perm})


@CONVERTERS.converter("Concat")
def _concat(imp, node):
    ins = [imp.tensor(node, i) for i in node.inputs if i]
    return imp.add(node, "concatenate", ins, {"axis": int(node.get("axis"))})


@CONVERTERS.converter("Pad")
def _pad(imp, node):
    xs, dtype = imp.type(node, node.input(0))
    mode = node.get("mode", "constant")
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise node.error(f"= {mode!r} is not supported (constant, edge, reflect or wrap)", "mode")
    pad_width, value = _pad_args(imp, node, len(xs))
    return imp.add(node, "pad", [imp.tensor(node, node.input(0))],
                   {"pad_width": pad_width, "value": value, "mode": mode})

