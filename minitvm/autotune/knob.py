"""The knobs of a configuration space: one space per knob kind (split, option, reorder,
annotate) holding the ordered values the knob can take, and the entity classes of those values
(``cfg[name]`` while a template runs). :mod:`minitvm.autotune.space` combines them into the
product space a template defines."""
from __future__ import annotations

import itertools
import math

from ..errors import MiniTVMError

__all__ = [
    "ConfigError", "KnobSpace", "SplitSpace", "OtherOptionSpace", "ReorderSpace", "AnnotateSpace",
    "SplitEntity", "OtherOptionEntity", "ReorderEntity", "AnnotateEntity", "extent_of",
]


class ConfigError(MiniTVMError, ValueError):
    """A knob defined twice or not at all, a value outside a knob's space, a bad index."""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def extent_of(axis_or_extent, what: str) -> int:
    """An int extent, or the constant extent of a root IterVar."""
    if isinstance(axis_or_extent, bool):
        raise ConfigError(f"{what}: expected an axis or an int extent, got {axis_or_extent!r}")
    if isinstance(axis_or_extent, int):
        n = axis_or_extent
    else:
        dom = getattr(axis_or_extent, "dom", None)
        ext = getattr(dom, "extent", None) if dom is not None else None
        value = getattr(ext, "value", None)
        if not isinstance(value, int):
            name = getattr(getattr(axis_or_extent, "var", None), "name", axis_or_extent)
            raise ConfigError(f"{what}: axis {name} has no constant extent (only root axes of a compute "
                              "carry one); pass the extent as an int")
        n = value
    if n < 1:
        raise ConfigError(f"{what}: the extent must be positive, got {n}")
    return int(n)


def _divisors(n: int) -> list:
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def _plain(value):
    """A JSON-shaped copy of ``value`` (tuples become lists) for comparing and logging."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _key(value):
    """A hashable key for a plain value (lists become tuples; 1 and True stay different)."""
    if isinstance(value, (list, tuple)):
        return ("L",) + tuple(_key(v) for v in value)
    if isinstance(value, dict):
        return ("D",) + tuple(sorted((str(k), _key(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def _stage(sch, op):
    """``sch[op]`` for a tensor or operation; a Stage passes through."""
    if hasattr(op, "leaf_iter_vars") and hasattr(op, "split"):
        return op
    return sch[op]


# --------------------------------------------------------------------------------------------
# entities: one value of one knob
# --------------------------------------------------------------------------------------------
class SplitEntity:
    """A split of one axis into ``len(size)`` loops with extents ``size`` (outermost first).

    ``size[0]`` is the outer extent (for a non-exact split, the ceiling), the rest are factors.
    """

    __slots__ = ("size",)

    def __init__(self, size):
        self.size = tuple(int(s) for s in size)

    def apply(self, sch, op, axis):
        """Split ``axis`` of ``op``'s stage; returns the ``len(size)`` loops, outermost first."""
        stage = _stage(sch, op)
        out = []
        for f in reversed(self.size[1:]):
            axis, inner = stage.split(axis, factor=f)
            out.append(inner)
        out.append(axis)
        return out[::-1]

    @property
    def value(self):
        """The plain (logged) value: the list of extents."""
        return list(self.size)

    def __eq__(self, other):
        return isinstance(other, SplitEntity) and other.size == self.size

    def __hash__(self):
        return hash(("split", self.size))

    def __repr__(self):
        return f"Split{list(self.size)}"


class OtherOptionEntity:
    """One value (``val``) of a plain knob."""

    __slots__ = ("val",)

    def __init__(self, val):
        self.val = val

    @property
    def value(self):
        """The plain (logged) value."""
        return _plain(self.val)

    def __eq__(self, other):
        return isinstance(other, OtherOptionEntity) and _key(other.val) == _key(self.val)

    def __hash__(self):
        return hash(("knob", _key(self.val)))

    def __repr__(self):
        return f"Knob({self.val!r})"


class ReorderEntity:
    """A permutation ``perm`` of a list of axes: the new order is ``[axes[i] for i in perm]``."""

    __slots__ = ("perm",)

    def __init__(self, perm):
        self.perm = tuple(int(p) for p in perm)

    def apply(self, sch, op, axes):
        """Reorder ``axes`` of ``op``'s stage by ``perm``; returns the axes in their new order."""
        axes = list(axes)
        if len(axes) != len(self.perm):
            raise ConfigError(f"reorder: the knob permutes {len(self.perm)} axes, {len(axes)} given")
        new = [axes[i] for i in self.perm]
        _stage(sch, op).reorder(*new)
        return new

    @property
    def value(self):
        """The plain (logged) value: the permutation as a list."""
        return list(self.perm)

    def __eq__(self, other):
        return isinstance(other, ReorderEntity) and other.perm == self.perm

    def __hash__(self):
        return hash(("reorder", self.perm))

    def __repr__(self):
        return f"Reorder{list(self.perm)}"


