"""ONNX importer: ``from_onnx(model) -> (Graph, params)``.

Covers what ``torch.onnx.export`` emits for torchvision classification models at opsets 13-20
(and the older spellings of the same ops): Conv, Gemm, MatMul, Add/Sub/Mul, Div by a constant,
Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, BatchNormalization, MaxPool, AveragePool,
GlobalAveragePool, GlobalMaxPool, ReduceMean/ReduceMax over the spatial axes, Flatten, Reshape,
Transpose, Concat, Softmax, Pad, Identity, Dropout, Constant, plus the shape-computation ops
(Shape, Gather, Unsqueeze, Squeeze, Concat, ConstantOfShape, Slice, Cast, Range, Expand,
arithmetic and comparisons ...) which are folded to constants at import: every tensor has a
static shape here, so ``Shape`` of anything is a constant.

Initializers become graph constants (named as in the model). Graph nodes are named after the
ONNX node (``node.name``, or its output when it has none; graph outputs keep their ONNX name).
An op, attribute or input this importer cannot express raises ``GraphError`` naming the ONNX
node, its op type and the attribute.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import GraphError, MiniTVMError
from ..graph.ir import Graph
from ..graph.ops import infer_reshape
from ..graph.passes import dead_code_elimination

__all__ = ["from_onnx", "supported_ops"]


def _contig(x):
    """``x`` as a C-contiguous array, keeping 0-d arrays 0-d (unlike np.ascontiguousarray)."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else x.copy(order="C")


_CONVERTERS: dict = {}
_CONST_EVAL: dict = {}
#: com.microsoft op types with a converter in _CONVERTERS (QGemm, QLinearAdd: see onnx_quant)
_MS_CONVERTERS: set = set()


def _converter(*names):
    def deco(fn):
        for n in names:
            _CONVERTERS[n] = fn
        return fn
    return deco


def _const_eval(*names):
    def deco(fn):
        for n in names:
            _CONST_EVAL[n] = fn
        return fn
    return deco


def supported_ops() -> list[str]:
    """ONNX op types the importer understands (some only on constant inputs)."""
    return sorted(set(_CONVERTERS) | set(_CONST_EVAL))


class _Node:
    """An ONNX node with decoded attributes, and error helpers that name it."""

    def __init__(self, proto):
        import onnx.helper
        self.proto = proto
        self.op = proto.op_type
        self.name = proto.name or (proto.output[0] if proto.output else "?")
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.attrs = {}
        for a in proto.attribute:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, list) and v and isinstance(v[0], bytes):
                v = [x.decode() for x in v]
            self.attrs[a.name] = v

    def error(self, msg, attr=None) -> GraphError:
        """A GraphError naming this node, its op and (optionally) the attribute."""
        what = f"ONNX node {self.name!r} ({self.op})"
        return GraphError(f"{what}: attribute {attr!r} {msg}" if attr else f"{what}: {msg}")

    def get(self, attr, default=None):
        """Attribute ``attr`` or ``default``."""
        return self.attrs.get(attr, default)

    def input(self, i):
        """The ONNX name of input ``i`` ('' when absent)."""
        return self.inputs[i] if i < len(self.inputs) else ""


