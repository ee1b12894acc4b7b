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

import numpy as np

from .knob import AnnotateSpace, OtherOptionSpace, ReorderSpace, SplitSpace

__all__ = ["feature_names", "config_features", "feature_matrix"]


def _log2(x) -> float:
    return math.log2(x) if x > 0 else 0.0


def _option_value(sp: OtherOptionSpace, value) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    return float(sp.index_of(value))


def _features(space, values: dict, flop: float) -> dict:
    """``{name: value}`` of one config's plain knob ``values`` (every knob of ``space`` present)."""
    out: dict = {}
    levels: dict = {}            # split arity -> [sum of log2 part i over those splits]
    extents: dict = {}           # split arity -> sum of log2 extents
    for name, sp in space.space_map.items():
        v = values[name]
        if isinstance(sp, SplitSpace):
            parts = [_log2(p) for p in v]
            total = _log2(sp.extent)
            for i, p in enumerate(parts):
                out[f"{name}.{i}"] = p
                out[f"{name}.{i}/"] = p / total if total > 0 else 0.0
            out[f"{name}:extent"] = total
            acc = levels.setdefault(len(parts), [0.0] * len(parts))
            for i, p in enumerate(parts):
                acc[i] += p
            extents[len(parts)] = extents.get(len(parts), 0.0) + total
        elif isinstance(sp, ReorderSpace):
            for i, p in enumerate(v):
                out[f"{name}.{i}"] = float(p)
        elif isinstance(sp, AnnotateSpace):
            for i, a in enumerate(v):
                out[f"{name}.{i}"] = AnnotateSpace._CODES[a]
        else:
            out[name] = _option_value(sp, v)
    for arity, acc in levels.items():
        for i, p in enumerate(acc):
            out[f"loop{arity}.{i}"] = p
            out[f"loop{arity}.{i}+"] = sum(acc[i:])
            if i >= 1 and arity > 2:
                out[f"loop{arity}.1+-{i}"] = sum(acc[1:]) - p
        out[f"loop{arity}:extent"] = extents[arity]
    out["log2_flop"] = _log2(flop)
    return out


def feature_names(task) -> list:
    """The feature names of configs of ``task`` (a :class:`~.task.Task`), in a fixed order."""
    return list(_features(task.config_space, task.config_space.get(0).values, task.flop))


def config_features(task, config) -> dict:
    """``{name: value}`` of ``config`` (a config of ``task``'s space, or a dict of plain knob
    values; knobs missing from the dict take their first value, as in logs older than the knob)."""
    space = task.config_space
    values = config if isinstance(config, dict) else config.values
    if any(name not in values for name in space.space_map):
        values = dict(values)
        for name, sp in space.space_map.items():
            values.setdefault(name, sp.get(0).value)
    return _features(space, values, task.flop)


def feature_matrix(task, configs, names) -> np.ndarray:
    """Features of ``configs`` (configs or plain value dicts of ``task``) as float64 rows whose
    columns follow ``names``; a feature the task does not have is NaN."""
    rows = [config_features(task, c) for c in configs]
    return np.asarray([[r.get(n, math.nan) for n in names] for r in rows], np.float64).reshape(len(rows), len(names))
