"""Constant evaluation at import: shape computations (Shape, Gather, Unsqueeze, Squeeze, Concat,
ConstantOfShape, Slice, Cast, Range, Expand, Reduce*, Pad ...) and arithmetic and comparisons on
constant inputs, folded to numpy arrays (every tensor has a static shape, so ``Shape`` and
``Size`` of a graph tensor are constants too)."""
from __future__ import annotations

import numpy as np

from .attrs import _ints, _onnx_dtype, _pad_args, _reduce_axes, _reshape_target
from .registry import ConverterTable

__all__ = ["CONVERTERS"]

#: the constant evaluators (and the Shape / Size converters of graph tensors)
CONVERTERS = ConverterTable()


def _np_div(a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return (np.trunc(a / b)).astype(np.result_type(a, b))
    return a / b


def _same(a, b):
    return a.astype(np.result_type(a, b), copy=False)


for _name, _fn in {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _np_div, "Pow": np.power,
                   "Equal": np.equal, "Less": np.less,
                   "Greater": np.greater, "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                   "And": np.logical_and, "Or": np.logical_or}.items():
    CONVERTERS.const_evals[_name] = (lambda fn: lambda imp, node, v: np.asarray(fn(v[0], v[1])).astype(
        v[0].dtype if fn not in (np.equal, np.less, np.greater, np.less_equal, np.greater_equal,
                                 np.logical_and, np.logical_or) else bool))(_fn)
for _name, _fn in {"Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
                   "Floor": np.floor, "Ceil": np.ceil, "Not": np.logical_not, "Relu": lambda x: np.maximum(x, 0),
                   "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Identity": lambda x: x,
                   "Reciprocal": lambda x: 1 / x}.items():
    CONVERTERS.const_evals[_name] = (lambda fn: lambda imp, node, v: np.asarray(fn(v[0])).astype(
        v[0].dtype if fn is not np.logical_not else bool))(_fn)


@CONVERTERS.const_eval("Max", "Min")
def _max_min(imp, node, v):
    """Element-wise max / min of any number (at least one) of inputs, broadcast together."""
    xs = [x for x in v if x is not None]
    if not xs:
        raise node.error("needs at least one input")
    fn = np.maximum if node.op == "Max" else np.minimum
    try:
        out = np.broadcast_to(xs[0], np.broadcast_shapes(*(x.shape for x in xs)))
    except ValueError:
        raise node.error(f"input shapes {[list(x.shape) for x in xs]} do not broadcast") from None
    for x in xs[1:]:
        out = fn(out, x)
    return np.asarray(out).astype(xs[0].dtype)


@CONVERTERS.const_eval("Mod")
def _mod(imp, node, v):
    """ONNX Mod: ``fmod`` = 1 is ``A - trunc(A / B) * B`` (the dividend's sign, C fmod), 0
    ``A - floor(A / B) * B`` (the divisor's sign, Python's %; numpy's special cases are ONNX's)."""
    a, b = v[0], v[1]
    fmod = int(node.get("fmod", 0))
    if fmod not in (0, 1):
        raise node.error(f"= {fmod} must be 0 or 1", "fmod")
    if a.dtype.kind in "iu" and np.any(b == 0):
        raise node.error("integer modulo by zero")
    return np.asarray((np.fmod if fmod else np.mod)(a, b)).astype(a.dtype)


@CONVERTERS.const_eval("Where")
def _where(imp, node, v):
    return np.where(v[0], v[1], v[2])


@CONVERTERS.const_eval("Constant")
def _constant(imp, node, v):
    from onnx import numpy_helper
    a = node.attrs
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    if "value_float" in a:
        return np.asarray(a["value_float"], np.float32)
    if "value_floats" in a:
        return np.asarray(a["value_floats"], np.float32)
    if "value_int" in a:
        return np.asarray(a["value_int"], np.int64)
    if "value_ints" in a:
        return np.asarray(a["value_ints"], np.int64)
    attr = next(iter(a), "value")
    raise node.error("is not supported (only dense numeric constants)", attr)


@CONVERTERS.const_eval("Shape")
def _shape_const(imp, node, v):
    return np.asarray(v[0].shape, np.int64)[node.get("start", 0):node.get("end", None)]


@CONVERTERS.converter("Shape")
def _shape(imp, node):
    shape, _ = imp.type(node, node.input(0))
    return _shape_const(imp, node, [np.broadcast_to(np.zeros((), bool), shape)])


@CONVERTERS.const_eval("Size")
def _size_const(imp, node, v):
    return np.asarray(v[0].size, np.int64)


@CONVERTERS.converter("Size")
def _size(imp, node):
    shape, _ = imp.type(node, node.input(0))
    return np.asarray(int(np.prod(shape)), np.int64)


@CONVERTERS.const_eval("Gather")
def _gather(imp, node, v):
    return np.take(v[0], v[1].astype(np.int64), axis=int(node.get("axis", 0)))


@CONVERTERS.const_eval("Unsqueeze")
def _unsqueeze(imp, node, v):
    axes = [int(a) for a in v[1].reshape(-1)] if len(v) > 1 and v[1] is not None else _ints(node, "axes")
    if axes is None:
        raise node.error("is required", "axes")
    out_rank = v[0].ndim + len(axes)
    axes = sorted(a % out_rank for a in axes)
    x = v[0]
    for a in axes:
        x = np.expand_dims(x, a)
    return x


@CONVERTERS.const_eval("Squeeze")
def _squeeze(imp, node, v):
    axes = [int(a) for a in v[1].reshape(-1)] if len(v) > 1 and v[1] is not None else _ints(node, "axes")
    x = v[0]
    if axes is None:
        return np.squeeze(x)
    axes = tuple(a % x.ndim for a in axes)
    if any(x.shape[a] != 1 for a in axes):
        raise node.error(f"= {list(axes)} names a dimension that is not 1 in {list(x.shape)}", "axes")
    return np.squeeze(x, axis=axes)


@CONVERTERS.const_eval("Concat")
def _concat_const(imp, node, v):
    return np.concatenate([x for x in v if x is not None], axis=int(node.get("axis")))


@CONVERTERS.const_eval("ConstantOfShape")
def _const_of_shape(imp, node, v):
    from onnx import numpy_helper
    val = numpy_helper.to_array(node.attrs["value"]).reshape(-1) if "value" in node.attrs else np.zeros(1, np.float32)
    return np.full([int(s) for s in v[0].reshape(-1)], val[0], val.dtype)


@CONVERTERS.const_eval("Slice")
def _slice(imp, node, v):
    x = v[0]
    if imp.opset >= 10:
        starts, ends = [int(s) for s in v[1].reshape(-1)], [int(e) for e in v[2].reshape(-1)]
        axes = [int(a) for a in v[3].reshape(-1)] if len(v) > 3 and v[3] is not None else list(range(len(starts)))
        steps = [int(s) for s in v[4].reshape(-1)] if len(v) > 4 and v[4] is not None else [1] * len(starts)
    else:
        starts, ends = _ints(node, "starts"), _ints(node, "ends")
        axes = _ints(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise node.error("a step of 0 is invalid", "steps")
        sl[a % x.ndim] = slice(s, e, st)
    return x[tuple(sl)]


@CONVERTERS.const_eval("Cast")
def _cast_const(imp, node, v):
    return v[0].astype(_onnx_dtype(node.get("to")))


@CONVERTERS.const_eval("Reshape")
def _reshape_const(imp, node, v):
    return v[0].reshape(_reshape_target(imp, node, v[0].shape))


@CONVERTERS.const_eval("Flatten")
def _flatten_const(imp, node, v):
    axis, ndim = int(node.get("axis", 1)), v[0].ndim
    if not -ndim <= axis <= ndim:
        raise node.error(f"= {axis} is out of range for a {ndim}-D input", "axis")
    axis = axis + ndim if axis < 0 else axis
    return v[0].reshape(int(np.prod(v[0].shape[:axis])), -1)


@CONVERTERS.const_eval("Transpose")
def _transpose_const(imp, node, v):
    return np.transpose(v[0], _ints(node, "perm"))


@CONVERTERS.const_eval("Expand")
def _expand(imp, node, v):
    shape = np.broadcast_shapes(v[0].shape, tuple(int(s) for s in v[1].reshape(-1)))
    return np.broadcast_to(v[0], shape).copy()


@CONVERTERS.const_eval("Range")
def _range(imp, node, v):
    return np.arange(v[0].reshape(()), v[1].reshape(()), v[2].reshape(())).astype(v[0].dtype)


def _reduce(fn):
    def ev(imp, node, v):
        axes = _reduce_axes(node, v[1] if len(v) > 1 else None)
        if axes and any(not -v[0].ndim <= a < v[0].ndim for a in axes):
            raise node.error(f"= {list(axes)} is out of range for a {v[0].ndim}-D input", "axes")
        if axes == () and int(node.get("noop_with_empty_axes", 0)):
            return v[0]
        x, keep = v[0], bool(node.get("keepdims", 1))
        if x.size == 0 and fn in (np.max, np.min):
            # ONNX: the max (min) of an empty set is the dtype's lowest (highest) value
            if x.dtype == bool:
                lowest, highest = False, True
            elif x.dtype.kind == "f":
                lowest, highest = -np.inf, np.inf
            else:
                lowest, highest = np.iinfo(x.dtype).min, np.iinfo(x.dtype).max
            return fn(x, axis=axes or None, keepdims=keep, initial=lowest if fn is np.max else highest)
        return fn(x, axis=axes or None, keepdims=keep)
    return ev


for _name, _fn in {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min,
                   "ReduceMean": np.mean}.items():
    CONVERTERS.const_evals[_name] = _reduce(_fn)


@CONVERTERS.const_eval("Pad")
def _pad_const(imp, node, v):
    width, value = _pad_args(imp, node, v[0].ndim)
    mode = node.get("mode", "constant")
    if mode == "constant":
        return np.pad(v[0], width, constant_values=value)
    return np.pad(v[0], width, mode=mode)

