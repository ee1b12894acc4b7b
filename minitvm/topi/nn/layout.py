"""Data layouts as strings, and ``layout_transform`` between them.

A layout names each dimension: an upper-case letter is a *primal* axis (``N``, ``C``, ``H``,
``W``, ``O``, ``I``); a number followed by a lower-case letter is a *sub-axis* that splits the
primal axis of the same letter: ``NCHW4c`` has ``C/4`` outer channels and 4 inner ones, stored
innermost. ``NCHW[x]c`` is the family (``NCHW4c``, ``NCHW16c``, ...); ``OIHW4o4i`` packs a
convolution weight as ``(O/4, I/4, H, W, 4, 4)`` so a ``dp4a`` reads 4 input channels of
one output channel as one 32-bit word.

A primal axis whose length is not a multiple of the sub-axis factor (3 RGB channels into
``NCHW4c``) is zero-padded up to the next multiple; transforming back drops the padding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ... import te
from ...errors import ShapeError
from ...tir import expr as E

_TOKEN = re.compile(r"(\d*)([A-Za-z])")


@dataclass(frozen=True)
class Layout:
    """A parsed layout: ``axes`` are (letter, factor) with factor 0 for primal axes."""

    name: str
    axes: tuple

    @staticmethod
    def parse(name: str) -> "Layout":
        """Parse ``"NCHW4c"``; raises ShapeError naming the problem."""
        if isinstance(name, Layout):
            return name
        if not isinstance(name, str) or not name:
            raise ShapeError(f"layout must be a non-empty string like 'NCHW4c', got {name!r}")
        pos, axes = 0, []
        for m in _TOKEN.finditer(name):
            if m.start() != pos:
                break
            pos = m.end()
            num, letter = m.group(1), m.group(2)
            if letter.isupper():
                if num:
                    raise ShapeError(f"layout {name!r}: primal axis {letter} cannot have a factor ({num})")
                axes.append((letter, 0))
            else:
                if not num or int(num) < 1:
                    raise ShapeError(f"layout {name!r}: sub-axis {letter} needs a positive factor, e.g. 4{letter}")
                axes.append((letter.upper(), int(num)))
        if pos != len(name):
            raise ShapeError(f"layout {name!r}: cannot parse {name[pos:]!r}")
        primal = [a for a, f in axes if f == 0]
        if len(set(primal)) != len(primal):
            raise ShapeError(f"layout {name!r}: a primal axis appears twice")
        subs = [a for a, f in axes if f]
        if len(set(subs)) != len(subs):
            raise ShapeError(f"layout {name!r}: at most one sub-axis per primal axis is supported")
        for a in subs:
            if a not in primal:
                raise ShapeError(f"layout {name!r}: sub-axis {a.lower()} has no primal axis {a}")
        return Layout(name, tuple(axes))

    @property
    def primal(self) -> tuple:
        return tuple(a for a, f in self.axes if f == 0)

    def factor(self, letter: str) -> int:
        """The sub-axis factor of primal axis ``letter`` (1 if it is not split)."""
        for a, f in self.axes:
            if a == letter and f:
                return f
        return 1

    def shape(self, primal_shape: dict) -> tuple:
        """The shape in this layout of a tensor whose primal extents are ``primal_shape``."""
        out = []
        for a, f in self.axes:
            n = primal_shape[a]
            if f:
                out.append(f)
            else:
                fac = self.factor(a)
                out.append(-(-n // fac) if isinstance(n, int) else (n + fac - 1) // fac)
        return tuple(out)

    def primal_shape(self, shape) -> dict:
        """Primal extents of a tensor of ``shape`` in this layout (padded extents when split)."""
        if len(shape) != len(self.axes):
            raise ShapeError(f"layout {self.name} has {len(self.axes)} dimensions, the tensor has {len(shape)}")
        out = {}
        for (a, f), n in zip(self.axes, shape):
            if f == 0:
                out[a] = n * self.factor(a)
        for (a, f), n in zip(self.axes, shape):
            if f and _const(n) is not None and _const(n) != f:
                raise ShapeError(f"layout {self.name}: sub-axis {f}{a.lower()} must have extent {f}, got {n}")
        return out

    def __str__(self):
        return self.name


def _const(x):
    if isinstance(x, int):
        return x
    if isinstance(x, E.IntImm):
        return x.value
    return None


def layout_transform(data, src: str, dst: str, primal_extents: dict | None = None, name: str | None = None):
    """``data`` (in layout ``src``) re-laid out as ``dst``; padding is zero-filled.

    ``primal_extents`` gives the true (unpadded) extent of primal axes when ``src`` is padded,
    e.g. ``{"C": 3}`` when unpacking an ``NCHW4c`` tensor that holds 3 real channels.
    """
    s, d = Layout.parse(src), Layout.parse(dst)
    if sorted(s.primal) != sorted(d.primal):
        raise ShapeError(f"layout_transform {src} -> {dst}: the layouts have different primal axes")
    padded = s.primal_shape(data.shape)
    true = dict(padded)
    true.update(primal_extents or {})
    for a, n in true.items():
        pn, tn = _const(padded[a]), _const(n)
        if pn is not None and tn is not None and tn > pn:
            raise ShapeError(f"layout_transform: axis {a} has only {pn} elements in {src}, not {tn}")
    out_shape = d.shape({a: _dim(true[a]) for a in true})

    def fcompute(*idx):
        full = {}
        for (a, f), i in zip(d.axes, idx):
            if f == 0:
                full[a] = i * d.factor(a) if d.factor(a) > 1 else i
        for (a, f), i in zip(d.axes, idx):
            if f:
                full[a] = full[a] + i
        src_idx = []
        for a, f in s.axes:
            fac = s.factor(a)
            if f:
                src_idx.append(full[a] % fac)
            else:
                src_idx.append(full[a] // fac if fac > 1 else full[a])
        conds = [full[a] < true[a] for a in s.primal
                 if d.factor(a) > 1 and _needs_pad(true[a], d.factor(a))]
        value = data(*src_idx)
        if conds:
            return te.if_then_else(te.all(*conds), value, E.const(0, data.dtype))
        return value

    return te.compute(out_shape, fcompute, name=name or f"{data.name}_{dst}", tag="layout_transform",
                      attrs={"src_layout": src, "dst_layout": dst})


def _dim(n):
    c = _const(n)
    return c if c is not None else n


def _needs_pad(n, factor) -> bool:
    c = _const(n)
    return c is None or c % factor != 0
