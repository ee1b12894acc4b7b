"""Launch plans as plain data: what the CUDA runtime is told to launch, and their checks.

A backend describes each entry point with a :class:`LaunchPlan`: its :class:`KernelLaunch`es
(an ``extern "C" __global__`` kernel, its grid, block, dynamic shared memory and arguments), in
order, and the sizes of the global workspaces they share. Grid and workspace sizes are ints or
:class:`DimExpr` trees over the function's symbolic dimensions (:class:`DimConst`,
:class:`DimVar`, :class:`DimOp`; ``(DimVar("n") + 127) // 128`` builds one), evaluated per
argument shapes by :meth:`DimExpr.evaluate`. A kernel's arguments are :class:`ParamArg` (a
tensor parameter's pointer), :class:`WorkspaceArg` (a workspace's pointer) and :class:`DimArg`
(a symbolic dimension as int32). :func:`check_plans` validates plans at build time.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from ...errors import BuildError
from ..module import FunctionSignature

__all__ = ["KernelLaunch", "LaunchPlan", "DimExpr", "DimConst", "DimVar", "DimOp", "ParamArg", "WorkspaceArg",
           "DimArg", "DIM_OPS", "check_plans"]


def _select(cond, true_value, false_value):
    return true_value if cond else false_value


# operator -> (function, number of operands); integer arithmetic with Python's floor semantics
DIM_OPS = {
    "+": (operator.add, 2), "-": (operator.sub, 2), "*": (operator.mul, 2),
    "//": (operator.floordiv, 2), "%": (operator.mod, 2), "min": (min, 2), "max": (max, 2),
    "<": (operator.lt, 2), "<=": (operator.le, 2), "==": (operator.eq, 2), "!=": (operator.ne, 2),
    ">": (operator.gt, 2), ">=": (operator.ge, 2), "select": (_select, 3),
}
_INFIX = ("+", "-", "*", "//", "%", "<", "<=", "==", "!=", ">", ">=")


def _as_expr(value) -> "DimExpr":
    return value if isinstance(value, DimExpr) else DimConst(value)


class DimExpr:
    """An integer expression over a function's symbolic dimension names."""

    __slots__ = ()

    def evaluate(self, dims: dict) -> int:
        """The value for ``dims`` (dim name -> int)."""
        raise NotImplementedError

    def check(self, what: str, dims) -> None:
        """Raise :class:`~minitvm.errors.BuildError` (naming ``what``) for a malformed tree or a
        name that is not one of ``dims``."""
        names: list = []
        self._check_tree(what, names)
        unknown = [n for n in dict.fromkeys(names) if n not in dims]
        if unknown:
            raise BuildError(f"{what}: {self} uses {', '.join(unknown)}, which "
                             f"{'is not a symbolic dimension' if len(unknown) == 1 else 'are not symbolic dimensions'}"
                             f" of the function (it has: {', '.join(dims) or 'none'})")

    def _check_tree(self, what: str, names: list) -> None:
        """Check this node and its operands; append the dimension names used to ``names``."""
        raise NotImplementedError

    def __add__(self, other):
        return DimOp("+", (self, _as_expr(other)))

    def __radd__(self, other):
        return DimOp("+", (_as_expr(other), self))

    def __sub__(self, other):
        return DimOp("-", (self, _as_expr(other)))

    def __rsub__(self, other):
        return DimOp("-", (_as_expr(other), self))

    def __mul__(self, other):
        return DimOp("*", (self, _as_expr(other)))

    def __rmul__(self, other):
        return DimOp("*", (_as_expr(other), self))

    def __floordiv__(self, other):
        return DimOp("//", (self, _as_expr(other)))

    def __rfloordiv__(self, other):
        return DimOp("//", (_as_expr(other), self))

    def __mod__(self, other):
        return DimOp("%", (self, _as_expr(other)))

    def __rmod__(self, other):
        return DimOp("%", (_as_expr(other), self))


@dataclass(frozen=True)
class DimConst(DimExpr):
    """An integer constant."""

    value: int

    def evaluate(self, dims: dict) -> int:
        return self.value

    def _check_tree(self, what: str, names: list) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise BuildError(f"{what}: DimConst holds {self.value!r}, not an int")

    def __str__(self):
        return str(self.value)