class _Importer:
    def __init__(self, model, shape, opset):
        self.model = model
        self.opset = opset
        self.g = Graph(model.graph.name or "onnx_model")
        self.env: dict[str, object] = {}  # onnx name -> graph node name (str) or constant (ndarray)
        self.const_names: dict[int, str] = {}  # id(array) -> graph const name, once materialized
        self.onnx_name: dict[int, str] = {}  # id(array) -> preferred name
        self.shape = shape
        self.graph_outputs = {o.name for o in model.graph.output}

    # -- values
    def set(self, name, value):
        if isinstance(value, np.ndarray):
            self.onnx_name.setdefault(id(value), name)
        self.env[name] = value

    def has(self, name):
        return name in self.env

    def value(self, node, name):
        if name not in self.env:
            raise node.error(f"reads {name!r}, which no earlier node or input defines")
        return self.env[name]

    def is_const(self, node, name):
        return isinstance(self.value(node, name), np.ndarray)

    def const(self, node, name, what):
        v = self.value(node, name)
        if not isinstance(v, np.ndarray):
            raise node.error(f"input {what} ({name!r}) must be a constant (an initializer or computable at import)")
        return v

    def tensor(self, node, name):
        """The graph node holding ONNX value ``name`` (constants are added to the graph on first use)."""
        v = self.value(node, name)
        if not isinstance(v, np.ndarray):
            return v
        key = id(v)
        if key not in self.const_names:
            self.const_names[key] = self.g.add_const(self.g.unique_name(_clean(self.onnx_name.get(key, name))), v)
        return self.const_names[key]

    def new_const(self, base, array):
        return self.g.add_const(self.g.unique_name(_clean(base)), _contig(array))

    def type(self, node, name):
        v = self.value(node, name)
        if isinstance(v, np.ndarray):
            return v.shape, v.dtype.name
        t = self.g.node(v).type
        return t.shape, t.dtype

    def op_name(self, node, suffix=""):
        out = node.outputs[0] if node.outputs else node.name
        base = out if out in self.graph_outputs and not suffix else (node.name or out) + suffix
        return self.g.unique_name(_clean(base))

    def add(self, node, op, inputs, attrs=None, suffix=""):
        return self.g.add_op(op, inputs, attrs or {}, name=self.op_name(node, suffix))

    # -- driver
    def run(self):
        gp = self.model.graph
        from onnx import numpy_helper
        inits = {}
        for t in gp.initializer:
            inits[t.name] = numpy_helper.to_array(t)
        for t in gp.sparse_initializer:
            raise GraphError(f"ONNX sparse initializer {t.values.name!r} is not supported")
        for vi in gp.input:
            if vi.name in inits:
                continue
            self._add_input(vi)
        for name, arr in inits.items():
            self.set(name, _contig(arr))
        for proto in gp.node:
            node = _Node(proto)
            if proto.domain not in ("", "ai.onnx") and not (
                    proto.domain == "com.microsoft" and proto.op_type in _MS_CONVERTERS):
                raise node.error(f"op domain {proto.domain!r} is not supported (only the default ONNX domain"
                                 f" and the com.microsoft ops {sorted(_MS_CONVERTERS)})")
            self._convert(node)
        for o in gp.output:
            v = self.value(_Fake(o.name), o.name)
            if isinstance(v, np.ndarray):
                v = self.new_const(o.name, v)
            self.g.mark_output(v)
        return dead_code_elimination(self.g)

    def _add_input(self, vi):
        import onnx.helper
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise GraphError(f"ONNX input {vi.name!r}: only tensor inputs are supported")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        given = None
        if isinstance(self.shape, dict):
            given = self.shape.get(vi.name)
        elif self.shape is not None:
            given = self.shape
        if given is not None:
            given = tuple(int(s) for s in given)
            if len(given) != len(dims) or any(isinstance(d, int) and d and d != s for d, s in zip(dims, given)):
                raise GraphError(f"ONNX input {vi.name!r}: shape {list(given)} does not fit the model's {dims}")
            dims = list(given)
        if any(not isinstance(d, int) or d <= 0 for d in dims):
            raise GraphError(f"ONNX input {vi.name!r} has dynamic dimensions {dims}; pass "
                             f"shape={{{vi.name!r}: (...)}} to from_onnx")
        self.set(vi.name, self.g.add_input(_clean(vi.name), dims, dtype))

    def _convert(self, node):
        ins = [i for i in node.inputs if i]
        if node.op in _CONST_EVAL and all(self.is_const(node, i) for i in ins) and (
                ins or node.op not in _CONVERTERS):
            out = _CONST_EVAL[node.op](self, node, [self.value(node, i) if i else None for i in node.inputs])
            outs = out if isinstance(out, (list, tuple)) else [out]
            for name, v in zip(node.outputs, outs):
                self.set(name, _contig(np.asarray(v)))
            return
        if node.op not in _CONVERTERS:
            if node.op in _CONST_EVAL:
                raise node.error("is only supported on constant inputs (shape computations)")
            raise node.error("this op is not supported by the minitvm ONNX importer")
        try:
            out = _CONVERTERS[node.op](self, node)
        except MiniTVMError as e:
            if str(e).startswith("ONNX node"):
                raise
            raise type(e)(f"ONNX node {node.name!r} ({node.op}): {e}") from None
        outs = out if isinstance(out, (list, tuple)) else [out]
        for name, v in zip(node.outputs, outs):
            if name:
                self.set(name, v)


