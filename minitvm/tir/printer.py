"""Readable text for expressions, statements and functions, in the style of TVM's printer."""
from __future__ import annotations

from .limits import deep_recursion


def _isa(node, *names) -> bool:
    """Is ``node`` an instance of an IR class called one of ``names``? (The printer sits below the
    node modules, which print themselves through it, so it knows the classes by name.)"""
    return any(c.__name__ in names for c in type(node).__mro__)


@deep_recursion("printing an expression")
def expr_str(e) -> str:
    """Text of an expression: ``((i*1024) + j)``."""
    return _expr(e)


def _expr(e) -> str:
    if _isa(e, "Var"):
        return e.name
    if _isa(e, "IntImm"):
        if e.dtype == "int32":
            return str(e.value)
        if e.dtype == "bool":
            return "True" if e.value else "False"
        return f"{e.value}{_suffix(e.dtype)}"
    if _isa(e, "FloatImm"):
        return f"{e.value!r}f" if e.dtype == "float32" else f"{e.value!r}{_suffix(e.dtype)}"
    if _isa(e, "StringImm"):
        return repr(e.value)
    if _isa(e, "Min", "Max"):
        return f"{e.symbol}({_expr(e.a)}, {_expr(e.b)})"
    if _isa(e, "BinaryOp"):
        return f"({_expr(e.a)} {e.symbol} {_expr(e.b)})"
    if _isa(e, "Not"):
        return f"!{_expr(e.a)}"
    if _isa(e, "Select"):
        return f"select({_expr(e.condition)}, {_expr(e.true_value)}, {_expr(e.false_value)})"
    if _isa(e, "Cast"):
        return f"{e.dtype}({_expr(e.value)})"
    if _isa(e, "Call"):
        return f"{e.op}({', '.join([_expr(a) for a in e.args])})"
    if _isa(e, "Ramp"):
        return f"ramp({_expr(e.base)}, {_expr(e.stride)}, {e.lanes})"
    if _isa(e, "Broadcast"):
        return f"broadcast({_expr(e.value)}, {e.lanes})"
    if _isa(e, "Let"):
        return f"(let {e.var.name} = {_expr(e.value)} in {_expr(e.body)})"
    if _isa(e, "BufferLoad"):
        return f"{e.buffer.name}[{', '.join([_expr(i) for i in e.indices])}]"
    if _isa(e, "ProducerLoad"):
        return f"{e.producer.name}[{', '.join([_expr(i) for i in e.indices])}]"
    if _isa(e, "Reduce"):
        axes = ", ".join(f"{iv.var.name}" for iv in e.axis)
        src = ", ".join([_expr(s) for s in e.source])
        always = _isa(e.condition, "IntImm") and e.condition.value == 1
        where = "" if always else f", where={_expr(e.condition)}"
        return f"reduce({e.combiner.name}, {src}, axis=[{axes}]{where})"
    return object.__repr__(e)


def _suffix(dtype: str) -> str:
    return {"int64": "i64", "int8": "i8", "int16": "i16", "uint8": "u8", "uint32": "u32",
            "float16": "f16", "float64": "f64"}.get(dtype, f"_{dtype}")


@deep_recursion("printing a statement")
def stmt_str(s, indent: int = 0) -> str:
    """Text of a statement tree, two spaces per nesting level."""
    lines: list[str] = []
    _stmt(s, indent, lines)
    return "\n".join(lines)


