"""Tensors and the operations that produce them: ``placeholder`` and ``compute``."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from . import dtype as dt
from .errors import DtypeError, ShapeError
from .tir import expr as E
from .tir.functor import Visitor
from .tir.limits import check_tree, deep_recursion


class Tensor:
    """The ``value_index``-th output of operation ``op``: a shape, a dtype and a name.

    Calling or indexing a tensor reads it: ``A[i, j]`` or ``A(i, j)``.
    """

    __slots__ = ("op", "value_index")

    def __init__(self, op: "Operation", value_index: int = 0):
        self.op = op
        self.value_index = value_index

    @property
    def shape(self) -> tuple:
        return self.op.shape

    @property
    def dtype(self) -> str:
        return self.op.dtypes[self.value_index]

    @property
    def name(self) -> str:
        return self.op.name if self.op.num_outputs == 1 else f"{self.op.name}.v{self.value_index}"

    @property
    def ndim(self) -> int:
        return len(self.op.shape)

    def __call__(self, *indices) -> E.ProducerLoad:
        if len(indices) == 1 and isinstance(indices[0], (tuple, list)):
            indices = tuple(indices[0])
        if len(indices) != self.ndim:
            raise ShapeError(
                f"tensor {self.name} has {self.ndim} dimensions {tuple(str(s) for s in self.shape)}, "
                f"but was indexed with {len(indices)} indices")
        idx = []
        for axis, i in enumerate(indices):
            i = E.convert(i)
            if not dt.is_integer(i.dtype):
                raise DtypeError(f"index {i} of tensor {self.name} (axis {axis}) must be an integer, got {i.dtype}")
            if i.dtype != "int32" and dt.lanes_of(i.dtype) == 1:
                i = i.astype("int32")
            idx.append(i)
        return E.ProducerLoad(self, tuple(idx))

    def __getitem__(self, indices):
        if not isinstance(indices, tuple):
            indices = (indices,)
        return self(*indices)

    def __hash__(self):
        return hash((id(self.op), self.value_index))

    def __eq__(self, other):
        return isinstance(other, Tensor) and other.op is self.op and other.value_index == self.value_index

    def __bool__(self):
        return True

    def __repr__(self):
        return f"Tensor({self.name}, shape={tuple(str(s) for s in self.shape)}, dtype={self.dtype})"


class Operation:
    """Base of tensor-producing operations."""

    name: str
    tag: str = ""
    attrs: dict
    shape: tuple
    dtypes: tuple

    @property
    def num_outputs(self) -> int:
        return len(self.dtypes)

    def output(self, i: int = 0) -> Tensor:
        """The ``i``-th output tensor."""
        return Tensor(self, i)

    @property
    def input_tensors(self) -> list:
        return []

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class PlaceholderOp(Operation):
    """An input tensor supplied by the caller."""

    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtypes = name, shape, (dtype,)
        self.tag, self.attrs = "", {}


class ComputeOp(Operation):
    """``out[axis] = body`` for every point of ``axis``; ``body`` may be a single reduction."""

    def __init__(self, name, tag, attrs, axis, body):
        self.name, self.tag, self.attrs = name, tag, dict(attrs or {})
        self.axis = tuple(axis)
        self.body = tuple(body)
        self.shape = tuple(iv.dom.extent for iv in self.axis)
        self.dtypes = tuple(b.dtype for b in self.body)
        first = self.body[0]
        self.reduce_axis = tuple(first.axis) if isinstance(first, E.Reduce) else ()

    @property
    def input_tensors(self) -> list:
        return tensors_read(self.body)


def tensors_read(exprs) -> list:
    """Distinct tensors read by ``exprs``, in order of first appearance."""
    found: dict = {}

    class _V(Visitor):
        def visit_ProducerLoad(self, node):
            found.setdefault(Tensor(node.producer.op, node.producer.value_index), None)
            self.generic_visit(node)

    v = _V()
    for e in exprs:
        v.visit(e)
    return list(found)


def _shape(shape, what: str) -> tuple:
    if isinstance(shape, (int, E.PrimExpr)):
        shape = (shape,)
    out = []
    for axis, s in enumerate(shape):
        s = E.convert(s)
        if not dt.is_integer(s.dtype):
            raise ShapeError(f"{what}: dimension {axis} of the shape must be an integer, got {s} ({s.dtype})")
        if isinstance(s, E.IntImm) and s.value <= 0:
            raise ShapeError(f"{what}: dimension {axis} of the shape must be positive, got {s.value}")
        out.append(s)
    return tuple(out)


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of ``shape`` (ints or symbolic ``te.var``/``te.size_var``) and ``dtype``."""
    dtype = dt.canonical(dtype)
    return PlaceholderOp(name, _shape(shape, f"placeholder {name}"), dtype).output(0)


