"""Configuration spaces: the knobs a schedule template declares, and one point of their product.

A template declares its knobs on ``cfg`` and then reads the chosen value of each::

    cfg.define_split("tile_x", x, num_outputs=2)          # x: an IterVar or an int extent
    cfg.define_knob("vectorize", [True, False])
    xo, xi = cfg["tile_x"].apply(s, C, x)                  # the split, applied
    if cfg["vectorize"].val: s[C].vectorize(xi)

``cfg`` is one of three things:

* a :class:`ConfigSpace` while the space is being defined (``define_*`` record the knob;
  ``cfg[name]`` answers the knob's first value so the template runs through);
* a :class:`ConfigEntity` — one point of the space — while tuning or when a tuned config is
  applied (``define_*`` do nothing; ``cfg[name]`` answers the chosen value);
* a :class:`FallbackConfig` when nothing was tuned: it collects the knobs like a space and
  answers each knob's first value unless the template sets sound defaults with
  :meth:`FallbackConfig.fallback_with` (``if cfg.is_fallback: cfg.fallback_with({...})``).

A config is an index into the product of the knobs' value lists (the first knob defined varies
fastest) and a dict of knob values; :meth:`ConfigSpace.get` and :meth:`ConfigSpace.index_of`
convert one into the other. The order of every knob's values is deterministic.
"""
from __future__ import annotations

import math

from .knob import AnnotateSpace, ConfigError, OtherOptionSpace, ReorderSpace, SplitSpace, extent_of

__all__ = ["ConfigSpace", "ConfigEntity", "FallbackConfig"]