class AnnotateEntity:
    """One annotation per axis: ``"none"``, ``"unroll"`` or ``"vec"``."""

    __slots__ = ("anns",)

    def __init__(self, anns):
        self.anns = tuple(str(a) for a in anns)

    def apply(self, sch, op, axes):
        """Unroll / vectorize ``axes`` of ``op``'s stage as annotated; returns ``axes``."""
        axes = list(axes)
        if len(axes) != len(self.anns):
            raise ConfigError(f"annotate: the knob annotates {len(self.anns)} axes, {len(axes)} given")
        stage = _stage(sch, op)
        for ax, ann in zip(axes, self.anns):
            if ann == "unroll":
                stage.unroll(ax)
            elif ann == "vec":
                stage.vectorize(ax)
            elif ann != "none":
                raise ConfigError(f"annotate: unknown annotation {ann!r} (none, unroll, vec)")
        return axes

    @property
    def value(self):
        """The plain (logged) value: the list of annotations."""
        return list(self.anns)

    def __eq__(self, other):
        return isinstance(other, AnnotateEntity) and other.anns == self.anns

    def __hash__(self):
        return hash(("annotate", self.anns))

    def __repr__(self):
        return f"Annotate{list(self.anns)}"


# --------------------------------------------------------------------------------------------
# knob spaces: the ordered list of values of one knob
# --------------------------------------------------------------------------------------------
class KnobSpace:
    """The ordered, de-duplicated values (entities) one knob can take."""

    kind = "knob"

    def __init__(self, name: str, entities):
        self.name = name
        self.entities = list(entities)
        if not self.entities:
            raise ConfigError(f"knob {name!r} has no candidate values")
        self._index = {}
        for i, e in enumerate(self.entities):
            self._index.setdefault(_key(e.value), i)

    def __len__(self):
        return len(self.entities)

    def get(self, i: int):
        """The ``i``-th entity."""
        return self.entities[i]

    def index_of(self, value) -> int:
        """The position of a plain value (or an entity) in this knob's list."""
        if hasattr(value, "value") and not isinstance(value, (list, tuple, dict)):
            value = value.value
        i = self._index.get(_key(_plain(value)))
        if i is None:
            raise ConfigError(f"knob {self.name!r}: {value!r} is not one of its {len(self)} candidates")
        return i

    def make_entity(self, value):
        """An entity of this knob for a plain value (which need not be a candidate)."""
        raise NotImplementedError

    def features(self, entity) -> list:
        """Numbers describing ``entity`` (for cost models)."""
        return [float(self.index_of(entity))]

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, len={len(self)})"


