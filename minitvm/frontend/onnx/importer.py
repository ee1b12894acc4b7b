"""The import driver: ONNX nodes with decoded attributes (:class:`OnnxNode`) and the
:class:`Importer` that walks a model's nodes in order, folds what is constant (:mod:`.fold`)
and hands the rest to the converters of a :class:`~.registry.ConverterTable`."""
from __future__ import annotations

import numpy as np

from ...errors import GraphError, MiniTVMError
from ...graph.ir import Graph
from ...graph.passes import dead_code_elimination
from .attrs import dtype_of
from .fold import MAX_FOLD_BYTES, fold_node, foldable

__all__ = ["OnnxNode", "Importer", "ConstantRequired", "clean_name", "contig"]


class ConstantRequired(GraphError):
    """An input the importer needs as a constant (a shape, axes, pads, a scale ...) is computed at
    run time; ``value`` is its ONNX name (``from_onnx(constants=...)`` can fix model inputs)."""

    def __init__(self, msg, value):
        super().__init__(msg)
        self.value = value


def contig(x):
    """``x`` as a C-contiguous array, keeping 0-d arrays 0-d (unlike np.ascontiguousarray)."""
    x = np.asarray(x)
    return x if x.flags.c_contiguous else x.copy(order="C")


class OnnxNode:
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


