"""Shape ops of graph tensors: ``Shape`` and ``Size`` (constants: every shape is static here),
``Slice``, ``Split``, ``Gather``, ``Expand``, ``Tile``; and the op types claimed on constant
inputs only (``Constant``, ``ConstantOfShape``, ``Range``), folded at import (:mod:`.fold`) for
the shape computations of exported models."""
from __future__ import annotations

import numpy as np

from .attrs import _axes, _check_axes, _ints
from .importer import clean_name
from .registry import ConverterTable

__all__ = ["CONVERTERS"]

#: the shape-op converters and the fold-only op types
CONVERTERS = ConverterTable()
CONVERTERS.fold_only |= {"Constant", "ConstantOfShape", "Range"}


@CONVERTERS.converter("Shape")
def _shape(imp, node):
    """Shape of a graph tensor (``start`` / ``end`` as numpy slicing, clamped, as ONNX says)."""
    shape, _ = imp.type(node, node.input(0))
    return np.asarray(shape, np.int64)[node.get("start", 0):node.get("end", None)]


@CONVERTERS.converter("Size")
def _size(imp, node):
    """Element count of a graph tensor."""
    shape, _ = imp.type(node, node.input(0))
    return np.asarray(int(np.prod(shape)), np.int64)


def _slice_args(imp, node, rank):
    """(starts, ends, steps, axes) of a Slice: inputs from opset 10, attributes before."""
    if imp.opset >= 10:
        starts = [int(v) for v in imp.const(node, node.input(1), "starts").reshape(-1)]
        ends = [int(v) for v in imp.const(node, node.input(2), "ends").reshape(-1)]
        axes = _axes(imp, node, 3) if node.input(3) else list(range(len(starts)))
        steps = [int(v) for v in imp.const(node, node.input(4), "steps").reshape(-1)] if node.input(4) \
            else [1] * len(starts)
    else:
        starts, ends = _ints(node, "starts"), _ints(node, "ends")
        axes = _ints(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise node.error(f"starts {starts}, ends {ends}, axes {axes} and steps {steps} must have one entry per "
                         "sliced axis")
    _check_axes(node, axes, rank)
    if 0 in steps:
        raise node.error(f"= {steps} must not hold 0", "steps")
    big = np.iinfo(np.int64).max   # INT64 bounds as 'to the end': Python slicing clamps them alike
    return [max(min(s, big), -big) for s in starts], [max(min(e, big), -big) for e in ends], steps, \
        [a % rank for a in axes]


@CONVERTERS.converter("Slice")
def _slice(imp, node):
    """Slice of a graph tensor -> ``strided_slice`` (an empty result is an empty constant)."""
    xs, dtype = imp.type(node, node.input(0))
    starts, ends, steps, axes = _slice_args(imp, node, len(xs))
    shape = list(xs)
    begin, end = [], []
    for a, b, e, st in zip(axes, starts, ends, steps):
        start, count = onnx_slice(xs[a], b, e, st)
        shape[a] = count
        stop = start + st * count
        begin.append(start)
        end.append(stop if stop >= 0 else -xs[a] - 1)     # past index 0 going down (not "from the end")
    if 0 in shape:
        return np.zeros(shape, dtype)
    return imp.add(node, "strided_slice", [imp.tensor(node, node.input(0))],
                   {"begin": begin, "end": end, "strides": steps, "axes": axes})


def onnx_slice(n: int, start: int, end: int, step: int) -> tuple:
    """``(first index, count)`` of ONNX Slice on an axis of extent ``n``: negative bounds count
    from the end, then a positive step clamps both to [0, n] and a negative one the start to
    [0, n - 1] and the end to [-1, n - 1] (where Python would leave a start before the axis
    empty, ONNX reads index 0)."""
    start, end = (v + n if v < 0 else v for v in (start, end))
    if step > 0:
        start, end = min(max(start, 0), n), min(max(end, 0), n)
    else:
        start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    return start, len(range(start, end, step))


@CONVERTERS.converter("Split")
def _split(imp, node):
    """Split of a graph tensor into ``strided_slice`` s (sizes from ``split``, input or attribute, or
    equal parts, the last one smaller when ``num_outputs`` does not divide the axis)."""
    xs, _ = imp.type(node, node.input(0))
    axis = int(node.get("axis", 0))
    axis = sorted(_check_axes(node, [axis], len(xs), "axis"))[0]
    n = len(node.outputs)
    if node.input(1):
        sizes = [int(v) for v in imp.const(node, node.input(1), "split").reshape(-1)]
    elif node.get("split") is not None:
        sizes = _ints(node, "split")
    else:
        parts = int(node.get("num_outputs", n))
        chunk = -(-xs[axis] // parts)
        sizes = [min(chunk, xs[axis] - k * chunk) for k in range(parts)]
    if len(sizes) != n or sum(sizes) != xs[axis] or any(s < 0 for s in sizes):
        raise node.error(f"sizes {sizes} must be {n} non-negative parts summing to axis {axis}'s extent "
                         f"{xs[axis]}", "split")
    x = imp.tensor(node, node.input(0))
    outs, start = [], 0
    for k, size in enumerate(sizes):
        if size == 0:
            outs.append(np.zeros(xs[:axis] + (0,) + xs[axis + 1:], imp.type(node, node.input(0))[1]))
        else:
            outs.append(imp.g.add_op("strided_slice", [x], {"begin": [start], "end": [start + size], "axes": [axis]},
                                     name=imp.g.unique_name(clean_name(node.outputs[k] or f"{node.name}.{k}"))))
        start += size
    return outs


@CONVERTERS.converter("Gather")
def _gather(imp, node):
    """Gather from a graph tensor -> ``take``; constant indices are checked against the axis here."""
    xs, _ = imp.type(node, node.input(0))
    axis = sorted(_check_axes(node, [int(node.get("axis", 0))], len(xs), "axis"))[0]
    idx = node.input(1)
    if imp.is_const(node, idx):
        v = imp.const(node, idx, "indices")
        if v.size and (v.min() < -xs[axis] or v.max() >= xs[axis]):
            raise node.error(f"input indices ({idx!r}) holds {int(v.min())}..{int(v.max())}, out of range for "
                             f"axis {axis} of extent {xs[axis]}")
        if v.size == 0:
            return np.zeros(xs[:axis] + v.shape + xs[axis + 1:], imp.type(node, node.input(0))[1])
    return imp.add(node, "take", [imp.tensor(node, node.input(0)), imp.tensor(node, idx)], {"axis": axis})


@CONVERTERS.converter("Expand")
def _expand(imp, node):
    """Expand of a graph tensor to a constant shape (numpy broadcasting both ways) -> ``broadcast_to``."""
    xs, _ = imp.type(node, node.input(0))
    target = tuple(int(v) for v in imp.const(node, node.input(1), "shape").reshape(-1))
    try:
        shape = tuple(np.broadcast_shapes(xs, target))
    except ValueError:
        raise node.error(f"input shape = {list(target)} does not broadcast with the input's {list(xs)}") from None
    x = imp.tensor(node, node.input(0))
    if shape == tuple(xs):
        return x
    return imp.add(node, "broadcast_to", [x], {"shape": list(shape)})


@CONVERTERS.converter("Tile")
def _tile(imp, node):
    """Tile of a graph tensor by constant repeats -> ``tile``."""
    xs, dtype = imp.type(node, node.input(0))
    reps = [int(v) for v in imp.const(node, node.input(1), "repeats").reshape(-1)]
    if len(reps) != len(xs) or any(r < 0 for r in reps):
        raise node.error(f"input repeats = {reps} must give one non-negative count per axis of {list(xs)}")
    if 0 in reps:
        return np.zeros([s * r for s, r in zip(xs, reps)], dtype)
    return imp.add(node, "tile", [imp.tensor(node, node.input(0))], {"reps": reps})