def _stmt(s, ind, out):
    pad = "  " * ind
    if _isa(s, "SeqStmt"):
        for x in s.seq:
            _stmt(x, ind, out)
    elif _isa(s, "For"):
        kind = "" if s.kind == "serial" else f"{s.kind} "
        out.append(f"{pad}{kind}for ({s.loop_var.name}, {_expr(s.min)}, {_expr(s.extent)}) {{")
        _stmt(s.body, ind + 1, out)
        out.append(pad + "}")
    elif _isa(s, "AttrStmt"):
        node = s.node
        if _isa(node, "IterVar"):
            node = f"iter_var({node.var.name}, {node.thread_tag or node.iter_type})"
        out.append(f"{pad}// attr [{node}] {s.attr_key} = {_expr(s.value)}")
        _stmt(s.body, ind, out)
    elif _isa(s, "Allocate"):
        b = s.buffer
        shape = "*".join([_expr(x) for x in b.shape])
        out.append(f"{pad}allocate {b.name}[{b.dtype} * {shape}], storage_scope = {b.scope}")
        _stmt(s.body, ind, out)
    elif _isa(s, "BufferStore"):
        out.append(f"{pad}{s.buffer.name}[{', '.join([_expr(i) for i in s.indices])}] = {_expr(s.value)}")
    elif _isa(s, "ProducerStore"):
        out.append(f"{pad}{s.producer.name}[{', '.join([_expr(i) for i in s.indices])}] = {_expr(s.value)}")
    elif _isa(s, "ProducerRealize"):
        bounds = ", ".join([f"[{_expr(r.min)}, {_expr(r.extent)}]" for r in s.bounds])
        out.append(f"{pad}realize {s.producer.name}({bounds}) in scope {s.scope} {{")
        _stmt(s.body, ind + 1, out)
        out.append(pad + "}")
    elif _isa(s, "IfThenElse"):
        out.append(f"{pad}if ({_expr(s.condition)}) {{")
        _stmt(s.then_case, ind + 1, out)
        if s.else_case is not None:
            out.append(pad + "} else {")
            _stmt(s.else_case, ind + 1, out)
        out.append(pad + "}")
    elif _isa(s, "Evaluate"):
        out.append(pad + _expr(s.value))
    elif _isa(s, "LetStmt"):
        out.append(f"{pad}{s.var.name} = {_expr(s.value)}")
        _stmt(s.body, ind, out)
    else:
        out.append(pad + object.__repr__(s))


def func_str(f) -> str:
    """Text of a PrimFunc: signature, then the body (the body alone in simple mode)."""
    if f.attrs.get("simple_mode"):
        return stmt_str(f.body)
    params = ", ".join(
        f"{b.name}: Buffer({b.dtype}, [{', '.join(expr_str(x) for x in b.shape)}])" for b in f.params)
    return f"primfn {f.name}({params}) {{\n{stmt_str(f.body, 1)}\n}}"


def kernel_str(k, indent: int = 0) -> str:
    """Text of a :class:`~minitvm.tir.device.DeviceKernel`: launch dimensions, parameters, body."""
    pad = "  " * indent
    grid = ", ".join(str(g) if isinstance(g, int) else expr_str(g) for g in k.grid)
    block = ", ".join(str(b) for b in k.block)
    shared = ""
    if k.shared is not None and k.shared.dynamic_bytes:
        shared = f", dynamic_shared = {k.shared.dynamic_bytes}"
    uses = [f"param {i}" for i in k.params] + [f"workspace {j}" for j in k.workspaces]
    uses += [v.name for v in k.shape_vars]
    head = f"{pad}kernel {k.name}[grid = ({grid}), block = ({block}){shared}]({', '.join(uses)}) {{"
    return f"{head}\n{stmt_str(k.body, indent + 1)}\n{pad}}}"


def device_func_str(f) -> str:
    """Text of a :class:`~minitvm.tir.device.DeviceFunc`: signature, workspaces, then each kernel."""
    params = ", ".join(
        f"{b.name}: Buffer({b.dtype}, [{', '.join(expr_str(x) for x in b.shape)}])" for b in f.params)
    lines = [f"device_func {f.name}({params}) {{"]
    for j, b in enumerate(f.workspaces):
        shape = "*".join(expr_str(x) for x in b.shape)
        lines.append(f"  workspace {j}: {b.name}[{b.dtype} * {shape}]")
    lines += [kernel_str(k, 1) for k in f.kernels]
    lines.append("}")
    return "\n".join(lines)
