"""The best logged config of each workload: :class:`TuningHistory` reads tuning logs (or
records) and answers, per (target, workload), the best valid measured config that still fits
the template's space. ``ApplyHistoryBest`` (:mod:`minitvm.autotune.dispatch`) applies one;
:mod:`minitvm.autotune.tophub` holds one over the shipped logs."""
from __future__ import annotations

import math
import threading

from .record import load_records
from .knob import ConfigError
from ..target import Target
from .task import TaskError, workload_key

__all__ = ["TuningHistory"]


def _record_cost(res) -> float:
    costs = [c for c in res.costs if c is not None]
    return float(sum(costs) / len(costs)) if costs else math.inf


class TuningHistory:
    """The best valid measured config per workload of tuning logs.

    ``records``: a log path, a list of paths, or a list of ``(MeasureInput, MeasureResult)``
    pairs (as from :func:`~minitvm.autotune.record.load_records`). The best record is the one
    with the lowest mean cost among those without error; records of the target asked for come
    first, then records of the same target kind (``cuda``), then any. Knobs a record lacks (added
    to the template after it was written) take their first value, which reproduces the earlier
    behaviour; a record whose values no longer fit the template's space (a knob or a value was
    removed) is passed over for the next best.
    """

    def __init__(self, records):
        self._by_workload: dict = {}     # workload key -> [(cost, target, MeasureInput)] sorted
        self._resolved: dict = {}        # (target, workload key) -> ConfigEntity | None
        self._lock = threading.Lock()
        self.load(records)

    def load(self, records) -> None:
        """Add records (path, list of paths, or list of pairs)."""
        if isinstance(records, (str, bytes)) or hasattr(records, "__fspath__"):
            records = load_records(records)
        else:
            records = list(records)
            if records and not isinstance(records[0], tuple):
                flat = []
                for path in records:
                    flat.extend(load_records(path))
                records = flat
        for inp, res in records:
            if int(res.error_no) != 0:
                continue
            cost = _record_cost(res)
            if not math.isfinite(cost):
                continue
            key = inp.task.workload_key
            self._by_workload.setdefault(key, []).append((cost, str(inp.target), inp))
        for lst in self._by_workload.values():
            lst.sort(key=lambda t: t[0])
        self._resolved.clear()

    @property
    def workloads(self) -> list:
        """The workload keys that have a valid record."""
        return list(self._by_workload)

    def lookup(self, target, workload):
        """The best config these records hold for ``workload`` on ``target``, or None."""
        wkey = workload_key(workload)
        rkey = (None if target is None else str(target), wkey)
        with self._lock:
            if rkey in self._resolved:
                return self._resolved[rkey]
        config = None
        for _cost, _tgt, inp in self._candidates(wkey, target):
            try:
                space = inp.task.config_space
                config = space.get(space.index_of(inp.config.values, fill_missing=True))
                break
            except (ConfigError, TaskError):
                continue
        with self._lock:
            self._resolved[rkey] = config
        return config

    def best(self, workload, target=None):
        """``(cost, MeasureInput)`` of the best record for ``workload`` (and ``target``), or None."""
        cands = self._candidates(workload_key(workload), target)
        return (cands[0][0], cands[0][2]) if cands else None

    def _candidates(self, wkey: str, target) -> list:
        lst = self._by_workload.get(wkey, [])
        if target is None:
            return lst
        exact = [c for c in lst if c[1] == str(target)]
        kind = Target(target).kind
        same_kind = [c for c in lst if c[1] != str(target) and Target(c[1]).kind == kind]
        return exact + same_kind
