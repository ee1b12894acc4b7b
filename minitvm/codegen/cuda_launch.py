"""Launch plans' host side: grid and workspace sizes as :class:`~minitvm.runtime.cuda.DimExpr` trees
over shape variables."""
from __future__ import annotations

from .. import dtype as dt
from ..errors import CodegenError
from ..tir import expr as E
from ..tir.device import DeviceFunc


def workspace_sizes(f: DeviceFunc) -> tuple:
    """Bytes of each workspace of ``f``: an int, or a ``DimExpr`` over shape variables."""
    shape_vars = set(f.attrs.get("shape_vars", ()) or ())
    for b in f.params:
        for s in b.shape:
            if isinstance(s, E.Var):
                shape_vars.add(s)
    sizes = []
    for b in f.workspaces:
        nbytes = dt.numpy_dtype(b.dtype).itemsize * dt.lanes_of(b.dtype)
        size = E.const(1)
        for x in b.shape:
            size = size * x
        if isinstance(size, E.IntImm):
            sizes.append(int(size.value) * nbytes)
        else:
            sizes.append(dim_expr(size, shape_vars, f.name) * nbytes)
    return tuple(sizes)


def dim_expr(e, shape_vars, fname):
    """The launch plan's :class:`~minitvm.runtime.cuda.DimExpr` (over shape variable names) computing
    the integer ``e`` on the host."""
    from ..runtime.cuda import DimConst, DimOp, DimVar

    def go(x):
        if isinstance(x, E.IntImm):
            return DimConst(int(x.value))
        if isinstance(x, E.Var):
            if x not in shape_vars:
                raise CodegenError(
                    f"{fname}: a launch dimension or workspace size uses {x.name}, which is not a symbolic "
                    "dimension of the parameters; grid sizes may only depend on parameter shapes")
            return DimVar(x.name)
        if isinstance(x, (E.Min, E.Max)):
            return DimOp(x.symbol, (go(x.a), go(x.b)))
        ops = {E.Add: "+", E.Sub: "-", E.Mul: "*", E.FloorDiv: "//", E.FloorMod: "%"}
        if type(x) in ops:
            return DimOp(ops[type(x)], (go(x.a), go(x.b)))
        if isinstance(x, E.Cast) and dt.is_integer(x.dtype):
            return go(x.value)
        if isinstance(x, E.Select):
            return DimOp("select", (go(x.condition), go(x.true_value), go(x.false_value)))
        if isinstance(x, E.CmpOp) and not isinstance(x, (E.And, E.Or)):
            return DimOp(x.symbol, (go(x.a), go(x.b)))
        if isinstance(x, E.Call) and x.op == "likely":
            return go(x.args[0])
        raise CodegenError(f"{fname}: cannot evaluate the launch expression {e} on the host "
                           f"({type(x).__name__} is not supported there)")
    return go(e)
