"""The runtime signature of a lowered function: parameter shapes, dtypes, symbolic dims."""
from __future__ import annotations

from .. import dtype as dt
from ..errors import CodegenError
from ..runtime.module import FunctionSignature, ParamSpec
from ..tir import expr as E
from ..tir.functor import collect_vars
from ..tir.stmt import Buffer, PrimFunc

_PY_OPS = {E.Add: "+", E.Sub: "-", E.Mul: "*", E.FloorDiv: "//", E.FloorMod: "%"}


def python_expr(e, what: str) -> str:
    """``e`` (integer arithmetic over shape variables) as Python source."""
    if isinstance(e, E.IntImm):
        return str(e.value)
    if isinstance(e, E.Var):
        return e.name
    if type(e) in _PY_OPS:
        return f"({python_expr(e.a, what)} {_PY_OPS[type(e)]} {python_expr(e.b, what)})"
    if isinstance(e, (E.Min, E.Max)):
        return f"{'min' if isinstance(e, E.Min) else 'max'}({python_expr(e.a, what)}, {python_expr(e.b, what)})"
    raise CodegenError(f"{what}: the extent {e} cannot be evaluated from shape variables")


def signature_of(f: PrimFunc, backend: str):
    """(FunctionSignature, shape variables in argument order) of a lowered function.

    A dimension is an int, the name of a shape variable, or (for a computed extent such as
    ``n - 2``) a Python expression over shape variables that other dimensions bind.
    """
    shape_vars = list(f.attrs.get("shape_vars", ()) or ())
    specs = []
    for b in f.params:
        if not isinstance(b, Buffer):
            raise CodegenError(f"{backend} codegen: {f.name}: parameter {b!r} is not a Buffer")
        shape = []
        for axis, s in enumerate(b.shape):
            if isinstance(s, E.IntImm):
                shape.append(int(s.value))
                continue
            for v in sorted(collect_vars(s), key=lambda v: v.name):
                if v not in shape_vars:
                    shape_vars.append(v)
            shape.append(s.name if isinstance(s, E.Var) else
                         python_expr(s, f"{backend} codegen: {f.name}: parameter {b.name} axis {axis}"))
        specs.append(ParamSpec(b.name, tuple(shape), dt.element_of(b.dtype)))
    for v in shape_vars:
        if not dt.is_integer(v.dtype):
            raise CodegenError(f"{backend} codegen: {f.name}: shape variable {v.name} has dtype {v.dtype}")
    names = [v.name for v in shape_vars]
    if len(set(names)) != len(names):
        raise CodegenError(f"{backend} codegen: {f.name}: two different shape variables share a name in {names}")
    return FunctionSignature(f.name, tuple(specs), tuple(names)), shape_vars
