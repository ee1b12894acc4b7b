"""Named numeric features of a config, for cost models that learn across tasks.

The features of a config are read from its knob values and its space alone (no template is
instantiated, nothing is lowered: that takes about 0.3 s per int8 conv config, and a cost model
ranks hundreds of candidates per batch). Each feature has a name that means the same thing in
every task of a template, so one model can learn from the trials of many workloads:

* ``{knob}.{i}``: log2 of part ``i`` of a split (outermost first); ``{knob}.{i}/``: the same as a
  share of the axis (``log2 part / log2 extent``), comparable between shapes; ``{knob}:extent``:
  log2 of the axis extent (the shape);
* ``{knob}``: an option's value (numbers and bools as they are, other values by position),
  a reorder's permutation (``{knob}.{i}``), an annotation's code per axis (0 none, 1 unroll, 2 vec);
* loop features of the split structure, per split arity ``a`` (the templates split every
  output axis the same way, e.g. ``[block, vthread, thread, inner]``, and every reduction axis
  another): ``loop{a}.{i}``, log2 of the product of part ``i`` over those splits (the loop nest's
  level: blocks, threads per block, inner work ...); ``loop{a}.{i}+``, of parts ``i`` and inward
  (a block's tile, a thread's tile); ``loop{a}.1+-{i}``, of parts 1 and inward except ``i`` (per
  thread work when ``i`` is the thread level); ``loop{a}:extent``, the axes' product;
* ``log2_flop``: the workload's operation count.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from .knob import AnnotateSpace, ConfigError, OtherOptionSpace, ReorderSpace, SplitSpace

__all__ = ["feature_names", "config_features", "feature_matrix", "readable_feature_matrix"]


def _log2(x) -> float:
    return math.log2(x) if x > 0 else 0.0


def _option_value(sp: OtherOptionSpace, value) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    return float(sp.index_of(value))


class _Layout:
    """The feature names of a space, in the order :meth:`values` computes them."""

    def __init__(self, space):
        self.knobs = list(space.space_map.items())
        names = []
        arities: dict = {}              # split arity -> [log2 extent of each such split]
        for name, sp in self.knobs:
            if isinstance(sp, SplitSpace):
                for i in range(sp.num_outputs):
                    names += [f"{name}.{i}", f"{name}.{i}/"]
                names.append(f"{name}:extent")
                arities.setdefault(sp.num_outputs, []).append(_log2(sp.extent))
            elif isinstance(sp, (ReorderSpace, AnnotateSpace)):
                names += [f"{name}.{i}" for i in range(sp.n)]
            else:
                names.append(name)
        self.arities = sorted(arities)
        self.extents = {a: sum(arities[a]) for a in self.arities}
        for a in self.arities:
            for i in range(a):
                names += [f"loop{a}.{i}", f"loop{a}.{i}+"] + ([f"loop{a}.1+-{i}"] if i >= 1 and a > 2 else [])
            names.append(f"loop{a}:extent")
        self.names = names + ["log2_flop"]

    def values(self, values: dict, flop: float) -> list:
        """The features of plain knob ``values`` (every knob present), in the order of ``names``."""
        out = []
        levels = {a: [0.0] * a for a in self.arities}
        for name, sp in self.knobs:
            v = values[name]
            if isinstance(sp, SplitSpace):
                total = _log2(sp.extent)
                acc = levels[sp.num_outputs]
                for i, p in enumerate(v):
                    p = _log2(p)
                    out += [p, p / total if total > 0 else 0.0]
                    acc[i] += p
                out.append(total)
            elif isinstance(sp, ReorderSpace):
                out += [float(p) for p in v]
            elif isinstance(sp, AnnotateSpace):
                out += [AnnotateSpace._CODES[a] for a in v]
            else:
                out.append(_option_value(sp, v))
        for a in self.arities:
            acc = levels[a]
            for i, p in enumerate(acc):
                out += [p, sum(acc[i:])] + ([sum(acc[1:]) - p] if i >= 1 and a > 2 else [])
            out.append(self.extents[a])
        out.append(_log2(flop))
        return out


_LAYOUTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _layout(space) -> _Layout:
    layout = _LAYOUTS.get(space)
    if layout is None:
        layout = _LAYOUTS[space] = _Layout(space)
    return layout


def _plain_values(space, config) -> dict:
    values = config if isinstance(config, dict) else config.values
    if any(name not in values for name in space.space_map):
        values = dict(values)
        for name, sp in space.space_map.items():
            values.setdefault(name, sp.get(0).value)
    return values


def feature_names(task) -> list:
    """The feature names of configs of ``task`` (a :class:`~.task.Task`), in a fixed order."""
    return list(_layout(task.config_space).names)


def config_features(task, config) -> dict:
    """``{name: value}`` of ``config`` (a config of ``task``'s space, or a dict of plain knob
    values; knobs missing from the dict take their first value, as in logs older than the knob)."""
    space = task.config_space
    layout = _layout(space)
    return dict(zip(layout.names, layout.values(_plain_values(space, config), task.flop)))


def feature_matrix(task, configs, names) -> np.ndarray:
    """Features of ``configs`` (configs or plain value dicts of ``task``) as float64 rows whose
    columns follow ``names``; a feature the task does not have is NaN."""
    layout = _layout(task.config_space)
    return _reorder([layout.values(_plain_values(task.config_space, c), task.flop) for c in configs], layout, names)


def readable_feature_matrix(task, configs, names) -> tuple:
    """``(rows, kept)``: :func:`feature_matrix` of the ``configs`` whose values can be read as
    ``task``'s knobs (e.g. logged by an older template: a split value that is not a list of
    extents, an option that is neither a number nor one of its values), and their positions."""
    layout = _layout(task.config_space)
    rows, kept = [], []
    for k, config in enumerate(configs):
        try:
            rows.append(layout.values(_plain_values(task.config_space, config), task.flop))
        except (ConfigError, TypeError, ValueError, KeyError):
            continue
        kept.append(k)
    return _reorder(rows, layout, names), kept


def _reorder(rows, layout, names) -> np.ndarray:
    rows = np.asarray(rows, np.float64).reshape(len(rows), len(layout.names))
    if list(names) == layout.names:
        return rows
    where = {n: i for i, n in enumerate(layout.names)}
    out = np.full((len(rows), len(names)), np.nan)
    for j, n in enumerate(names):
        if n in where:
            out[:, j] = rows[:, where[n]]
    return out