class _Fake:
    def __init__(self, name):
        self.name, self.op = name, "graph output"

    def error(self, msg, attr=None):
        return GraphError(f"ONNX graph output {self.name!r}: {msg}")


def _clean(name: str) -> str:
    return name.strip() or "value"


# ====================================================================== helpers
def _ints(node, attr, default=None):
    v = node.get(attr, default)
    return None if v is None else [int(x) for x in v]


def _spatial_2d(node, what, n):
    if n != 4:
        raise node.error(f"only 2-D (NCHW) {what} is supported, the input is {n}-D")


def _auto_pad(node, in_hw, kernel, strides, dilations, pads):
    mode = node.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        return pads
    if mode == "VALID":
        return [0, 0, 0, 0]
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"= {mode!r} is not supported", "auto_pad")
    begin, end = [], []
    for n, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small = total // 2
        b = small if mode == "SAME_UPPER" else total - small
        begin.append(b)
        end.append(total - b)
    return begin + end


def _onnx_dtype(code):
    import onnx.helper
    return onnx.helper.tensor_dtype_to_np_dtype(code)


def _axes(imp, node, idx, attr="axes"):
    """Axes from an attribute (old opsets) or from constant input ``idx`` (new ones)."""
    if node.input(idx):
        return [int(a) for a in np.asarray(imp.const(node, node.input(idx), attr)).reshape(-1)]
    return _ints(node, attr)


# ====================================================================== conv / dense
def _conv_attrs(node, xs, ws) -> dict:
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


@_converter("Conv")
def _conv(imp, node):
    x = imp.tensor(node, node.input(0))
    xs, _ = imp.type(node, node.input(0))
    ws, _ = imp.type(node, node.input(1))
    attrs = _conv_attrs(node, xs, ws)
    ins = [x, imp.tensor(node, node.input(1))]
    if node.input(2):
        ins.append(imp.tensor(node, node.input(2)))
    return imp.add(node, "conv2d", ins, attrs)


@_converter("Gemm")
def _gemm(imp, node):
    alpha, beta = float(node.get("alpha", 1.0)), float(node.get("beta", 1.0))
    ta, tb = int(node.get("transA", 0)), int(node.get("transB", 0))
    a_name, b_name, c_name = node.input(0), node.input(1), node.input(2)
    if ta:
        if not imp.is_const(node, a_name):
            raise node.error("= 1 is only supported when A is a constant", "transA")
        a = imp.new_const(f"{a_name}_T", imp.const(node, a_name, "A").T)
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


@_converter("MatMul")
def _matmul(imp, node):
    a_shape, _ = imp.type(node, node.input(0))
    b_shape, _ = imp.type(node, node.input(1))
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise node.error(f"1-D operands are not supported (shapes {list(a_shape)} and {list(b_shape)})")
    a = imp.tensor(node, node.input(0))
    if len(a_shape) == 2 and len(b_shape) == 2 and imp.is_const(node, node.input(1)):
        w = imp.const(node, node.input(1), "B")
        return imp.add(node, "dense", [a, imp.new_const(f"{node.input(1)}_T", w.T)])
    return imp.add(node, "matmul", [a, imp.tensor(node, node.input(1))])


# ====================================================================== element-wise
def _binary_graph(imp, node, op):
    a, b = node.input(0), node.input(1)
    return imp.add(node, op, [imp.tensor(node, a), imp.tensor(node, b)])


@_converter("Add")
def _add(imp, node):
    return _binary_graph(imp, node, "add")


@_converter("Sub")
def _sub(imp, node):
    return _binary_graph(imp, node, "sub")


@_converter("Mul")
def _mul(imp, node):
    return _binary_graph(imp, node, "mul")


@_converter("Div")
def _div(imp, node):
    if not imp.is_const(node, node.input(1)):
        raise node.error("division by a non-constant tensor is not supported (input B must be a constant)")
    c = imp.const(node, node.input(1), "B")
    if c.dtype.kind != "f":
        raise node.error(f"integer division of a tensor ({c.dtype}) is not supported")
    recip = imp.new_const(f"{node.input(1)}_reciprocal", (1.0 / c.astype(np.float64)).astype(c.dtype))
    return imp.add(node, "mul", [imp.tensor(node, node.input(0)), recip])


