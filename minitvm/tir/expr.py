"""Expression nodes shared by the tensor-expression language and the loop IR.

Every node is a small frozen dataclass compared by identity (``is``); structural comparison
is :func:`minitvm.tir.functor.structural_equal`. Python operators build nodes and enforce the
dtype rules of :mod:`minitvm.dtype`. ``a == b`` builds an :class:`EQ` node whose truth value
is identity, so expressions can still be used as dict keys and in ``in`` tests.

Each class lists its child fields in ``_children``; the generic visitors in
:mod:`minitvm.tir.functor` walk exactly those.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import dtype as dt
from ..errors import ArgumentError, DtypeError
from .printer import expr_str


class PrimExpr:
    """Base class of scalar/vector expressions. Subclasses are frozen dataclasses."""

    __slots__ = ()
    _children: tuple = ()
    __hash__ = object.__hash__

    # arithmetic -----------------------------------------------------------------------
    def __add__(self, other):
        return _binary(Add, self, other)

    def __radd__(self, other):
        return _binary(Add, other, self)

    def __sub__(self, other):
        return _binary(Sub, self, other)

    def __rsub__(self, other):
        return _binary(Sub, other, self)

    def __mul__(self, other):
        return _binary(Mul, self, other)

    def __rmul__(self, other):
        return _binary(Mul, other, self)

    def __truediv__(self, other):
        return _binary(Div, self, other)

    def __rtruediv__(self, other):
        return _binary(Div, other, self)

    def __floordiv__(self, other):
        return _binary(FloorDiv, self, other)

    def __rfloordiv__(self, other):
        return _binary(FloorDiv, other, self)

    def __mod__(self, other):
        return _binary(FloorMod, self, other)

    def __rmod__(self, other):
        return _binary(FloorMod, other, self)

    def __neg__(self):
        return _binary(Sub, const(0, self.dtype), self)

    # comparison -----------------------------------------------------------------------
    def __lt__(self, other):
        return _binary(LT, self, other)

    def __le__(self, other):
        return _binary(LE, self, other)

    def __gt__(self, other):
        return _binary(GT, self, other)

    def __ge__(self, other):
        return _binary(GE, self, other)

    def __eq__(self, other):
        return _binary(EQ, self, other)

    def __ne__(self, other):
        return _binary(NE, self, other)

    # logic on bool expressions ----------------------------------------------------------
    def __and__(self, other):
        return _binary(And, self, other)

    def __rand__(self, other):
        return _binary(And, other, self)

    def __or__(self, other):
        return _binary(Or, self, other)

    def __ror__(self, other):
        return _binary(Or, other, self)

    def __invert__(self):
        if not dt.is_bool(self.dtype):
            raise DtypeError(f"~ needs a bool expression, got {self.dtype}: {self}")
        return Not(self)

    def __bool__(self):
        raise DtypeError(
            f"the symbolic expression {self} has no Python truth value; "
            "use te.if_then_else / te.all / te.any, or & and | between conditions")

    def astype(self, dtype: str) -> "PrimExpr":
        """Convert to ``dtype`` (a no-op if it already has it)."""
        dtype = dt.canonical(dtype)
        if dtype == self.dtype:
            return self
        if isinstance(self, IntImm) and dt.is_integer(dtype):
            return IntImm(dtype, dt.wrap_int(self.value, dtype))
        if isinstance(self, (IntImm, FloatImm)) and dt.is_float(dtype):
            return FloatImm(dtype, float(self.value))
        return Cast(dtype, self)

    def __str__(self):
        return expr_str(self)

    def __repr__(self):
        return f"{type(self).__name__}({self})"


def _frozen(cls):
    return dataclass(frozen=True, eq=False, repr=False)(cls)


class _DerivedDtype:
    """The ``dtype`` of a node that takes it from one child (``a + b`` has ``a``'s dtype).

    Computed once per node and kept in the node's ``__dict__``; an uncached chain of such
    nodes (a 10,000-term sum built by a pass) is walked with a loop, not by recursion, so a
    deep expression costs neither Python stack nor quadratic time.
    """

    def __init__(self, child, transform=None):
        self.child = child          # node -> the child whose dtype this node derives from
        self.transform = transform  # (node, child dtype) -> this node's dtype; None: the same

    def __get__(self, node, owner=None):
        if node is None:
            return self
        cached = node.__dict__.get("_dtype")
        if cached is not None:
            return cached
        chain = [node]
        child = self.child(node)
        while True:
            desc = getattr(type(child), "dtype", None)
            if not isinstance(desc, _DerivedDtype) or "_dtype" in child.__dict__:
                break
            chain.append(child)
            child = desc.child(child)
        dtype = child.dtype
        for n in reversed(chain):
            desc = type(n).dtype
            if desc.transform is not None:
                dtype = desc.transform(n, dtype)
            n.__dict__["_dtype"] = dtype
        return dtype


# ----------------------------------------------------------------------------------------
# leaves
# ----------------------------------------------------------------------------------------
@_frozen
class Var(PrimExpr):
    """A scalar variable: loop counters, symbolic shape dimensions, buffer handles."""

    name: str
    dtype: str = "int32"


@_frozen
class SizeVar(Var):
    """A variable known to be non-negative (a symbolic shape dimension)."""


@_frozen
class IntImm(PrimExpr):
    """An integer (or bool) constant."""

    dtype: str
    value: int

    def __post_init__(self):
        if dt.is_float(self.dtype):
            raise DtypeError(f"IntImm cannot have float dtype {self.dtype}")
        lo, hi = dt.value_range(self.dtype)
        if not lo <= self.value <= hi:
            raise DtypeError(f"constant {self.value} does not fit in {self.dtype} [{lo}, {hi}]")


@_frozen
class FloatImm(PrimExpr):
    """A floating-point constant."""

    dtype: str
    value: float


@_frozen
class StringImm(PrimExpr):
    """A string argument of an intrinsic call."""

    value: str
    dtype: str = "handle"


# ----------------------------------------------------------------------------------------
# operators
# ----------------------------------------------------------------------------------------
class BinaryOp(PrimExpr):
    """Base of two-operand nodes; ``dtype`` is the operands' dtype."""

    __slots__ = ()
    _children = ("a", "b")
    symbol = "?"
    dtype = _DerivedDtype(lambda n: n.a)


@_frozen
class Add(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "+"


@_frozen
class Sub(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "-"


@_frozen
class Mul(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "*"


@_frozen
class Div(BinaryOp):
    """True division (float only)."""

    a: PrimExpr
    b: PrimExpr
    symbol = "/"


@_frozen
class FloorDiv(BinaryOp):
    """Division rounding toward minus infinity (Python's ``//``)."""

    a: PrimExpr
    b: PrimExpr
    symbol = "//"


@_frozen
class FloorMod(BinaryOp):
    """Remainder with the divisor's sign (Python's ``%``)."""

    a: PrimExpr
    b: PrimExpr
    symbol = "%"


@_frozen
class Min(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "min"


@_frozen
class Max(BinaryOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "max"


class CmpOp(BinaryOp):
    """Comparison; the result is ``bool`` (with the operands' lane count)."""

    __slots__ = ()
    dtype = _DerivedDtype(lambda n: n.a, lambda n, d: dt.with_lanes("bool", dt.lanes_of(d)))


@_frozen
class EQ(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "=="

    def __bool__(self):
        # Python-level equality (dict keys, ``in``) means "the same node".
        return self.a is self.b


@_frozen
class NE(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "!="

    def __bool__(self):
        return self.a is not self.b


@_frozen
class LT(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "<"


@_frozen
class LE(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "<="


@_frozen
class GT(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = ">"


@_frozen
class GE(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = ">="


@_frozen
class And(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "&&"


@_frozen
class Or(CmpOp):
    a: PrimExpr
    b: PrimExpr
    symbol = "||"


@_frozen
class Not(PrimExpr):
    a: PrimExpr
    _children = ("a",)
    dtype = _DerivedDtype(lambda n: n.a)


@_frozen
class Select(PrimExpr):
    """``condition ? true_value : false_value`` (both sides may be evaluated)."""

    condition: PrimExpr
    true_value: PrimExpr
    false_value: PrimExpr
    _children = ("condition", "true_value", "false_value")
    dtype = _DerivedDtype(lambda n: n.true_value)


@_frozen
class Cast(PrimExpr):
    """Conversion to ``dtype``; float -> int truncates toward zero, int -> narrower int wraps."""

    dtype: str
    value: PrimExpr
    _children = ("value",)


@_frozen
class Call(PrimExpr):
    """A call of a named intrinsic (``exp``, ``dp4a``, ``syncthreads`` ...)."""

    dtype: str
    op: str
    args: tuple
    _children = ("args",)


@_frozen
class Ramp(PrimExpr):
    """The vector ``[base, base + stride, ..., base + (lanes-1)*stride]``."""

    base: PrimExpr
    stride: PrimExpr
    lanes: int
    _children = ("base", "stride")
    dtype = _DerivedDtype(lambda n: n.base, lambda n, d: dt.with_lanes(d, n.lanes))


@_frozen
class Broadcast(PrimExpr):
    """A scalar repeated over ``lanes`` lanes."""

    value: PrimExpr
    lanes: int
    _children = ("value",)
    dtype = _DerivedDtype(lambda n: n.value, lambda n, d: dt.with_lanes(d, n.lanes))


@_frozen
class Let(PrimExpr):
    """``let var = value in body``."""

    var: Var
    value: PrimExpr
    body: PrimExpr
    _children = ("value", "body")
    dtype = _DerivedDtype(lambda n: n.body)


@_frozen
class BufferLoad(PrimExpr):
    """Read of ``buffer`` at ``indices`` (one flat index after storage flattening).

    A :class:`Ramp` index reads a vector; the dtype then has its lanes.
    """

    buffer: Any
    indices: tuple
    _children = ("indices",)

    @property
    def dtype(self):
        lanes = dt.lanes_of(self.indices[-1].dtype) if self.indices else 1
        return dt.with_lanes(self.buffer.dtype, lanes)


@_frozen
class ProducerLoad(PrimExpr):
    """Read of a tensor-expression tensor ``producer[indices]`` (before lowering)."""

    producer: Any
    indices: tuple
    _children = ("indices",)

    @property
    def dtype(self):
        return self.producer.dtype


@_frozen
class Reduce(PrimExpr):
    """A commutative reduction of ``source`` over ``axis`` where ``condition`` holds."""

    combiner: Any
    source: tuple
    axis: tuple
    condition: PrimExpr
    value_index: int = 0
    _children = ("source", "condition")
    dtype = _DerivedDtype(lambda n: n.source[n.value_index])


# ----------------------------------------------------------------------------------------
# ranges and iteration variables
# ----------------------------------------------------------------------------------------
@_frozen
class Range:
    """The half-open interval ``[min, min + extent)``."""

    min: PrimExpr
    extent: PrimExpr

    @staticmethod
    def from_min_extent(min_value, extent) -> "Range":
        return Range(convert(min_value), convert(extent))

    def __str__(self):
        return f"range(min={self.min}, ext={self.extent})"

    __repr__ = __str__


DATA_PAR, REDUCE, THREAD_INDEX, OPAQUE = "data_par", "reduce", "thread_index", "opaque"


@_frozen
class IterVar:
    """An iteration variable with its domain; ``thread_tag`` names a GPU index for bound axes."""

    dom: Range | None
    var: Var
    iter_type: str = DATA_PAR
    thread_tag: str = ""

    def __str__(self):
        return f"iter_var({self.var.name}, {self.dom}{', ' + self.thread_tag if self.thread_tag else ''})"

    __repr__ = __str__


# ----------------------------------------------------------------------------------------
# construction helpers
# ----------------------------------------------------------------------------------------
def const(value, dtype: str | None = None) -> PrimExpr:
    """A constant of ``dtype`` (default: int32 for ints, float32 for floats, bool for bools)."""
    if isinstance(value, PrimExpr):
        return value.astype(dtype) if dtype else value
    if dtype is None:
        if isinstance(value, bool):
            dtype = "bool"
        elif isinstance(value, int) or (hasattr(value, "dtype") and "int" in str(value.dtype)):
            dtype = "int32"
        else:
            dtype = "float32"
    dtype = dt.canonical(dtype)
    if dt.is_float(dtype):
        return FloatImm(dtype, float(value))
    if isinstance(value, float) and not float(value).is_integer():
        raise DtypeError(f"the float literal {value} cannot become an {dtype} constant without a cast")
    return IntImm(dtype, int(value))


def convert(value) -> PrimExpr:
    """Turn a Python number into a constant; pass expressions through."""
    if isinstance(value, PrimExpr):
        return value
    if isinstance(value, IterVar):
        return value.var
    if isinstance(value, (bool, int, float)) or hasattr(value, "dtype"):
        return const(value)
    raise DtypeError(f"cannot use {value!r} ({type(value).__name__}) as an expression")


def _literal_for(value, dtype: str) -> PrimExpr:
    """A Python literal converted to the dtype of the other operand, checked to fit."""
    if isinstance(value, bool):
        return IntImm(dtype, int(value)) if not dt.is_float(dtype) else FloatImm(dtype, float(value))
    if dt.is_bool(dtype):
        raise DtypeError(f"cannot combine the number {value!r} with a bool expression")
    if dt.is_float(dtype):
        return FloatImm(dt.element_of(dtype), float(value))
    if isinstance(value, float) and not value.is_integer():
        raise DtypeError(
            f"the float literal {value} cannot be combined with an {dtype} expression; "
            "cast the expression with .astype('float32') first")
    return IntImm(dt.element_of(dtype), int(value))


def _binary(cls, a, b) -> PrimExpr:
    if isinstance(a, IterVar):
        a = a.var
    if isinstance(b, IterVar):
        b = b.var
    a_expr, b_expr = isinstance(a, PrimExpr), isinstance(b, PrimExpr)
    if not a_expr and not b_expr:
        a, b = convert(a), convert(b)
    elif not a_expr:
        a = _literal_for(a, b.dtype) if isinstance(a, (int, float)) else convert(a)
    elif not b_expr:
        b = _literal_for(b, a.dtype) if isinstance(b, (int, float)) else convert(b)
    ea, eb = dt.element_of(a.dtype), dt.element_of(b.dtype)
    if ea != eb:
        raise DtypeError(
            f"operator {cls.symbol} between {a.dtype} ({a}) and {b.dtype} ({b}): dtypes must match; "
            f"convert one side explicitly, e.g. x.astype('{_wider(ea, eb)}')")
    la, lb = dt.lanes_of(a.dtype), dt.lanes_of(b.dtype)
    if la != lb:
        if la == 1:
            a = Broadcast(a, lb)
        elif lb == 1:
            b = Broadcast(b, la)
        else:
            raise DtypeError(f"operator {cls.symbol} between vectors of {la} and {lb} lanes")
    if cls in (And, Or) and not dt.is_bool(ea):
        raise DtypeError(f"{cls.symbol} needs bool operands, got {a.dtype}: use comparisons")
    if cls is Div and not dt.is_float(ea):
        raise DtypeError(
            f"'/' on {a.dtype} operands ({a} / {b}) is ambiguous; use // (floor division) "
            "or cast to float")
    if cls in (FloorDiv, FloorMod) and isinstance(b, IntImm) and b.value == 0:
        raise DtypeError(f"division by the constant zero in {a} {cls.symbol} 0")
    return _fold(cls, a, b)


def _wider(a: str, b: str) -> str:
    if dt.is_float(a) != dt.is_float(b):
        return a if dt.is_float(a) else b
    return a if dt.bits(a) >= dt.bits(b) else b


def _fold(cls, a, b) -> PrimExpr:
    """Fold int32/int64 constant arithmetic at construction time; keeps generated IR small."""
    if isinstance(a, IntImm) and isinstance(b, IntImm) and a.dtype in ("int32", "int64"):
        x, y = a.value, b.value
        res = None
        if cls is Add:
            res = x + y
        elif cls is Sub:
            res = x - y
        elif cls is Mul:
            res = x * y
        elif cls is FloorDiv:
            res = x // y
        elif cls is FloorMod:
            res = x % y
        elif cls is Min:
            res = min(x, y)
        elif cls is Max:
            res = max(x, y)
        if res is not None:
            lo, hi = dt.value_range(a.dtype)
            if lo <= res <= hi:
                return IntImm(a.dtype, res)
    return cls(a, b)


def make_min(a, b) -> PrimExpr:
    """``min(a, b)`` with dtype checking."""
    return _binary(Min, a, b)


def make_max(a, b) -> PrimExpr:
    """``max(a, b)`` with dtype checking."""
    return _binary(Max, a, b)


def is_const_int(e, value=None) -> bool:
    """True if ``e`` is an integer constant (equal to ``value`` when given)."""
    return isinstance(e, IntImm) and (value is None or e.value == value)


def const_value(e):
    """The Python value of an IntImm/FloatImm, else None."""
    if isinstance(e, (IntImm, FloatImm)):
        return e.value
    return None


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "Any", "dataclass", "field", "dt")]


def _delegate_to_var(name):
    def method(self, *args):
        return getattr(self.var, name)(*args)
    method.__name__ = name
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__",
              "__rfloordiv__", "__mod__", "__rmod__", "__neg__", "__lt__", "__le__", "__gt__", "__ge__",
              "astype"):
    setattr(IterVar, _name, _delegate_to_var(_name))


ADDRESS_READ, ADDRESS_WRITE = 1, 2


def address_of(load: BufferLoad, access: str = "rw") -> Call:
    """The address of buffer element ``load`` (a ``BufferLoad``) as a call argument.

    ``access`` says what the callee does there: ``"r"`` reads, ``"w"`` writes, ``"rw"`` both (the
    default): the shared-memory barrier pass orders calls by it.
    """
    mask = {"r": ADDRESS_READ, "w": ADDRESS_WRITE, "rw": ADDRESS_READ | ADDRESS_WRITE}.get(access)
    if mask is None:
        raise ArgumentError(f"address_of: access must be 'r', 'w' or 'rw', got {access!r}")
    return Call("handle", "address_of", (load, const(mask)))


def address_access(call: Call) -> int:
    """The access mask of an ``address_of`` call (read and write when it gives none)."""
    return int(call.args[1].value) if len(call.args) > 1 else ADDRESS_READ | ADDRESS_WRITE