@dataclass(frozen=True)
class DimVar(DimExpr):
    """A symbolic dimension of the function's parameters, by name."""

    name: str

    def evaluate(self, dims: dict) -> int:
        return dims[self.name]

    def _check_tree(self, what: str, names: list) -> None:
        if not isinstance(self.name, str):
            raise BuildError(f"{what}: DimVar holds {self.name!r}, not a dimension name")
        names.append(self.name)

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class DimOp(DimExpr):
    """``op`` (a key of :data:`DIM_OPS`) applied to ``args`` (DimExprs); comparisons give 0 or 1."""

    op: str
    args: tuple

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(_as_expr(a) for a in self.args))

    def evaluate(self, dims: dict) -> int:
        return int(DIM_OPS[self.op][0](*[a.evaluate(dims) for a in self.args]))

    def _check_tree(self, what: str, names: list) -> None:
        entry = DIM_OPS.get(self.op)
        if entry is None:
            raise BuildError(f"{what}: unknown operator {self.op!r} in {self}; known: {', '.join(DIM_OPS)}")
        if len(self.args) != entry[1]:
            raise BuildError(f"{what}: {self.op!r} takes {entry[1]} operands, got {len(self.args)} in {self}")
        for a in self.args:
            a._check_tree(what, names)

    def __str__(self):
        parts = [str(a) for a in self.args]
        if self.op in _INFIX and len(parts) == 2:
            return f"({parts[0]} {self.op} {parts[1]})"
        return f"{self.op}({', '.join(parts)})"


@dataclass(frozen=True)
class ParamArg:
    """Kernel argument: the device pointer of the function's ``index``-th tensor parameter."""

    index: int

    def __str__(self):
        return f"param:{self.index}"


@dataclass(frozen=True)
class WorkspaceArg:
    """Kernel argument: the device pointer of the plan's ``index``-th workspace."""

    index: int

    def __str__(self):
        return f"workspace:{self.index}"


@dataclass(frozen=True)
class DimArg:
    """Kernel argument: the value of symbolic dimension ``name``, passed as an int32."""

    name: str

    def __str__(self):
        return f"dim:{self.name}"


@dataclass(frozen=True)
class KernelLaunch:
    """One ``cuLaunchKernel`` of a plan.

    ``kernel``: the ``extern "C" __global__`` function's name. ``grid``: 3 entries, each an int or
    a :class:`DimExpr` over the function's symbolic dims, e.g. ``(DimVar("n") + 31) // 32``.
    ``block``: 3 ints. ``dynamic_shared_bytes``: dynamic shared memory per block (the opt-in limit
    is raised automatically above 48 KB). ``args``: the kernel's arguments in order, each a
    :class:`ParamArg`, :class:`WorkspaceArg` or :class:`DimArg`.
    """

    kernel: str
    grid: tuple
    block: tuple
    dynamic_shared_bytes: int = 0
    args: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "grid", tuple(self.grid))
        object.__setattr__(self, "block", tuple(self.block))
        object.__setattr__(self, "args", tuple(self.args))


@dataclass(frozen=True)
class LaunchPlan:
    """How to run one entry point: ``launches`` in order on one stream, and the byte sizes of the
    global scratch buffers (``workspaces``: ints or :class:`DimExpr`) they share."""

    launches: tuple
    workspaces: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "launches", tuple(self.launches))
        object.__setattr__(self, "workspaces", tuple(self.workspaces))


def _signature_dims(sig: FunctionSignature) -> list:
    dims = []
    for p in sig.params:
        for d in p.shape:
            if isinstance(d, str) and d not in dims:
                dims.append(d)
    for d in sig.shape_vars:
        if d not in dims:
            dims.append(d)
    return dims


def _check_size(value, what: str, dims: list):
    """A grid or workspace size: a non-negative int, or a DimExpr over ``dims`` (checked here)."""
    if isinstance(value, DimExpr):
        value.check(what, dims)
        return value
    try:
        v = operator.index(value)
    except TypeError:
        raise BuildError(f"{what}: expected an int or a DimExpr, got {value!r}") from None
    if v < 0:
        raise BuildError(f"{what}: must be non-negative, got {v}")
    return v