@_converter("Relu")
def _relu(imp, node):
    return imp.add(node, "relu", [imp.tensor(node, node.input(0))])


@_converter("Sigmoid")
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


@_converter("LeakyRelu")
def _leakyrelu(imp, node):
    return leaky_relu(imp, node, imp.tensor(node, node.input(0)), float(node.get("alpha", 0.01)))


@_converter("Clip")
def _clip(imp, node):
    if imp.opset >= 11:
        lo = float(imp.const(node, node.input(1), "min")) if node.input(1) else -np.inf
        hi = float(imp.const(node, node.input(2), "max")) if node.input(2) else np.inf
    else:
        lo, hi = float(node.get("min", -np.inf)), float(node.get("max", np.inf))
    return imp.add(node, "clip", [imp.tensor(node, node.input(0))], {"min": lo, "max": hi})


def _hard_sigmoid(imp, node, x, alpha, beta, suffix):
    dtype = imp.g.node(x).type.dtype
    y = imp.add(node, "mul", [x, imp.new_const(f"{node.name}{suffix}.alpha", np.asarray(alpha, dtype))],
                suffix=suffix + ".mul")
    y = imp.add(node, "add", [y, imp.new_const(f"{node.name}{suffix}.beta", np.asarray(beta, dtype))],
                suffix=suffix + ".add")
    return imp.add(node, "clip", [y], {"min": 0.0, "max": 1.0}, suffix=suffix)


@_converter("HardSigmoid")
def _hardsigmoid(imp, node):
    return _hard_sigmoid(imp, node, imp.tensor(node, node.input(0)), float(node.get("alpha", 0.2)),
                         float(node.get("beta", 0.5)), "")


@_converter("HardSwish")
def _hardswish(imp, node):
    x = imp.tensor(node, node.input(0))
    return imp.add(node, "mul", [x, _hard_sigmoid(imp, node, x, 1.0 / 6, 0.5, ".hardsigmoid")])


@_converter("Identity", "Dropout")
def _identity(imp, node):
    if node.op == "Dropout":
        mode = node.input(2)
        if mode and imp.is_const(node, mode) and bool(imp.const(node, mode, "training_mode")):
            raise node.error("training_mode = true is not supported (inference only)")
        if len(node.outputs) > 1 and node.outputs[1]:
            x = imp.value(node, node.input(0))
            shape, _ = imp.type(node, node.input(0))
            return [x, np.ones(shape, bool)]
    return imp.value(node, node.input(0))


@_converter("Cast")
def _cast(imp, node):
    dtype = np.dtype(_onnx_dtype(node.get("to"))).name
    x = imp.tensor(node, node.input(0))
    if imp.g.node(x).type.dtype == dtype:
        return x
    return imp.add(node, "cast", [x], {"dtype": dtype})


# ====================================================================== normalization / pooling
@_converter("BatchNormalization")
def _bn(imp, node):
    if int(node.get("training_mode", 0)):
        raise node.error("= 1 is not supported (inference only)", "training_mode")
    if imp.opset < 9 and int(node.get("spatial", 1)) != 1:
        raise node.error("= 0 is not supported", "spatial")
    if len([o for o in node.outputs if o]) > 1:
        raise node.error("the running mean/var outputs (training) are not supported")
    ins = [imp.tensor(node, node.input(i)) for i in range(5)]
    return imp.add(node, "batch_norm", ins, {"epsilon": float(node.get("epsilon", 1e-5)), "axis": 1})


def pool(imp, node, op, x=None, suffix=""):
    """``max_pool2d`` / ``avg_pool2d`` of ``x`` (default: the node's first input) with the ONNX
    pooling attributes of ``node``."""
    xs, _ = imp.type(node, node.input(0))
    _spatial_2d(node, node.op, len(xs))
    if len([o for o in node.outputs if o]) > 1:
        raise node.error("the Indices output is not supported")
    kernel = _ints(node, "kernel_shape")
    if kernel is None or len(kernel) != 2:
        raise node.error(f"= {kernel} must give 2 values", "kernel_shape")
    strides = _ints(node, "strides", [1, 1])
    dil = _ints(node, "dilations", [1, 1])
    if any(d != 1 for d in dil):
        raise node.error(f"= {dil} is not supported (only 1)", "dilations")
    pads = _auto_pad(node, xs[2:], kernel, strides, dil, _ints(node, "pads", [0, 0, 0, 0]))
    attrs = {"pool_size": kernel, "strides": strides, "padding": tuple(pads),
             "ceil_mode": bool(node.get("ceil_mode", 0))}
    if op == "avg_pool2d":
        attrs["count_include_pad"] = bool(node.get("count_include_pad", 0))
    x = imp.tensor(node, node.input(0)) if x is None else x
    return imp.add(node, op, [x], attrs, suffix=suffix)


