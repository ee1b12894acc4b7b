"""Constant folding at import, by onnx's own reference evaluator (``onnx.reference``).

A node whose inputs are all constants (initializers, ``Constant`` nodes, ``Shape`` of a graph
tensor -- every shape is static here -- or results folded before) is evaluated at import with
the reference implementation of its op at the model's opset, so the folded values follow the
ONNX specification exactly. Before it runs, ``onnx.shape_inference`` infers the node's output
shapes from its input types and the values of its small inputs (a shape, axes, a range's
bounds); a result larger than the import's byte limit (:data:`MAX_FOLD_BYTES` by default) is
refused with an error naming the node, so a few-hundred-byte ``ConstantOfShape`` / ``Expand`` /
``Range`` of 10^11 elements never allocates. What the reference refuses (a ``Gather`` index out
of range, an axis out of range ...) is a ``GraphError`` naming the node as well.
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["MAX_FOLD_BYTES", "foldable", "fold_node"]

#: the default limit on the bytes of one tensor the importer may fold (``from_onnx(max_fold_bytes=)``)
MAX_FOLD_BYTES = 1 << 30

#: inputs of at most this many elements are handed to shape inference as values (shapes, axes ...)
_SMALL = 1024

#: ops whose result is not a function of their inputs: never folded
_RANDOM = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
                     "Multinomial"})


def foldable(node, table) -> bool:
    """Whether ``node`` may be evaluated at import once its inputs are constants: a default-domain op
    that is deterministic, has no subgraph, and whose converter does not take constants itself."""
    import onnx
    if node.proto.domain not in ("", "ai.onnx") or node.op in _RANDOM or node.op in table.sees_constants:
        return False
    return not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.proto.attribute)


def _tensor_type(a):
    from onnx import helper
    return helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)


def _check_output_sizes(imp, node, arrays):
    """Refuse, before it is computed, an output that shape inference shows to exceed the byte limit."""
    import onnx
    from onnx import helper, numpy_helper
    try:
        schema = onnx.defs.get_schema(node.op, imp.opset, node.proto.domain)
    except onnx.defs.SchemaError:
        raise node.error(f"is not an op of ONNX opset {imp.opset}") from None
    types, data = {}, {}
    for name, a in zip(node.inputs, arrays):
        if not name:
            continue
        try:
            types[name] = _tensor_type(a)
            if a.size <= _SMALL:
                data[name] = numpy_helper.from_array(a, name)
        except (TypeError, ValueError, KeyError):
            return   # a dtype ONNX types cannot spell (strings ...): checked after evaluation
    try:
        outs = onnx.shape_inference.infer_node_outputs(schema, node.proto, types, data,
                                                       opset_imports=[helper.make_opsetid("", imp.opset)])
    except onnx.shape_inference.InferenceError as exc:
        raise node.error(f"is invalid: {str(exc).strip().splitlines()[0]}") from None
    for name, t in outs.items():
        tt = t.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if not tt.HasField("shape") or None in dims or not tt.elem_type:
            continue
        nbytes = int(np.prod(dims, dtype=object)) * helper.tensor_dtype_to_np_dtype(tt.elem_type).itemsize
        _check_bytes(imp, node, name, dims, nbytes)


def _check_bytes(imp, node, name, dims, nbytes):
    if nbytes > imp.max_fold_bytes:
        raise node.error(f"output {name!r} of shape {list(dims)} would take {nbytes:,} bytes to fold at import, more "
                         f"than the limit of {imp.max_fold_bytes:,} (from_onnx(max_fold_bytes=...))")


def fold_node(imp, node, arrays) -> list:
    """The outputs of ``node`` evaluated on its constant inputs ``arrays`` (None for an absent
    optional input), by ``onnx.reference`` at the import's opset."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    _check_output_sizes(imp, node, arrays)
    names = [n for n in node.inputs if n]
    feeds = {n: a for n, a in zip(node.inputs, arrays) if n}
    outs = [o for o in node.outputs if o]
    graph = helper.make_graph([node.proto], "fold", [helper.make_value_info(n, onnx.TypeProto()) for n in names],
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs])
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            results = ReferenceEvaluator(graph, opsets={"": imp.opset}).run(None, feeds)
    except Exception as exc:  # noqa: BLE001  (the reference raises whatever numpy raises on a bad model)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise node.error(f"evaluating its constant inputs at import failed: {type(exc).__name__}: {msg}") from None
    values = dict(zip(outs, results))
    out = []
    for o in node.outputs:
        v = np.asarray(values[o]) if o else None
        if v is not None:
            _check_bytes(imp, node, o, v.shape, v.nbytes)
        out.append(v)
    return out