def check_plans(plans: dict, signatures: dict, source: str, max_threads: int) -> dict:
    """Validate one :class:`LaunchPlan` per signature; returns name -> (checked launches, workspaces).

    A checked launch is ``(KernelLaunch, grid, block, dynamic shared bytes, args)`` with grid
    and workspace entries ints or DimExprs. Raises BuildError naming the function, the launch
    and the entry at fault.
    """
    for name in plans:
        if name not in signatures:
            raise BuildError(f"launch plan for {name!r}, but the module has no function of that name "
                             f"(it has {sorted(signatures)})")
    checked = {}
    for name, sig in signatures.items():
        plan = plans.get(name)
        if plan is None:
            raise BuildError(f"function {name!r} has no launch plan")
        if not isinstance(plan, LaunchPlan):
            raise BuildError(f"the launch plan of {name!r} must be a LaunchPlan, got {type(plan).__name__}")
        dims = _signature_dims(sig)
        ws = tuple(_check_size(w, f"workspace {j} of {name}", dims) for j, w in enumerate(plan.workspaces))
        launches = tuple(_check_launch(k, L, name, sig, plan, dims, source, max_threads)
                         for k, L in enumerate(plan.launches))
        checked[name] = (launches, ws)
    return checked


def _check_launch(k, L, name, sig, plan, dims, source, max_threads) -> tuple:
    where = f"launch {k} (kernel {getattr(L, 'kernel', '?')}) of {name}"
    if not isinstance(L, KernelLaunch):
        raise BuildError(f"{where}: expected a KernelLaunch, got {type(L).__name__}")
    if not re.search(r"\b" + re.escape(L.kernel) + r"\s*\(", source):
        raise BuildError(f"{where}: the source defines no kernel named {L.kernel!r}")
    if len(L.grid) != 3 or len(L.block) != 3:
        raise BuildError(f"{where}: grid and block need 3 entries each, got grid={L.grid} block={L.block}")
    grid = tuple(_check_size(g, f"grid[{a}] of {where}", dims) for a, g in enumerate(L.grid))
    try:
        block = tuple(operator.index(b) for b in L.block)
    except TypeError:
        raise BuildError(f"{where}: block entries must be ints, got {L.block}") from None
    if min(block) < 1 or block[0] * block[1] * block[2] > max_threads:
        raise BuildError(f"{where}: block {block} is invalid (each entry >= 1, at most {max_threads} threads)")
    shmem = operator.index(L.dynamic_shared_bytes)
    if shmem < 0:
        raise BuildError(f"{where}: dynamic_shared_bytes must be non-negative, got {shmem}")
    for arg in L.args:
        if isinstance(arg, DimArg):
            if arg.name not in dims:
                raise BuildError(f"{where}: argument {arg} names no symbolic dimension of "
                                 f"{name} (it has: {', '.join(dims) or 'none'})")
            continue
        if not isinstance(arg, (ParamArg, WorkspaceArg)):
            raise BuildError(f"{where}: bad argument {arg!r}; expected ParamArg(i), WorkspaceArg(j) "
                             "or DimArg(name)")
        if isinstance(arg.index, bool) or not isinstance(arg.index, int) or arg.index < 0:
            raise BuildError(f"{where}: bad argument {arg!r}; the index must be a non-negative int")
        params = isinstance(arg, ParamArg)
        limit = len(sig.params) if params else len(plan.workspaces)
        if arg.index >= limit:
            raise BuildError(f"{where}: argument {arg} is out of range: {name} has {limit} "
                             f"{'tensor parameters' if params else 'workspaces'}")
    return (L, grid, block, shmem, L.args)


def shared_bytes_per_kernel(checked: dict) -> dict:
    """Kernel name -> the most dynamic shared memory any launch of it asks for."""
    need: dict = {}
    for launches, _ in checked.values():
        for L, _g, _b, shmem, _a in launches:
            need[L.kernel] = max(need.get(L.kernel, 0), shmem)
    return need
