"""Which config a template uses when it is called outside tuning.

A template called without ``cfg`` asks ``DispatchContext.current().query(target, workload)``.
Contexts nest (``with``); one that has no answer asks the one it was entered in, down to the
root :class:`FallbackContext`, which answers from the tuned configs that ship with minitvm
(:mod:`minitvm.autotune.tophub`) or else a :class:`~minitvm.autotune.space.FallbackConfig` (the
template's sound default), warning once per workload that nothing was tuned for it.

    with autotune.ApplyHistoryBest("conv.log"):
        s, args = conv2d_NCHWc_int8_template(data_shape, kernel_shape, 1, 1)   # the best logged config
"""
from __future__ import annotations

import math
import threading
import warnings

from ..target import Target
from .space import ConfigError, FallbackConfig
from .task import TaskError, workload_key

__all__ = ["DispatchContext", "ApplyConfig", "ApplyHistoryBest", "FallbackContext", "FallbackConfigWarning"]


class FallbackConfigWarning(UserWarning):
    """No tuned config was found for a workload; the template's default is used."""


_state = threading.local()


class DispatchContext:
    """Base of dispatch contexts: ``query(target, workload)`` answers a config.

    Subclasses implement ``_query_inside`` (return ``None`` to defer to the enclosing context).
    """

    def __init__(self):
        self._parent = None

    @staticmethod
    def current() -> "DispatchContext":
        """The innermost context entered on this thread (the root fallback when none is)."""
        stack = getattr(_state, "stack", None)
        return stack[-1] if stack else _ROOT

    def query(self, target, workload):
        """The config for ``workload`` (a tuple ``(template name, *args)``) on ``target``."""
        cfg = self._query_inside(target, tuple(workload))
        if cfg is None:
            parent = self._parent if self._parent is not None else _ROOT
            if parent is self:
                raise ConfigError("the root dispatch context has no answer")  # pragma: no cover
            cfg = parent.query(target, workload)
        return cfg

    def _query_inside(self, target, workload):
        raise NotImplementedError

    def __enter__(self):
        stack = getattr(_state, "stack", None)
        if stack is None:
            stack = _state.stack = []
        self._parent = stack[-1] if stack else _ROOT
        stack.append(self)
        return self

    def __exit__(self, *exc):
        stack = _state.stack
        if not stack or stack[-1] is not self:
            raise ConfigError("dispatch contexts must be exited in the order they were entered")
        stack.pop()
        self._parent = None
        return False


class ApplyConfig(DispatchContext):
    """Answer ``config`` for every workload (e.g. to build one measured config by hand)."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def _query_inside(self, target, workload):
        return self.config


class FallbackContext(DispatchContext):
    """The root context: the shipped tuned config of a workload (``tophub``, unless
    ``use_tophub`` is false or ``MINITVM_TOPHUB=0``), else a fresh :class:`FallbackConfig`
    with a :class:`FallbackConfigWarning` the first time each (target, workload) is seen."""

    def __init__(self, use_tophub: bool = True):
        super().__init__()
        self.use_tophub = use_tophub
        self._warned: set = set()
        self._lock = threading.Lock()

    def _query_inside(self, target, workload):
        from . import tophub
        if self.use_tophub and tophub.enabled():
            config = tophub.context().lookup(target, workload)
            if config is not None:
                return config
        key = (None if target is None else Target(target).kind, workload_key(workload))
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            name, args = workload[0], workload[1:]
            warnings.warn(f"autotune: no tuned config for {name}{args!r} on target {target}; using the "
                          "template's default config, which may be much slower (tune it and apply the "
                          "log with autotune.ApplyHistoryBest)", FallbackConfigWarning, stacklevel=4)
        return FallbackConfig()

    def reset(self) -> None:
        """Forget which workloads were warned about."""
        with self._lock:
            self._warned.clear()


_ROOT = FallbackContext()


def _record_cost(res) -> float:
    costs = [c for c in res.costs if c is not None]
    return float(sum(costs) / len(costs)) if costs else math.inf


class ApplyHistoryBest(DispatchContext):
    """Answer the best valid measured config per workload from tuning logs.

    ``records``: a log path, a list of paths, or a list of ``(MeasureInput, MeasureResult)``
    pairs (as from :func:`~minitvm.autotune.record.load_records`). The best record is the one
    with the lowest mean cost among those without error; records of the target asked for come
    first, then records of the same target kind (``cuda``), then any. Knobs a record lacks (added
    to the template after it was written) take their first value, which reproduces the earlier
    behaviour; a record whose values no longer fit the template's space (a knob or a value was
    removed) is passed over for the next best.
    """

    def __init__(self, records):
        super().__init__()
        self._by_workload: dict = {}     # workload key -> [(cost, target, MeasureInput)] sorted
        self._resolved: dict = {}        # (target, workload key) -> ConfigEntity | None
        self._lock = threading.Lock()
        self.load(records)

    def load(self, records) -> None:
        """Add records (path, list of paths, or list of pairs)."""
        from .record import load_records
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
        """The best config these records hold for ``workload`` on ``target``, or None (no
        enclosing context is asked)."""
        return self._query_inside(target, tuple(workload))

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

    def _query_inside(self, target, workload):
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

