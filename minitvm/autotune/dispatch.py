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

import threading
import warnings

from ..target import Target
from . import tophub
from .history import TuningHistory
from .knob import ConfigError
from .space import FallbackConfig
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


class ApplyHistoryBest(TuningHistory, DispatchContext):
    """Answer the best valid measured config per workload from tuning logs (see
    :class:`~minitvm.autotune.history.TuningHistory` for which record is best).

    ``records``: a log path, a list of paths, or a list of ``(MeasureInput, MeasureResult)``
    pairs (as from :func:`~minitvm.autotune.record.load_records`).
    """

    def __init__(self, records):
        DispatchContext.__init__(self)
        TuningHistory.__init__(self, records)

    def _query_inside(self, target, workload):
        return self.lookup(target, workload)