@deep_recursion("te.compute")
def compute(shape, fcompute, name: str = "compute", tag: str = "", attrs=None):
    """A tensor whose element at each index of ``shape`` is ``fcompute(*indices)``.

    ``fcompute`` may return a tuple for several outputs of the same shape; a reduction
    (``te.sum`` ...) must be the whole body, not part of a larger expression.
    """
    shape = _shape(shape, f"compute {name}")
    try:
        params = list(inspect.signature(fcompute).parameters.values())
    except (TypeError, ValueError):
        params = []
    fixed = [p.name for p in params if p.kind != inspect.Parameter.VAR_POSITIONAL]
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        if len(fixed) > len(shape):
            raise ShapeError(f"compute {name}: the function takes at least {len(fixed)} indices {fixed} but the "
                             f"shape has {len(shape)} dimensions")
        names = fixed + [f"i{k}" for k in range(len(fixed), len(shape))]
    else:
        names = [p.name for p in params]
        if len(names) != len(shape):
            raise ShapeError(
                f"compute {name}: the function takes {len(names)} indices {names} but the shape "
                f"has {len(shape)} dimensions")
    axis = tuple(E.IterVar(E.Range(E.const(0), s), E.Var(n), E.DATA_PAR) for n, s in zip(names, shape))
    body = fcompute(*[iv.var for iv in axis])
    body = tuple(body) if isinstance(body, (tuple, list)) else (body,)
    body = tuple(E.convert(b) for b in body)
    for b in body:
        check_tree(b, f"compute {name}")
        _check_reduce_placement(b, name)
    reduces = [b for b in body if isinstance(b, E.Reduce)]
    if reduces and len(reduces) != len(body):
        raise ShapeError(f"compute {name}: either every output or none must be a reduction")
    for b in body:
        _check_static_bounds(b, axis, name)
    op = ComputeOp(name, tag, attrs, axis, body)
    outs = tuple(op.output(i) for i in range(len(body)))
    return outs[0] if len(outs) == 1 else outs


def _affine(e) -> bool:
    """Sums and constant multiples of variables: interval bounds of these are exact."""
    if isinstance(e, (E.Var, E.IntImm)):
        return True
    if isinstance(e, (E.Add, E.Sub)):
        return _affine(e.a) and _affine(e.b)
    if isinstance(e, E.Mul):
        return (_affine(e.a) and isinstance(e.b, E.IntImm)) or (isinstance(e.a, E.IntImm) and _affine(e.b))
    return False


def _check_static_bounds(body, axis, name):
    """Refuse a read that bound analysis proves out of its tensor: one whose every index lies
    outside an axis, or an unconditional affine one that leaves it for some iteration (reads
    under a ``select`` / ``if_then_else`` or a reduction's ``where`` may rely on the condition)."""
    from .tir.arith import Analyzer
    analyzer = Analyzer()
    def span(iv):
        return iv.dom.min, E.Sub(E.Add(iv.dom.min, iv.dom.extent), E.const(1))

    dom = {iv.var: span(iv) for iv in axis}

    class _V(Visitor):
        conditional = 0

        def visit_Reduce(self, node):
            for iv in node.axis:
                dom[iv.var] = span(iv)
            guarded = not (isinstance(node.condition, E.IntImm) and node.condition.value)
            self.conditional += guarded
            self.generic_visit(node)
            self.conditional -= guarded

        def visit_Select(self, node):
            self.visit(node.condition)
            self.conditional += 1
            self.visit(node.true_value)
            self.visit(node.false_value)
            self.conditional -= 1

        def visit_Call(self, node):
            if node.op != "if_then_else":
                return self.generic_visit(node)
            self.visit(node.args[0])
            self.conditional += 1
            for a in node.args[1:]:
                self.visit(a)
            self.conditional -= 1

        def visit_ProducerLoad(self, node):
            for k, (idx, n) in enumerate(zip(node.indices, node.producer.shape)):
                if not isinstance(n, E.IntImm):
                    continue
                idx = analyzer.simplify(idx)
                bounds = analyzer.interval(idx, dom)
                if bounds is None or not all(isinstance(b, E.IntImm) for b in bounds):
                    continue
                lo, hi = bounds[0].value, bounds[1].value
                always = hi < 0 or lo >= n.value
                if always or (not self.conditional and _affine(idx) and (lo < 0 or hi >= n.value)):
                    shape = [int(d.value) if isinstance(d, E.IntImm) else d for d in node.producer.shape]
                    raise ShapeError(f"compute {name}: index {idx} of {node.producer.name} on axis {k} takes values "
                                     f"in [{lo}, {hi}], outside [0, {n.value - 1}] (shape {shape})"
                                     + ("" if always else " for some iterations"))
            self.generic_visit(node)

    _V().visit(body)


