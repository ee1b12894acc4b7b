"""The op registry: what each graph op is called, reads, accepts and computes.

Every op is an :class:`OpDef` with

* ``inputs`` -- input names in order; a trailing ``?`` marks an optional input (``bias?``) and
  a leading ``*`` a variadic one (``*data``);
* ``attrs`` -- :class:`Attr` declarations (name, kind, default, allowed values, check). Node
  attributes are normalized on the way in (:meth:`OpDef.normalize_attrs`): defaults are filled
  in and values take one canonical form (``strides`` is always a pair, ``padding`` always
  ``(top, left, bottom, right)``, a negative ``axis`` becomes positive during type inference
  where the rank is known ...);
* ``infer`` -- type inference ``(ctx, input types, attrs) -> TensorType``;
* ``compute`` -- the numpy reference ``(input arrays, attrs, output type) -> array``, used by
  the reference executor and by constant folding (floats accumulate in float64, integers in
  int64; the result is cast to the output dtype);
* ``macs`` -- multiply-accumulates for :meth:`Graph.summary` (optional).

:func:`register_op` adds ops; the families in this package (:mod:`.nn`, :mod:`.elemwise`,
:mod:`.pool`, :mod:`.shape`, :mod:`.layout`) and :mod:`minitvm.graph.quantize` register theirs.
How the compiler lowers and schedules an op is its strategy (:mod:`.strategy`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...errors import ArgumentError, DtypeError, GraphError, ShapeError
from ..types import TensorType

__all__ = ["Attr", "OpDef", "REQUIRED", "register_op", "get_op", "list_ops", "InferContext"]


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()




@dataclass(frozen=True)
class Attr:
    """An attribute declaration.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``str``, ``dtype``, ``pair`` (an int or a
    pair of positive ints -> pair), ``pad4`` (int, ``(ph, pw)`` or ``(top, left, bottom,
    right)`` -> 4-tuple), ``ints`` (tuple of ints), ``pad_width`` (tuple of ``(before, after)``
    pairs), ``layout`` (a layout string, see :mod:`minitvm.topi.nn.layout`) or ``any``.
    ``check(value)`` returns an error message or ``None``. A default of ``None`` makes the
    attribute optional.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | None = None
    check: Callable | None = None


class InferContext:
    """What type inference knows about the node it works on; builds errors that name it."""

    def __init__(self, node: str, op: str):
        """Context for node ``node`` of op type ``op``."""
        self.node, self.op = node, op

    def where(self) -> str:
        """``"node 'conv1' (conv2d)"``."""
        return f"node {self.node!r} ({self.op})"

    def shape_error(self, msg: str) -> ShapeError:
        """A ShapeError naming the node and op."""
        return ShapeError(f"{self.where()}: {msg}")

    def dtype_error(self, msg: str) -> DtypeError:
        """A DtypeError naming the node and op."""
        return DtypeError(f"{self.where()}: {msg}")

    def attr_error(self, attr: str, msg: str) -> GraphError:
        """A GraphError naming the node, op and attribute."""
        return GraphError(f"{self.where()}: attribute {attr!r} {msg}")