# --------------------------------------------------------------------------------------------
# the space and its points
# --------------------------------------------------------------------------------------------
class _KnobDefiner:
    """The ``define_*`` calls shared by spaces, fallbacks and entities."""

    is_fallback = False

    def define_split(self, name: str, axis_or_extent, num_outputs: int = 2, policy: str = "factors",
                     max_factor: int | None = None, filter=None):
        """Declare a knob splitting an axis (IterVar with a constant extent, or an int extent)
        into ``num_outputs`` loops; ``policy`` is ``"factors"``, ``"power2"`` or ``"verbose"``.
        ``cfg[name].apply(s, op, axis)`` performs the split; ``cfg[name].size`` the extents."""
        if self._skip_define(name, "split"):
            return
        extent = extent_of(axis_or_extent, f"define_split {name!r}")
        self._add(name, lambda: SplitSpace(name, extent, num_outputs, policy, max_factor, filter))

    def define_knob(self, name: str, values):
        """Declare a knob taking one of ``values`` (in this order); read it as ``cfg[name].val``."""
        if self._skip_define(name, "knob"):
            return
        self._add(name, lambda: OtherOptionSpace(name, values))

    def define_reorder(self, name: str, axes, policy="all"):
        """Declare a knob ordering ``axes`` (a list of axes, or their count); ``policy`` is
        ``"all"`` (every permutation), ``"identity"`` or a list of permutations.
        ``cfg[name].apply(s, op, axes)`` reorders."""
        if self._skip_define(name, "reorder"):
            return
        n = axes if isinstance(axes, int) else len(list(axes))
        self._add(name, lambda: ReorderSpace(name, n, policy))

    def define_annotate(self, name: str, axes, policy="try_unroll"):
        """Declare a knob annotating ``axes`` (or their count) with unroll / vectorize;
        ``policy`` is ``"try_unroll"``, ``"try_vectorize"``, ``"try_unroll_vec"`` or a list.
        ``cfg[name].apply(s, op, axes)`` annotates."""
        if self._skip_define(name, "annotate"):
            return
        n = axes if isinstance(axes, int) else len(list(axes))
        self._add(name, lambda: AnnotateSpace(name, n, policy))

    def multi_filter(self, filter):
        """Declare a constraint over several knobs: ``filter(config) -> bool``. Tuners skip
        (without measuring) configs it rejects; ``len(space)`` still counts them."""
        if not self._skip_define(None, "filter"):
            self._filters.append(filter)

    def add_flop(self, flop):
        """Declare the floating-point (or integer) operation count of the workload."""
        if not self._skip_define(None, "flop"):
            self.flop += float(flop)

    # hooks
    def _skip_define(self, name, kind) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def _add(self, name, make) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class ConfigSpace(_KnobDefiner):
    """The knobs of a template, in definition order, and the product space they span.

    ``len(space)`` is the number of configs; ``space.get(i)`` the ``i``-th (a
    :class:`ConfigEntity`); ``space.index_of(values)`` the index of a dict of knob values.
    The first knob defined varies fastest.
    """

    def __init__(self):
        self.space_map: dict = {}
        self.flop = 0.0
        self._filters: list = []

    # ---- definition
    def _skip_define(self, name, kind) -> bool:
        return False

    def _add(self, name, make) -> None:
        if name in self.space_map:
            raise ConfigError(f"knob {name!r} is defined twice; every knob needs its own name")
        self.space_map[name] = make()

    def __getitem__(self, name):
        """While defining: the knob's first value (so the template runs through)."""
        sp = self.space_map.get(name)
        if sp is None:
            raise ConfigError(f"knob {name!r} is not defined (defined: {list(self.space_map)}); define it "
                              "with cfg.define_* before reading it")
        return sp.get(0)

    # ---- the product space
    @property
    def knobs(self) -> list:
        """The knob names in definition order."""
        return list(self.space_map)

    def __len__(self):
        return math.prod(len(sp) for sp in self.space_map.values())

    def __iter__(self):
        """Every config in index order (beware: spaces can be huge)."""
        return (self.get(i) for i in range(len(self)))

    def get(self, index: int) -> "ConfigEntity":
        """The config at ``index`` (0 <= index < len(space))."""
        index = int(index)
        n = len(self)
        if not 0 <= index < n:
            raise ConfigError(f"config index {index} is out of range: the space has {n} configs")
        entities = {name: sp.get(i) for (name, sp), i in zip(self.space_map.items(), self.knob_indices(index))}
        return ConfigEntity(self, index, entities)

    def knob_indices(self, index: int) -> list:
        """Each knob's value index in config ``index``, in definition order (the first knob
        varies fastest)."""
        out, rest = [], int(index)
        for sp in self.space_map.values():
            rest, i = divmod(rest, len(sp))
            out.append(i)
        return out

    def index_from_knobs(self, knob_indices) -> int:
        """The config index of per-knob value indices (the inverse of :meth:`knob_indices`)."""
        index, radix = 0, 1
        for i, sp in zip(knob_indices, self.space_map.values()):
            index += int(i) * radix
            radix *= len(sp)
        return index

    def index_of(self, values, fill_missing: bool = False) -> int:
        """The index of the config whose knobs take ``values`` (a dict name -> plain value,
        or a config); raises ConfigError if a value is not in its knob's space.

        ``fill_missing``: knobs absent from ``values`` take their first value (a knob added to
        a template after a log was written lists the earlier behaviour first, so old logs
        keep meaning what they measured)."""
        if isinstance(values, (ConfigEntity, FallbackConfig)):
            values = values.values
        if fill_missing:
            values = dict(values)
            for name, sp in self.space_map.items():
                if name not in values:
                    values[name] = sp.get(0)
        missing = [n for n in self.space_map if n not in values]
        extra = [n for n in values if n not in self.space_map]
        if missing or extra:
            raise ConfigError(f"config values do not match the space: missing {missing}, unknown {extra}")
        return self.index_from_knobs(sp.index_of(values[name]) for name, sp in self.space_map.items())

    def is_valid(self, config) -> bool:
        """Whether ``config`` (or an index) passes every :meth:`multi_filter`."""
        if not self._filters:
            return True
        if not isinstance(config, ConfigEntity):
            config = self.get(config)
        return all(f(config) for f in self._filters)

    def features(self, config) -> list:
        """Numbers describing ``config`` (or an index), knob by knob, for cost models."""
        if not isinstance(config, ConfigEntity):
            config = self.get(config)
        out = []
        for name, sp in self.space_map.items():
            out.extend(sp.features(config[name]))
        return out

    def __repr__(self):
        lines = [f"ConfigSpace (len={len(self)}):"]
        for i, (name, sp) in enumerate(self.space_map.items()):
            lines.append(f"  {i:2d} {name}: {sp.kind}, {len(sp)} values, e.g. {sp.get(0)!r}")
        return "\n".join(lines)


