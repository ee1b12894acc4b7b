"""Statement nodes of the loop IR, buffers, and the lowered function.

After :func:`minitvm.lower`, every buffer access has exactly one (flat) index, loops have
constant or symbolic extents starting at zero or a symbolic minimum, and GPU thread bindings
appear as ``AttrStmt(iter_var, "thread_extent", extent, body)`` (as in TVM).
"""
from __future__ import annotations

from dataclasses import field
from typing import Any

from .. import dtype as dt
from .expr import Add, Broadcast, IntImm, PrimExpr, Ramp, Var, _frozen, convert, is_const_int
from .printer import func_str, stmt_str


class Stmt:
    """Base class of statements."""

    __slots__ = ()
    _children: tuple = ()

    def __str__(self):
        return stmt_str(self)

    __repr__ = __str__


SCOPES = ("global", "shared", "shared.dyn", "local", "warp")


@_frozen
class Buffer:
    """A named, typed, multi-dimensional region of memory in a storage ``scope``.

    ``data`` is the pointer variable codegen uses; ``strides`` (when set) override the dense
    row-major strides; ``offset_factor``/``elem_offset`` describe a view into a larger buffer
    (used by tensorize to hand sub-regions to intrinsics).
    """

    name: str
    shape: tuple
    dtype: str
    scope: str = "global"
    data: Var = None
    strides: tuple = ()
    elem_offset: PrimExpr = None

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(convert(s) for s in self.shape))
        if self.data is None:
            object.__setattr__(self, "data", Var(self.name, "handle"))
        if self.elem_offset is None:
            object.__setattr__(self, "elem_offset", convert(0))
        object.__setattr__(self, "strides", tuple(convert(s) for s in self.strides))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def offset_index(self, index: PrimExpr) -> PrimExpr:
        """The flat ``index`` of an access moved by ``elem_offset`` (lane by lane for a vector index)."""
        off = self.elem_offset
        if is_const_int(off, 0):
            return index
        if isinstance(index, Ramp):
            return Ramp(Add(index.base, off), index.stride, index.lanes)
        if dt.lanes_of(index.dtype) > 1:
            return Add(index, Broadcast(off, dt.lanes_of(index.dtype)))
        return Add(index, off)

    def __str__(self):
        return self.name

    __repr__ = __str__


@_frozen
class BufferStore(Stmt):
    """``buffer[indices] = value`` (a vector store when the index is a Ramp)."""

    buffer: Buffer
    value: PrimExpr
    indices: tuple
    _children = ("value", "indices")


FOR_KINDS = ("serial", "parallel", "vectorized", "unrolled")


@_frozen
class For(Stmt):
    """``for (loop_var = min; loop_var < min + extent; ++loop_var) body``."""

    loop_var: Var
    min: PrimExpr
    extent: PrimExpr
    kind: str
    body: Stmt
    _children = ("min", "extent", "body")


@_frozen
class AttrStmt(Stmt):
    """An annotation on ``body``: ``thread_extent``, ``pragma_*``, ``double_buffer_scope`` ..."""

    node: Any
    attr_key: str
    value: PrimExpr
    body: Stmt
    _children = ("value", "body")


@_frozen
class Allocate(Stmt):
    """Storage for ``buffer`` (its scope and shape) live within ``body``."""

    buffer: Buffer
    body: Stmt
    _children = ("body",)


@_frozen
class SeqStmt(Stmt):
    """Statements run in order."""

    seq: tuple
    _children = ("seq",)


@_frozen
class IfThenElse(Stmt):
    """``if (condition) then_case else else_case``."""

    condition: PrimExpr
    then_case: Stmt
    else_case: Stmt | None = None
    _children = ("condition", "then_case", "else_case")


@_frozen
class Evaluate(Stmt):
    """An expression evaluated for its effect (an intrinsic call such as ``syncthreads``)."""

    value: PrimExpr
    _children = ("value",)


@_frozen
class LetStmt(Stmt):
    """``var = value`` visible in ``body``."""

    var: Var
    value: PrimExpr
    body: Stmt
    _children = ("value", "body")


@_frozen
class ProducerStore(Stmt):
    """``tensor[indices] = value`` on a tensor-expression tensor (before storage flattening)."""

    producer: Any
    value: PrimExpr
    indices: tuple
    _children = ("value", "indices")


@_frozen
class ProducerRealize(Stmt):
    """The region ``bounds`` of tensor ``producer`` is computed and stored within ``body``."""

    producer: Any
    bounds: tuple
    scope: str
    body: Stmt
    _children = ("body",)


@_frozen
class PrimFunc:
    """A lowered function: ``params`` are the argument buffers, ``body`` the loop nest."""

    name: str
    params: tuple
    body: Stmt
    attrs: dict = field(default_factory=dict)

    def __str__(self):
        return func_str(self)

    __repr__ = __str__


def seq(*stmts) -> Stmt:
    """A SeqStmt of the non-empty statements, flattening nested sequences."""
    out = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, SeqStmt):
            out.extend(s.seq)
        else:
            out.append(s)
    if not out:
        return Evaluate(convert(0))
    return out[0] if len(out) == 1 else SeqStmt(tuple(out))


def is_no_op(s: Stmt) -> bool:
    """True for statements that do nothing (``Evaluate(constant)``)."""
    return isinstance(s, Evaluate) and isinstance(s.value, IntImm)