@dataclass(frozen=True)
class OpDef:
    """An op's declaration (see the module docstring)."""

    name: str
    inputs: tuple
    attrs: tuple
    infer: Callable
    compute: Callable
    macs: Callable | None = None
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def defaults(self) -> dict:
        """``{attr: default}`` for attributes that have a default."""
        return {a.name: a.default for a in self.attrs if a.default is not REQUIRED}

    def input_range(self) -> tuple:
        """(fewest, most) inputs; most is ``None`` for variadic ops."""
        if any(i.startswith("*") for i in self.inputs):
            return (1, None)
        return (sum(not i.endswith("?") for i in self.inputs), len(self.inputs))

    def normalize_attrs(self, attrs: dict, node: str = "?") -> dict:
        """Validate ``attrs`` against the declaration; returns the canonical, complete dict.

        Raises ``GraphError`` naming the node, the op and the attribute for an unknown, missing
        or malformed attribute.
        """
        ctx = InferContext(node, self.name)
        known = {a.name: a for a in self.attrs}
        for k in attrs:
            if k not in known:
                close = difflib.get_close_matches(k, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; {self.name} takes {sorted(known) or 'none'}"
                raise ctx.attr_error(k, f"is not an attribute of {self.name}{hint}")
        out = {}
        for a in self.attrs:
            if a.name in attrs:
                v = attrs[a.name]
            elif a.default is REQUIRED:
                raise ctx.attr_error(a.name, f"is required ({a.doc or a.kind})")
            else:
                v = a.default
            if v is None and a.default is None:
                out[a.name] = None
                continue
            try:
                v = _convert(a.kind, v)
            except (TypeError, ValueError, ShapeError) as e:
                raise ctx.attr_error(a.name, f"= {attrs.get(a.name, v)!r} is malformed: {e}") from None
            if a.choices is not None and v not in a.choices:
                raise ctx.attr_error(a.name, f"= {v!r} must be one of {a.choices}")
            if a.check is not None:
                msg = a.check(v)
                if msg:
                    raise ctx.attr_error(a.name, f"= {v!r} {msg}")
            out[a.name] = v
        return out

    def infer_type(self, node: str, in_types: list, attrs: dict) -> TensorType:
        """The output type of node ``node`` given its input types and normalized attributes."""
        ctx = InferContext(node, self.name)
        lo, hi = self.input_range()
        n = len(in_types)
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise ctx.shape_error(f"takes {want} inputs ({', '.join(self.inputs)}), got {n}")
        return self.infer(ctx, list(in_types), attrs)

    def count_macs(self, in_types, out_type, attrs) -> int:
        """Multiply-accumulates of one evaluation (0 for ops without a ``macs`` function)."""
        return int(self.macs(in_types, out_type, attrs)) if self.macs else 0


_OPS: dict[str, OpDef] = {}


def register_op(opdef: OpDef, override: bool = False) -> OpDef:
    """Add ``opdef`` to the registry (``override`` to replace an op of the same name)."""
    if opdef.name in _OPS and not override:
        raise GraphError(f"op {opdef.name!r} is already registered (pass override=True to replace it)")
    _OPS[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    """The :class:`OpDef` registered as ``name``; ``GraphError`` (with a suggestion) if none."""
    try:
        return _OPS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_OPS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise GraphError(f"unknown op {name!r}{hint}") from None


def list_ops() -> list[str]:
    """Names of every registered op, sorted."""
    return sorted(_OPS)


# ---------------------------------------------------------------------- attribute kinds
def _int(v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return int(v)
        raise TypeError(f"expected an int, got {type(v).__name__}")
    return int(v)


def _convert(kind: str, v):
    if kind == "int":
        return _int(v)
    if kind == "float":
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"expected a number, got {type(v).__name__}")
        return float(v)
    if kind == "bool":
        if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and v in (0, 1)):
            return bool(v)
        raise TypeError(f"expected a bool, got {v!r}")
    if kind == "str":
        if not isinstance(v, str):
            raise TypeError(f"expected a string, got {type(v).__name__}")
        return v
    if kind == "dtype":
        if v == "" or v is None:
            return ""
        return np.dtype(v).name
    if kind == "pair":
        t = (v, v) if not isinstance(v, (tuple, list, np.ndarray)) else tuple(v)
        if len(t) != 2:
            raise ArgumentError("expected an int or a pair of ints")
        t = tuple(_int(x) for x in t)
        if any(x < 1 for x in t):
            raise ArgumentError("values must be positive")
        return t
    if kind == "pad4":
        if not isinstance(v, (tuple, list, np.ndarray)):
            t = (v,) * 4
        else:
            t = tuple(v)
            if len(t) == 2:
                t = (t[0], t[1], t[0], t[1])
        if len(t) != 4:
            raise ArgumentError("expected an int, (ph, pw) or (top, left, bottom, right)")
        t = tuple(_int(x) for x in t)
        if any(x < 0 for x in t):
            raise ArgumentError("padding must be non-negative")
        return t
    if kind == "ints":
        if not isinstance(v, (tuple, list, np.ndarray)):
            raise TypeError("expected a sequence of ints")
        return tuple(_int(x) for x in v)
    if kind == "pad_width":
        if not isinstance(v, (tuple, list, np.ndarray)):
            raise TypeError("expected a sequence of (before, after) pairs")
        out = []
        for p in v:
            p = tuple(p) if isinstance(p, (tuple, list, np.ndarray)) else None
            if p is None or len(p) != 2:
                raise ArgumentError("expected a sequence of (before, after) pairs")
            p = (_int(p[0]), _int(p[1]))
            if p[0] < 0 or p[1] < 0:
                raise ArgumentError("pads must be non-negative")
            out.append(p)
        return tuple(out)
    if kind == "layout":
        from ...topi.nn.layout import Layout
        return "" if v == "" else Layout.parse(v).name
    if kind == "any":
        return v
    raise GraphError(f"unknown attribute kind {kind!r}")