@_converter("MaxPool")
def _maxpool(imp, node):
    return pool(imp, node, "max_pool2d")


@_converter("AveragePool")
def _avgpool(imp, node):
    return pool(imp, node, "avg_pool2d")


@_converter("GlobalAveragePool", "GlobalMaxPool")
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


@_converter("ReduceMean", "ReduceMax")
def _reduce_spatial(imp, node):
    """ReduceMean / ReduceMax of a graph tensor over the spatial axes of NCHW (what
    ``x.mean((2, 3), keepdim=True)`` exports) -> global_avg_pool2d / global_max_pool2d, and a
    reshape to [N, C] when ``keepdims`` is 0."""
    xs, _ = imp.type(node, node.input(0))
    _spatial_2d(node, node.op, len(xs))
    axes = _reduce_axes(node, imp.const(node, node.input(1), "axes") if node.input(1) else None)
    if axes is None or sorted(a % 4 for a in axes) != [2, 3]:
        raise node.error(f"= {None if axes is None else list(axes)} is not supported on a graph tensor (only the "
                         "spatial axes [2, 3])", "axes")
    op = "global_avg_pool2d" if node.op == "ReduceMean" else "global_max_pool2d"
    x = imp.tensor(node, node.input(0))
    if int(node.get("keepdims", 1)):
        return imp.add(node, op, [x])
    y = imp.add(node, op, [x], suffix=".pool")
    return imp.add(node, "reshape", [y], {"newshape": list(xs[:2])})


@_converter("Softmax")
def _softmax(imp, node):
    return softmax(imp, node, imp.tensor(node, node.input(0)), imp.opset)


# ====================================================================== shapes
@_converter("Flatten")
def _flatten(imp, node):
    xs, _ = imp.type(node, node.input(0))
    axis = int(node.get("axis", 1))
    if not -len(xs) <= axis <= len(xs):
        raise node.error(f"= {axis} is out of range for a {len(xs)}-D input", "axis")
    return imp.add(node, "flatten", [imp.tensor(node, node.input(0))], {"axis": axis % (len(xs) + 1)})


def _reshape_target(imp, node, in_shape):
    if node.input(1):
        shape = [int(s) for s in imp.const(node, node.input(1), "shape").reshape(-1)]
    else:
        shape = _ints(node, "shape")
    if int(node.get("allowzero", 0)) and 0 in shape:
        raise node.error("= 1 with a 0 in the target shape is not supported", "allowzero")
    try:
        return infer_reshape(tuple(in_shape), shape)
    except ValueError as e:
        raise node.error(f"cannot reshape {list(in_shape)} to {shape}: {e}") from None


@_converter("Reshape")
def _reshape(imp, node):
    xs, _ = imp.type(node, node.input(0))
    return imp.add(node, "reshape", [imp.tensor(node, node.input(0))],
                   {"newshape": list(_reshape_target(imp, node, xs))})


@_converter("Unsqueeze", "Squeeze")
def _squeeze_graph(imp, node):
    xs, dtype = imp.type(node, node.input(0))
    out = _CONST_EVAL[node.op](imp, node, [np.broadcast_to(np.zeros((), bool), xs)] + [
        imp.value(node, i) if i else None for i in node.inputs[1:]]).shape
    return imp.add(node, "reshape", [imp.tensor(node, node.input(0))], {"newshape": list(out)})


@_converter("Transpose")
def _transpose(imp, node):
    perm = _ints(node, "perm")
    return imp.add(node, "transpose", [imp.tensor(node, node.input(0))], {"axes": perm})


@_converter("Concat")
def _concat(imp, node):
    ins = [imp.tensor(node, i) for i in node.inputs if i]
    return imp.add(node, "concatenate", ins, {"axis": int(node.get("axis"))})


