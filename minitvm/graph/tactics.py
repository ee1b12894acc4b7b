"""Build-time tactic selection: time a few configs of each untuned kernel, keep the fastest.

TensorRT times candidate kernels ("tactics") per layer while it builds; ``build(graph, "cuda",
tactics=K)`` does the same for the workloads that neither the current dispatch context (a
user's ``ApplyHistoryBest``) nor the shipped configs (``autotune.tophub``) answer:

- each such task measures its template's default config first, then ``K - 1`` more that the
  model tuner proposes (:class:`~minitvm.autotune.ModelTuner`; its ridge model ranks candidates
  once it has trials to learn from, so with few trials the proposals are the genetic search's),
  every candidate checked against numpy where the template has a reference;
- every trial goes to a per-device cache in the tuning-log format (``tactics/<device>.log``
  under :func:`~minitvm.runtime.cache.cache_root`), and a task that already has ``K`` trials
  there is not measured again: a second build of the same model costs no measurement;
- the build then takes the cache's best config for those tasks only, so a user's own log and
  the shipped configs keep precedence.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..autotune import ApplyHistoryBest, tophub
from ..autotune.dispatch import DispatchContext
from ..errors import BuildError
from ..runtime.cache import cache_root, usable_cache_dir
from ..target import Target
from .tune import extract_tasks, tune_tasks

__all__ = ["untuned_tasks", "select_tactics", "tactics_cache_path", "TacticsContext"]

def tactics_cache_path(device: str) -> Path:
    """The tactics cache of ``device`` (its name, e.g. ``"NVIDIA H200"``), under
    :func:`~minitvm.runtime.cache.cache_root`."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", device).strip("_").lower() or "device"
    return cache_root() / "tactics" / f"{slug}.log"


def untuned_tasks(graph, target, optimize_graph: bool = True) -> list:
    """The tasks of ``graph`` on ``target`` that would build with their template's default:
    no config from the current dispatch context, none shipped."""
    out = []
    context = DispatchContext.current()
    for task in extract_tasks(graph, target, optimize_graph):
        if tophub.shipped_config(task) is not None:
            continue
        if not getattr(context.query(task.target, task.workload), "is_fallback", False):
            continue
        out.append(task)
    return out


class TacticsContext(ApplyHistoryBest):
    """The best config of the tactics cache, for the selected workloads only."""

    def __init__(self, log, workloads):
        super().__init__(log)
        self.selected = {tuple(w) for w in workloads}

    def _query_inside(self, target, workload):
        if tuple(workload) not in self.selected:
            return None
        return super()._query_inside(target, workload)


def select_tactics(graph, target, k: int, cache=None, measure_option=None, progress: bool = True,
                   optimize_graph: bool = True) -> TacticsContext | None:
    """Time up to ``k`` configs of each untuned task of ``graph`` on ``target`` (see the module
    docstring) and return the dispatch context that applies the winners (None: nothing to do).

    ``cache``: the tuning log to use (default: this device's :func:`tactics_cache_path`);
    ``measure_option``: the builder and runner (default: local, checked against numpy)."""
    if int(k) != k or k < 1:
        raise BuildError(f"tactics: k must be a positive number of configs per kernel, got {k!r}")
    target = Target(target)
    tasks = untuned_tasks(graph, target, optimize_graph)
    if not tasks:
        return None
    if cache is None:
        if target.kind != "cuda":
            raise BuildError(f"tactics: timing candidates needs a CUDA device; target {target} has untuned "
                             "kernels but no device to time them on (give cache= a tuning log)")
        from ..runtime import cuda
        if cuda.device_count() == 0:
            raise BuildError(f"tactics: no CUDA device to time the candidates on ({cuda.unavailable_reason()})")
        cache = tactics_cache_path(cuda.device_name(0))
        if not usable_cache_dir(cache.parent):
            raise BuildError(f"tactics: the cache directory {cache.parent} cannot be used (see the warning); "
                             "give tactics_cache= a log path")
    cache = Path(cache)
    tune_tasks(tasks, os.fspath(cache), n_trial=int(k), tuner="model", measure_option=measure_option,
               progress=progress, first_default=True, name="tactics")
    return TacticsContext(os.fspath(cache), [t.workload for t in tasks])