class ConfigEntity(_KnobDefiner):
    """One config of a :class:`ConfigSpace`: its ``index`` and a value per knob.

    Templates read ``cfg[name]`` (a SplitEntity, OtherOptionEntity ...); ``define_*`` calls are
    no-ops (the knobs were declared when the space was built).
    """

    def __init__(self, space: ConfigSpace, index: int, entities: dict):
        self.space = space
        self.index = index
        self._entities = entities

    @property
    def flop(self) -> float:
        """The workload's operation count as declared when the space was built."""
        return self.space.flop

    def _skip_define(self, name, kind) -> bool:
        if name is not None and name not in self._entities:
            raise ConfigError(f"knob {name!r} was not defined when the space was built (knobs: "
                              f"{list(self._entities)}); define every knob on every call of the template")
        return True

    def __getitem__(self, name):
        """The value of knob ``name``."""
        e = self._entities.get(name)
        if e is None:
            raise ConfigError(f"config has no knob {name!r} (knobs: {list(self._entities)})")
        return e

    def __contains__(self, name):
        return name in self._entities

    @property
    def values(self) -> dict:
        """Plain, JSON-serializable knob values in definition order."""
        return {n: e.value for n, e in self._entities.items()}

    def to_dict(self) -> dict:
        """``{"index": ..., "knobs": {...}}`` as logged."""
        return {"index": self.index, "knobs": self.values}

    def features(self) -> list:
        """Numbers describing this config (see :meth:`ConfigSpace.features`)."""
        return self.space.features(self)

    def __eq__(self, other):
        return isinstance(other, ConfigEntity) and other.index == self.index and other.values == self.values

    def __hash__(self):
        return hash(self.index)

    def __repr__(self):
        knobs = ", ".join(f"{n}={e.value!r}" for n, e in self._entities.items())
        return f"ConfigEntity(index={self.index}, {knobs})"


class FallbackConfig(ConfigSpace):
    """The config used when nothing was tuned for a workload.

    It collects knob definitions like a space; each knob answers its first value unless the
    template gave defaults with :meth:`fallback_with`. ``index`` is the index of the result in
    the space, or -1 when a default lies outside the space.
    """

    is_fallback = True

    def __init__(self):
        super().__init__()
        self._defaults: dict = {}

    def fallback_with(self, values: dict) -> "FallbackConfig":
        """Set defaults for (some of) the knobs from plain values, e.g. a hand-written config."""
        for name, value in values.items():
            sp = self.space_map.get(name)
            if sp is None:
                raise ConfigError(f"fallback_with: knob {name!r} is not defined (defined: {list(self.space_map)})")
            self._defaults[name] = sp.make_entity(value)
        return self

    def __getitem__(self, name):
        """The default value of knob ``name``."""
        if name in self._defaults:
            return self._defaults[name]
        return super().__getitem__(name)

    @property
    def values(self) -> dict:
        """Plain knob values in definition order."""
        return {n: self[n].value for n in self.space_map}

    @property
    def index(self) -> int:
        """The index of these values in the space, or -1 if some value lies outside it."""
        try:
            return self.index_of(self.values)
        except ConfigError:
            return -1

    def to_dict(self) -> dict:
        """``{"index": ..., "knobs": {...}}``."""
        return {"index": self.index, "knobs": self.values}

    def __repr__(self):
        knobs = ", ".join(f"{n}={v!r}" for n, v in self.values.items())
        return f"FallbackConfig({knobs})"