@_converter("Pad")
def _pad(imp, node):
    xs, dtype = imp.type(node, node.input(0))
    mode = node.get("mode", "constant")
    if mode not in ("constant", "edge", "reflect"):
        raise node.error(f"= {mode!r} is not supported (constant, edge or reflect)", "mode")
    pad_width, value = _pad_args(imp, node, len(xs))
    return imp.add(node, "pad", [imp.tensor(node, node.input(0))],
                   {"pad_width": pad_width, "value": value, "mode": mode})


def _pad_args(imp, node, ndim):
    if imp.opset >= 11:
        pads = [int(p) for p in imp.const(node, node.input(1), "pads").reshape(-1)]
        value = float(imp.const(node, node.input(2), "constant_value").reshape(-1)[0]) if node.input(2) else 0.0
        axes = _axes(imp, node, 3) if node.input(3) else list(range(ndim))
    else:
        pads, value, axes = _ints(node, "pads"), float(node.get("value", 0.0)), list(range(ndim))
    axes = [a % ndim for a in axes]
    if len(pads) != 2 * len(axes):
        raise node.error(f"= {pads} must hold 2 values per padded axis ({len(axes)})", "pads")
    if any(p < 0 for p in pads):
        raise node.error(f"= {pads}: negative pads (cropping) are not supported", "pads")
    width = [(0, 0)] * ndim
    for i, a in enumerate(axes):
        width[a] = (pads[i], pads[i + len(axes)])
    return width, value


# ====================================================================== constant-only evaluation
def _np_div(a, b):
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return (np.trunc(a / b)).astype(np.result_type(a, b))
    return a / b


def _same(a, b):
    return a.astype(np.result_type(a, b), copy=False)


for _name, _fn in {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _np_div, "Pow": np.power,
                   "Max": np.maximum, "Min": np.minimum, "Equal": np.equal, "Less": np.less,
                   "Greater": np.greater, "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
                   "And": np.logical_and, "Or": np.logical_or, "Mod": np.fmod}.items():
    _CONST_EVAL[_name] = (lambda fn: lambda imp, node, v: np.asarray(fn(v[0], v[1])).astype(
        v[0].dtype if fn not in (np.equal, np.less, np.greater, np.less_equal, np.greater_equal,
                                 np.logical_and, np.logical_or) else bool))(_fn)
for _name, _fn in {"Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
                   "Floor": np.floor, "Ceil": np.ceil, "Not": np.logical_not, "Relu": lambda x: np.maximum(x, 0),
                   "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Identity": lambda x: x,
                   "Reciprocal": lambda x: 1 / x}.items():
    _CONST_EVAL[_name] = (lambda fn: lambda imp, node, v: np.asarray(fn(v[0])).astype(
        v[0].dtype if fn is not np.logical_not else bool))(_fn)


@_const_eval("Where")
def _where(imp, node, v):
    return np.where(v[0], v[1], v[2])


@_const_eval("Constant")
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


@_const_eval("Shape")
def _shape_const(imp, node, v):
    return np.asarray(v[0].shape, np.int64)[node.get("start", 0):node.get("end", None)]


@_converter("Shape")
def _shape(imp, node):
    shape, _ = imp.type(node, node.input(0))
    return _shape_const(imp, node, [np.broadcast_to(np.zeros((), bool), shape)])


@_const_eval("Size")
def _size_const(imp, node, v):
    return np.asarray(v[0].size, np.int64)


@_converter("Size")
def _size(imp, node):
    shape, _ = imp.type(node, node.input(0))
    return np.asarray(int(np.prod(shape)), np.int64)


@_const_eval("Gather")
def _gather(imp, node, v):
    return np.take(v[0], v[1].astype(np.int64), axis=int(node.get("axis", 0)))


@_const_eval("Unsqueeze")
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


@_const_eval("Squeeze")
def _squeeze(imp, node, v):
    axes = [int(a) for a in v[1].reshape(-1)] if len(v) > 1 and v[1] is not None else _ints(node, "axes")
    x = v[0]
    if axes is None:
        return np.squeeze(x)
    axes = tuple(a % x.ndim for a in axes)
    if any(x.shape[a] != 1 for a in axes):
        raise node.error(f"= {list(axes)} names a dimension that is not 1 in {list(x.shape)}", "axes")
    return np.squeeze(x, axis=axes)