class Importer:
    """One import: the ONNX model, the graph being built and the ONNX value -> graph value map."""

    def __init__(self, model, shape, opset, table, constants=None, max_fold_bytes=MAX_FOLD_BYTES):
        """Import ``model`` (input ``shape`` overrides, default-domain ``opset``) with the converters of
        ``table``; ``constants`` fixes model inputs to values; ``max_fold_bytes`` bounds each folded tensor."""
        self.model = model
        self.constants = dict(constants or {})
        self.max_fold_bytes = int(max_fold_bytes)
        self.table = table
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
            raise ConstantRequired(f"ONNX node {node.name!r} ({node.op}): input {what} ({name!r}) must be a constant "
                                   "(an initializer or computable at import)", name)
        return v

    def tensor(self, node, name):
        """The graph node holding ONNX value ``name`` (constants are added to the graph on first use)."""
        v = self.value(node, name)
        if not isinstance(v, np.ndarray):
            return v
        key = id(v)
        if key not in self.const_names:
            self.const_names[key] = self.g.add_const(self.g.unique_name(clean_name(self.onnx_name.get(key, name))), v)
        return self.const_names[key]

    def new_const(self, base, array):
        return self.g.add_const(self.g.unique_name(clean_name(base)), contig(array))

    def type(self, node, name):
        v = self.value(node, name)
        if isinstance(v, np.ndarray):
            return v.shape, v.dtype.name
        t = self.g.node(v).type
        return t.shape, t.dtype

    def op_name(self, node, suffix=""):
        out = node.outputs[0] if node.outputs else node.name
        base = out if out in self.graph_outputs and not suffix else (node.name or out) + suffix
        return self.g.unique_name(clean_name(base))

    def add(self, node, op, inputs, attrs=None, suffix=""):
        return self.g.add_op(op, inputs, attrs or {}, name=self.op_name(node, suffix))

    # -- driver
    def run(self):
        gp = self.model.graph
        from onnx import numpy_helper
        inits = {}
        for t in gp.initializer:
            try:
                inits[t.name] = numpy_helper.to_array(t)
            except Exception as exc:  # noqa: BLE001  (numpy's reshape / decode errors on a corrupt tensor)
                raise GraphError(f"ONNX initializer {t.name!r} (dims {list(t.dims)}) is corrupt: its data does not "
                                 f"fit its dims and type ({type(exc).__name__}: {exc})") from None
        for t in gp.sparse_initializer:
            raise GraphError(f"ONNX sparse initializer {t.values.name!r} is not supported")
        unknown = sorted(set(self.constants) - {vi.name for vi in gp.input})
        if unknown:
            raise GraphError(f"from_onnx: constants given for {unknown}, which are not inputs of the model")
        for vi in gp.input:
            if vi.name in inits:
                continue
            if vi.name in self.constants:
                self.set(vi.name, self._given_constant(vi))
                continue
            self._add_input(vi)
        for name, arr in inits.items():
            self.set(name, contig(arr))
        for proto in gp.node:
            node = OnnxNode(proto)
            if proto.domain not in ("", "ai.onnx") and not (
                    proto.domain == "com.microsoft" and proto.op_type in self.table.ms_domain):
                raise node.error(f"op domain {proto.domain!r} is not supported (only the default ONNX domain"
                                 f" and the com.microsoft ops {sorted(self.table.ms_domain)})")
            self._convert(node)
        for o in gp.output:
            v = self.value(_Fake(o.name), o.name)
            if isinstance(v, np.ndarray):
                v = self.new_const(o.name, v)
            self.g.mark_output(v)
        return dead_code_elimination(self.g)

    def _given_constant(self, vi):
        """The value ``constants`` gives model input ``vi``, checked against its declared type."""
        v = contig(self.constants[vi.name])
        dtype = _input_dtype(vi)
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if v.dtype.name != dtype or (tt.HasField("shape") and (
                len(dims) != v.ndim or any(d is not None and d != s for d, s in zip(dims, v.shape)))):
            raise GraphError(f"from_onnx: constants[{vi.name!r}] is {v.dtype}{list(v.shape)}, the model declares "
                             f"{dtype}{[d if d is not None else '?' for d in dims]}")
        return v

    def _add_input(self, vi):
        tt = vi.type.tensor_type
        dtype = _input_dtype(vi)
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        given = None
        if isinstance(self.shape, dict):
            given = self.shape.get(vi.name)
        elif self.shape is not None:
            given = self.shape
        if given is None and not tt.HasField("shape"):
            raise GraphError(f"ONNX input {vi.name!r} has no shape (unknown rank); pass "
                             f"shape={{{vi.name!r}: (...)}} to from_onnx")
        if given is not None and not tt.HasField("shape"):
            dims = ["?"] * len(tuple(given))
        if given is not None:
            given = tuple(int(s) for s in given)
            if len(given) != len(dims) or any(isinstance(d, int) and d and d != s for d, s in zip(dims, given)):
                raise GraphError(f"ONNX input {vi.name!r}: shape {list(given)} does not fit the model's {dims}")
            dims = list(given)
        if any(not isinstance(d, int) or d < 0 for d in dims):
            raise GraphError(f"ONNX input {vi.name!r} has dynamic dimensions {dims}; pass "
                             f"shape={{{vi.name!r}: (...)}} to from_onnx")
        if 0 in dims:   # an empty tensor: its value is known, so it is a constant
            self.set(vi.name, np.zeros(dims, dtype))
            return
        self.set(vi.name, self.g.add_input(clean_name(vi.name), dims, dtype))

    def _convert(self, node):
        ins = [i for i in node.inputs if i]
        if all(self.is_const(node, i) for i in ins) and foldable(node, self.table):
            outs = fold_node(self, node, [self.value(node, i) if i else None for i in node.inputs])
            for name, v in zip(node.outputs, outs):
                if name:
                    self.set(name, contig(v))
            return
        if node.op not in self.table.converters:
            if node.op in self.table.fold_only:
                first = next(i for i in ins if not self.is_const(node, i))
                raise ConstantRequired(f"ONNX node {node.name!r} ({node.op}): is only supported on constant inputs "
                                       f"(shape computations); input {first!r} is computed at run time", first)
            raise node.error("this op is not supported by the minitvm ONNX importer")
        try:
            out = self.table.converters[node.op](self, node)
        except MiniTVMError as e:
            if str(e).startswith("ONNX node"):
                raise
            raise type(e)(f"ONNX node {node.name!r} ({node.op}): {e}") from None
        outs = out if isinstance(out, (list, tuple)) else [out]
        for name, v in zip(node.outputs, outs):
            if name:
                self.set(name, v)


def _input_dtype(vi) -> str:
    """The numpy dtype name of model input ``vi``; a GraphError for a non-tensor input or an element
    type minitvm has no dtype for."""
    if not vi.type.HasField("tensor_type"):
        raise GraphError(f"ONNX input {vi.name!r}: only tensor inputs are supported")
    dtype, name = dtype_of(vi.type.tensor_type.elem_type)
    if dtype is None:
        raise GraphError(f"ONNX input {vi.name!r} has element type {name}; minitvm takes bool, integer and "
                         "float16/32/64 inputs")
    return dtype


class _Fake:
    def __init__(self, name):
        self.name, self.op = name, "graph output"

    def error(self, msg, attr=None):
        return GraphError(f"ONNX graph output {self.name!r}: {msg}")


def clean_name(name: str) -> str:
    """A graph name made from an ONNX name (empty names become ``value``)."""
    return name.strip() or "value"