class SplitSpace(KnobSpace):
    """Ways to split an axis of ``extent`` into ``num_outputs`` loops.

    Policies: ``"factors"`` — exact splits, every inner factor a divisor (product divides the
    extent); ``"power2"`` — inner factors are powers of two, the outer loop takes the ceiling
    (non-divisible splits get guards); ``"verbose"`` — both. ``max_factor`` bounds each inner
    factor. Entities are ordered lexicographically by their inner factors, smallest first.
    """

    kind = "split"

    def __init__(self, name, extent: int, num_outputs: int = 2, policy: str = "factors",
                 max_factor: int | None = None, filter=None):
        if num_outputs < 1:
            raise ConfigError(f"define_split {name!r}: num_outputs must be >= 1, got {num_outputs}")
        if policy not in ("factors", "power2", "verbose"):
            raise ConfigError(f"define_split {name!r}: unknown policy {policy!r} (factors, power2, verbose)")
        self.extent, self.num_outputs, self.policy = extent, num_outputs, policy
        self.max_factor = extent if max_factor is None else int(max_factor)
        if self.max_factor < 1:
            raise ConfigError(f"define_split {name!r}: max_factor must be >= 1, got {max_factor}")
        limit = min(self.max_factor, extent)
        divs = [d for d in _divisors(extent) if d <= limit]
        pows = [1 << k for k in range(limit.bit_length()) if (1 << k) <= limit]
        exact = policy == "factors"
        cands = divs if policy == "factors" else pows if policy == "power2" else sorted(set(divs) | set(pows))
        entities = []
        for inner in self._enumerate(cands, num_outputs - 1, extent, exact):
            prod = math.prod(inner)
            e = SplitEntity((-(-extent // prod),) + inner)
            if filter is None or filter(e):
                entities.append(e)
        super().__init__(name, entities)

    @staticmethod
    def _enumerate(cands, n, extent, exact):
        out = []

        def rec(prefix, prod):
            if len(prefix) == n:
                out.append(tuple(prefix))
                return
            for c in cands:
                p = prod * c
                if p > extent or (exact and extent % p):
                    continue
                prefix.append(c)
                rec(prefix, p)
                prefix.pop()

        rec([], 1)
        return out

    def make_entity(self, value):
        """A SplitEntity of the given extents (checked for length only)."""
        value = list(value.size if isinstance(value, SplitEntity) else value)
        if len(value) != self.num_outputs:
            raise ConfigError(f"split {self.name!r}: expected {self.num_outputs} extents, got {value}")
        return SplitEntity(value)

    def features(self, entity) -> list:
        """log2 of each extent."""
        return [math.log2(max(1, s)) for s in entity.size]


class OtherOptionSpace(KnobSpace):
    """A knob taking one of an explicit list of values (ints, strs, bools, lists ...)."""

    kind = "knob"

    def __init__(self, name, values):
        values = list(values)
        seen, ents = set(), []
        for v in values:
            k = _key(_plain(v))
            if k in seen:
                raise ConfigError(f"define_knob {name!r}: value {v!r} is listed twice")
            seen.add(k)
            ents.append(OtherOptionEntity(v))
        super().__init__(name, ents)

    def make_entity(self, value):
        """The candidate equal to ``value`` if there is one, else a new entity of it."""
        try:
            return self.entities[self.index_of(value)]
        except ConfigError:
            return OtherOptionEntity(value)

    def features(self, entity) -> list:
        """The value itself when numeric, else its position."""
        v = entity.val
        if isinstance(v, (int, float)):
            return [float(v)]
        return [float(self.index_of(entity))]


class ReorderSpace(KnobSpace):
    """Orders of ``n`` axes: ``"all"`` permutations (lexicographic), ``"identity"``, or a list."""

    kind = "reorder"

    def __init__(self, name, n: int, policy="all"):
        self.n = n
        if isinstance(policy, str):
            if policy == "all":
                if n > 8:
                    raise ConfigError(f"define_reorder {name!r}: {n} axes give {math.factorial(n)} orders; "
                                      "pass a list of candidate permutations instead")
                perms = list(itertools.permutations(range(n)))
            elif policy == "identity":
                perms = [tuple(range(n))]
            else:
                raise ConfigError(f"define_reorder {name!r}: unknown policy {policy!r} "
                                  "(all, identity, or a list of permutations)")
        else:
            perms = []
            for p in policy:
                p = tuple(int(i) for i in p)
                if sorted(p) != list(range(n)):
                    raise ConfigError(f"define_reorder {name!r}: {list(p)} is not a permutation of 0..{n - 1}")
                if p not in perms:
                    perms.append(p)
        super().__init__(name, [ReorderEntity(p) for p in perms])

    def make_entity(self, value):
        """A ReorderEntity of the permutation ``value``."""
        p = list(value.perm if isinstance(value, ReorderEntity) else value)
        if sorted(p) != list(range(self.n)):
            raise ConfigError(f"reorder {self.name!r}: {p} is not a permutation of 0..{self.n - 1}")
        return ReorderEntity(p)

    def features(self, entity) -> list:
        """The permutation."""
        return [float(p) for p in entity.perm]


class AnnotateSpace(KnobSpace):
    """Unroll / vectorize annotations of ``n`` axes.

    ``"try_unroll"``: each axis ``none`` or ``unroll``; ``"try_vectorize"``: the last axis
    ``none`` or ``vec``; ``"try_unroll_vec"``: each axis ``none`` or ``unroll``, the last one
    also ``vec``; or an explicit list of annotation lists. ``none`` comes first.
    """

    kind = "annotate"
    _CODES = {"none": 0.0, "unroll": 1.0, "vec": 2.0}

    def __init__(self, name, n: int, policy="try_unroll"):
        self.n = n
        if n < 1:
            raise ConfigError(f"define_annotate {name!r}: needs at least one axis")
        if isinstance(policy, str):
            if policy == "try_unroll":
                per_axis = [("none", "unroll")] * n
            elif policy == "try_vectorize":
                per_axis = [("none",)] * (n - 1) + [("none", "vec")]
            elif policy == "try_unroll_vec":
                per_axis = [("none", "unroll")] * (n - 1) + [("none", "unroll", "vec")]
            else:
                raise ConfigError(f"define_annotate {name!r}: unknown policy {policy!r} "
                                  "(try_unroll, try_vectorize, try_unroll_vec, or a list)")
            # the last axis varies fastest, like nested loops
            anns = list(itertools.product(*per_axis))
        else:
            anns = []
            for a in policy:
                a = tuple(str(x) for x in a)
                if len(a) != n or any(x not in self._CODES for x in a):
                    raise ConfigError(f"define_annotate {name!r}: {list(a)} must list {n} of none/unroll/vec")
                if a not in anns:
                    anns.append(a)
        super().__init__(name, [AnnotateEntity(a) for a in anns])

    def make_entity(self, value):
        """An AnnotateEntity of the annotation list ``value``."""
        a = list(value.anns if isinstance(value, AnnotateEntity) else value)
        if len(a) != self.n or any(x not in self._CODES for x in a):
            raise ConfigError(f"annotate {self.name!r}: {a} must list {self.n} of none/unroll/vec")
        return AnnotateEntity(a)

    def features(self, entity) -> list:
        """0 / 1 / 2 for none / unroll / vec per axis."""
        return [self._CODES[a] for a in entity.anns]
