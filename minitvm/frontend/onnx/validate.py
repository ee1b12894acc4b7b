"""Checks a model passes before import, refusing what onnxruntime refuses: a default-domain
opset outside the range the importer supports (per node: an op whose version at the model's
opset predates opset 7, where ONNX took numpy broadcasting), a value written twice (two nodes
writing one output, a node overwriting an input or initializer), then ``onnx.checker``'s full
check (with strict shape inference, which finds an axis out of range and the like). Each is a
``GraphError`` naming the node (and the attribute where the checker names one)."""
from __future__ import annotations

from ...errors import GraphError

__all__ = ["MIN_OPSET", "check_model"]

#: the oldest default-domain opset whose ops the importer implements as versioned there
MIN_OPSET = 7


def _node_name(proto) -> str:
    return proto.name or (proto.output[0] if proto.output else "?")


def _check_opset(model, opset):
    import onnx
    newest = onnx.defs.onnx_opset_version()
    for proto in model.graph.node:
        if proto.domain not in ("", "ai.onnx"):
            continue
        what = f"ONNX node {_node_name(proto)!r} ({proto.op_type})"
        if opset > newest:
            raise GraphError(f"{what}: the model's default-domain (ai.onnx) opset {opset} is newer than the newest "
                             f"ONNX opset known ({newest}, onnx {onnx.__version__}); supported: {MIN_OPSET} to "
                             f"{newest}")
        try:
            here = onnx.defs.get_schema(proto.op_type, opset).since_version
        except onnx.defs.SchemaError:
            raise GraphError(f"{what}: no version of {proto.op_type} exists at the model's opset {opset} "
                             f"(supported opsets: {MIN_OPSET} to {newest})") from None
        if opset < MIN_OPSET:
            try:
                ref = onnx.defs.get_schema(proto.op_type, MIN_OPSET).since_version
            except onnx.defs.SchemaError:
                ref = None
            if ref != here:
                raise GraphError(f"{what}: {proto.op_type}-{here} (the model's opset {opset}) predates the versions "
                                 f"the importer implements (opsets {MIN_OPSET} to {newest})")


def _check_single_assignment(model):
    gp = model.graph
    writer = {i.name: "a graph input" for i in gp.input}
    writer.update({t.name: "an initializer" for t in gp.initializer})
    for proto in gp.node:
        this = f"ONNX node {_node_name(proto)!r} ({proto.op_type})"
        for o in proto.output:
            if not o:
                continue
            if o in writer:
                raise GraphError(f"{this}: output {o!r} is already written by {writer[o]}; an ONNX value has one "
                                 "writer")
            writer[o] = f"node {_node_name(proto)!r} ({proto.op_type})"


def _untyped(o) -> bool:
    return not o.HasField("type") or (o.type.HasField("tensor_type") and (
        not o.type.tensor_type.HasField("shape") or not o.type.tensor_type.elem_type))


def _run_checker(model):
    """``onnx.checker``'s full check. Graph outputs declared without a type or shape (which
    onnxruntime accepts) are given the inferred one first, on a copy; one that inference cannot
    type either (an op of another domain) is left out of the check."""
    import onnx
    try:
        if any(_untyped(o) for o in model.graph.output):
            model = _typed_outputs(model)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GraphError(f"from_onnx: the model is not valid ONNX: {_explain(model, str(exc))}") from None
    except ValueError as exc:   # a model over protobuf's 2 GB cannot be checked in memory
        if "2GB" not in str(exc) and "2 GB" not in str(exc):
            raise GraphError(f"from_onnx: the model is not valid ONNX: {exc}") from None


def _typed_outputs(model):
    """A copy of ``model`` whose graph outputs all have a type and shape: the inferred one, else
    (an op shape inference does not know) the output is left out of the copy."""
    import onnx
    m = onnx.ModelProto()
    m.CopyFrom(model)
    untyped = [o.name for o in m.graph.output if _untyped(o)]
    kept = [o for o in m.graph.output if not _untyped(o)]
    del m.graph.output[:]
    m.graph.output.extend(kept)
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(m).graph.value_info}
    for name in untyped:
        if name in inferred and not _untyped(inferred[name]):
            m.graph.output.add().CopyFrom(inferred[name])
    return m


def _explain(model, text) -> str:
    """The checker's message, led by the node (and the attribute) it is about where it names one."""
    import re
    from onnx import helper
    msg = " ".join(ln.strip() for ln in text.strip().splitlines() if ln.strip())
    m = re.search(r"\(op_type:(\w+), node name: ([^)]*)\): (.*)", msg)
    if not m:
        return msg[:600]
    op, name, rest = m.group(1), m.group(2), m.group(3)
    rest = re.sub(r"^(\[\w+\] )+", "", rest)
    where = f"ONNX node {name!r} ({op})"
    node = next((n for n in model.graph.node if _node_name(n) == name and n.op_type == op), None)
    low = rest.lower()
    named = [(f"attribute {a.name!r}", helper.get_attribute_value(a)) for a in (node.attribute if node is not None else ())]
    if node is not None:
        import onnx
        from onnx import numpy_helper
        inits = {t.name: t for t in model.graph.initializer}
        try:
            formal = [i.name for i in onnx.defs.get_schema(op, _opset(model), node.domain).inputs]
        except onnx.defs.SchemaError:
            formal = []
        for f, actual in zip(formal, node.input):
            value = numpy_helper.to_array(inits[actual]).tolist() if actual in inits else f"{actual!r}"
            named.append((f"input {f!r}", value))
    for label, value in named:
        word = label.split("'")[1]
        stem = word[:-2] if word.endswith("es") else word.rstrip("s")
        if re.search(rf"\b{re.escape(stem)}", low):
            where += f": {label} = {value}"
            break
    return f"{where}: {rest}"[:600]


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def check_model(model, opset) -> None:
    """Refuse ``model`` (default-domain ``opset``) with a ``GraphError`` naming what is wrong."""
    _check_opset(model, opset)
    _check_single_assignment(model)
    _run_checker(model)