def _check_reduce_placement(body, name):
    class _V(Visitor):
        depth = 0

        def visit_Reduce(self, node):
            if node is not body:
                raise ShapeError(
                    f"compute {name}: a reduction must be the whole body (found it inside {body}); "
                    "compute the reduction as its own tensor and combine it in a second compute")
            self.generic_visit(node)

    _V().visit(body)


@dataclass(frozen=True, eq=False)
class CommReducer:
    """A commutative reducer: ``combine(lhs, rhs)`` and its ``identity(dtype)``."""

    name: str
    lhs: E.Var
    rhs: E.Var
    fcombine: object
    fidentity: object

    def combine(self, a, b):
        return self.fcombine(a, b)

    def identity(self, dtype):
        return E.const(self.fidentity(dtype), dtype) if not isinstance(self.fidentity(dtype), E.PrimExpr) \
            else self.fidentity(dtype)

    def __call__(self, expr, axis, where=None):
        """Reduce ``expr`` over ``axis`` (a reduce_axis or a list of them) where ``where`` holds.

        Called with two expressions instead (``te.max(a, b)``), it combines them element-wise.
        """
        if isinstance(axis, (E.PrimExpr, int, float)) and not isinstance(axis, E.IterVar):
            return self.fcombine(expr, axis)
        expr = E.convert(expr)
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        for k, a in enumerate(axes):
            if not isinstance(a, E.IterVar) or a.iter_type != E.REDUCE:
                raise ShapeError(f"{self.name}: axis {a} is not a te.reduce_axis")
            if any(a is b for b in axes[:k]):
                raise ShapeError(f"{self.name}: reduce axis {a.var.name} is given twice in axis=; "
                                 "each reduce_axis runs once (make a second te.reduce_axis for a second loop)")
        if self.name == "sum" and dt.is_integer(expr.dtype) and dt.bits(expr.dtype) < 32:
            raise DtypeError(
                f"te.sum over {expr.dtype} values would accumulate in {expr.dtype} and overflow; "
                f"widen first, e.g. te.sum(a.astype('int32') * b.astype('int32'), axis=...)")
        cond = E.const(True) if where is None else E.convert(where)
        if not dt.is_bool(cond.dtype):
            raise DtypeError(f"{self.name}: where= must be a bool condition, got {cond.dtype}")
        return E.Reduce(self, (expr,), axes, cond, 0)


def comm_reducer(fcombine, fidentity, name: str = "reduce") -> CommReducer:
    """Declare a reducer from ``fcombine(x, y)`` and ``fidentity(dtype) -> value``."""
    return CommReducer(name, E.Var("x"), E.Var("y"), fcombine, fidentity)


def _min_value(dtype):
    lo, _ = dt.value_range(dtype)
    return float("-inf") if dt.is_float(dtype) else lo


def _max_value(dtype):
    _, hi = dt.value_range(dtype)
    return float("inf") if dt.is_float(dtype) else hi


sum = comm_reducer(lambda x, y: x + y, lambda t: 0, "sum")  # noqa: A001
max = comm_reducer(E.make_max, _min_value, "max")  # noqa: A001
min = comm_reducer(E.make_min, _max_value, "min")  # noqa: A001


def reduce_axis(dom, name: str = "rv") -> E.IterVar:
    """A reduction axis over ``dom = (lo, hi)`` (or ``hi`` alone for ``(0, hi)``)."""
    if isinstance(dom, (tuple, list)):
        if len(dom) != 2:
            raise ShapeError(f"reduce_axis {name}: dom must be (lo, hi), got {dom}")
        lo, hi = E.convert(dom[0]), E.convert(dom[1])
    elif isinstance(dom, E.Range):
        lo, hi = dom.min, dom.min + dom.extent
    else:
        lo, hi = E.const(0), E.convert(dom)
    extent = hi - lo
    if isinstance(extent, E.IntImm) and extent.value <= 0:
        raise ShapeError(f"reduce_axis {name}: empty range [{lo}, {hi})")
    return E.IterVar(E.Range(lo, extent), E.Var(name), E.REDUCE)