@_const_eval("Concat")
def _concat_const(imp, node, v):
    return np.concatenate([x for x in v if x is not None], axis=int(node.get("axis")))


@_const_eval("ConstantOfShape")
def _const_of_shape(imp, node, v):
    from onnx import numpy_helper
    val = numpy_helper.to_array(node.attrs["value"]).reshape(-1) if "value" in node.attrs else np.zeros(1, np.float32)
    return np.full([int(s) for s in v[0].reshape(-1)], val[0], val.dtype)


@_const_eval("Slice")
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


@_const_eval("Cast")
def _cast_const(imp, node, v):
    return v[0].astype(_onnx_dtype(node.get("to")))


@_const_eval("Reshape")
def _reshape_const(imp, node, v):
    return v[0].reshape(_reshape_target(imp, node, v[0].shape))


@_const_eval("Flatten")
def _flatten_const(imp, node, v):
    axis = int(node.get("axis", 1)) % (v[0].ndim + 1)
    return v[0].reshape(int(np.prod(v[0].shape[:axis])), -1)


@_const_eval("Transpose")
def _transpose_const(imp, node, v):
    return np.transpose(v[0], _ints(node, "perm"))


@_const_eval("Expand")
def _expand(imp, node, v):
    shape = np.broadcast_shapes(v[0].shape, tuple(int(s) for s in v[1].reshape(-1)))
    return np.broadcast_to(v[0], shape).copy()


@_const_eval("Range")
def _range(imp, node, v):
    return np.arange(v[0].reshape(()), v[1].reshape(()), v[2].reshape(())).astype(v[0].dtype)


def _reduce_axes(node, axes_input):
    """A Reduce* node's axes: its ``axes`` input's values (opset 18 on; ``axes_input``, or None
    when it has none) or else its ``axes`` attribute; None when neither is given."""
    if axes_input is not None:
        return tuple(int(a) for a in np.asarray(axes_input).reshape(-1))
    axes = _ints(node, "axes")
    return tuple(axes) if axes is not None else None


def _reduce(fn):
    def ev(imp, node, v):
        axes = _reduce_axes(node, v[1] if len(v) > 1 else None)
        if axes == () and int(node.get("noop_with_empty_axes", 0)):
            return v[0]
        return fn(v[0], axis=axes or None, keepdims=bool(node.get("keepdims", 1)))
    return ev


for _name, _fn in {"ReduceProd": np.prod, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min,
                   "ReduceMean": np.mean}.items():
    _CONST_EVAL[_name] = _reduce(_fn)


@_const_eval("Pad")
def _pad_const(imp, node, v):
    width, value = _pad_args(imp, node, v[0].ndim)
    mode = node.get("mode", "constant")
    if mode == "constant":
        return np.pad(v[0], width, constant_values=value)
    return np.pad(v[0], width, mode=mode)


# ====================================================================== entry point
def _load(model_or_path):
    import onnx
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model_or_path))
    if isinstance(model_or_path, (str, os.PathLike)):
        if not os.path.exists(model_or_path):
            raise GraphError(f"from_onnx: no such file {os.fspath(model_or_path)!r}")
        return onnx.load(os.fspath(model_or_path))
    raise GraphError(f"from_onnx: expected an onnx.ModelProto, bytes or a path, got {type(model_or_path).__name__}")


def from_onnx(model_or_path, shape=None):
    """Import an ONNX model; returns ``(graph, params)``.

    ``model_or_path`` is an ``onnx.ModelProto``, serialized bytes or a file path. ``shape``
    fixes input shapes: a dict ``{input name: shape}`` or, for a one-input model, a shape;
    it is required when the model has dynamic dimensions (e.g. a symbolic batch). ``params``
    maps the graph's constant names to their arrays (the graph holds the same arrays).
    """
    try:
        import onnx  # noqa: F401
    except ImportError:  # pragma: no cover
        raise GraphError("from_onnx needs the onnx package: pip install 'minitvm[onnx]'") from None
    model = _load(model_or_path)
    opset = None
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = imp.version
    if opset is None:
        raise GraphError("from_onnx: the model imports no default-domain (ai.onnx) opset")
    g = _Importer(model, shape, opset).run()
    return g, g.params()


# the pre-quantized (QDQ / QOperator) converters register themselves in _CONVERTERS
from . import onnx_quant as _onnx_quant  # noqa: E402,F401
