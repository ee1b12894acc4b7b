"""Tuning a whole model: find the tunable kernels of a graph and tune them into one log.

    from minitvm.graph import tune
    tasks = tune.extract_tasks(graph, target="cuda")          # conv2d / dense tasks, deduplicated
    tune.tune_graph(graph, "model.log", target="cuda", n_trial=200)
    with autotune.ApplyHistoryBest("model.log"):
        model = build(graph, target="cuda")

Extraction schedules every fused group exactly as :func:`~minitvm.graph.build.build` does
(same passes, same layouts, same epilogue fusion) under a context that records which templates
ask for a config, so the tasks found are the workloads the build will look up. Nothing is
compiled and no GPU is needed. On ``llvm`` the tasks are the CPU templates (``conv2d_NCHWc.x86``,
``conv2d_NCHWc_int8.x86``, ``dense_packed.x86`` ...), tuned on the host CPU.
"""
from __future__ import annotations

import collections
import math
import os

from ..errors import ArgumentError
from .. import autotune
from ..autotune import tophub
from ..autotune.dispatch import DispatchContext
from ..autotune.space import FallbackConfig
from ..target import Target
from .lowering import lowered_groups, optimize

__all__ = ["extract_tasks", "tune_graph", "tune_tasks", "default_config"]


class _TaskRecorder(DispatchContext):
    """Answers every query with the template's default config and remembers the workloads."""

    def __init__(self):
        super().__init__()
        self.workloads: list = []

    def _query_inside(self, target, workload):
        self.workloads.append(tuple(workload))
        return FallbackConfig()


def extract_tasks(graph, target: str = "cuda", optimize_graph: bool = True, counts: bool = False):
    """The distinct tunable tasks of ``graph`` built for ``target``, in execution order.

    With ``counts=True`` returns ``[(task, n)]``: ``n`` is how many kernels of the model share
    the task's workload (its weight when summing tuned time over the model).
    """
    if optimize_graph:
        graph = optimize(graph, target)
    recorder = _TaskRecorder()
    with recorder:
        for _ in lowered_groups(graph, Target(target)):
            pass
    seen = collections.Counter(recorder.workloads)
    tasks, done = [], set()
    for wl in recorder.workloads:
        if wl in done:
            continue
        done.add(wl)
        task = autotune.Task(wl[0], wl[1:], target=target)
        tasks.append((task, seen[wl]) if counts else task)
    return tasks


def tune_graph(graph, log, target: str = "cuda", n_trial: int = 200, tuner: str = "ga",
               measure_option=None, early_stopping: int | None = None, seed: int = 0, progress: bool = True,
               optimize_graph: bool = True, history=()) -> list:
    """Tune every task of ``graph`` for ``target`` with up to ``n_trial`` trials each, appending
    every trial to the JSON-lines ``log``; returns ``[(task, best cost in seconds or inf)]``.

    ``tuner``: a name in ``autotune.TUNERS``: ``"ga"`` (genetic, the default), ``"model"``
    (ridge cost model) or ``"random"``. ``measure_option`` defaults to a
    :class:`~minitvm.autotune.LocalBuilder` (one process per CPU) and a
    :class:`~minitvm.autotune.LocalRunner` that checks each candidate against numpy where the
    template has a reference. Tasks that already have ``n_trial`` trials in ``log`` are
    skipped, so an interrupted run resumes where it stopped; a task with fewer starts from
    them (the tuner's ``load_history``) and does not measure them again. ``history``: more
    tuning logs (paths) whose trials of the same tasks the search starts from, unmeasured.
    A task's first trial is the config minitvm ships for it (``autotune.tophub``), where there
    is one: the log's best is then never slower than what a build would use without the log.
    """
    missing = [os.fspath(p) for p in history if not os.path.exists(p)]
    if missing:
        raise ArgumentError(f"tune_graph: history log {missing[0]!r} does not exist")
    return tune_tasks(extract_tasks(graph, target, optimize_graph), log, n_trial, tuner, measure_option,
                      early_stopping, seed, progress, history, name="tune_graph")


def tune_tasks(tasks, log, n_trial: int = 200, tuner: str = "ga", measure_option=None,
               early_stopping: int | None = None, seed: int = 0, progress: bool = True, history=(),
               first_default: bool = False, name: str = "tune_tasks") -> list:
    """Tune ``tasks`` (as :func:`tune_graph` does for a graph's) into ``log``. With
    ``first_default``, a task that has no shipped config measures its template's default config
    first, so the log's best is never slower than the default."""
    if tuner not in autotune.TUNERS:
        raise ArgumentError(f"{name}: unknown tuner {tuner!r}; choose one of {sorted(autotune.TUNERS)}")
    if n_trial < 1:
        raise ArgumentError(f"{name}: n_trial must be positive, got {n_trial}")
    if measure_option is None:
        measure_option = autotune.measure_option(autotune.LocalBuilder(),
                                                 autotune.LocalRunner(check_correctness=True))
    records = autotune.load_records(log) if os.path.exists(log) else []
    earlier = [rec for path in history for rec in autotune.load_records(path)]
    logged = collections.Counter((Target(inp.target).kind, inp.task.workload_key) for inp, _ in records)
    best_logged = autotune.ApplyHistoryBest(records)
    results = []
    for k, task in enumerate(tasks):
        best = best_logged.best(task.workload, task.target)
        before = best[0] if best else math.inf
        left = n_trial - logged[(Target(task.target).kind, task.workload_key)]
        if left <= 0:
            results.append((task, before))
            continue
        starts = []
        first = tophub.shipped_config(task) if left == n_trial else None
        if first is None and first_default and left == n_trial:
            first = default_config(task)
        if first is not None:
            measure = autotune.create_measure_batch(task, measure_option)
            inputs = [autotune.MeasureInput(measure.target, task, first)]
            starts = list(zip(inputs, measure(inputs)))
            autotune.log_to_file(log)(None, inputs, [r for _, r in starts])
            if starts[0][1].ok:
                before = min(before, starts[0][1].mean)
            left -= 1
        t = autotune.TUNERS[tuner](task, seed=seed + k)
        t.load_history(records + starts + earlier)
        if left > 0:
            callbacks = [autotune.log_to_file(log)]
            if progress:
                callbacks.append(autotune.progress_bar(left, prefix=f"[{k + 1}/{len(tasks)}] {task.name}",
                                                       worker_rates=getattr(measure_option.runner, "worker_rates",
                                                                            None)))
            t.tune(left, measure_option, early_stopping=early_stopping, callbacks=callbacks)
        results.append((task, min(t.best_cost, before)))
    return results


def default_config(task):
    """The point of ``task``'s space that its template falls back to without a tuned config
    (None if the default is not a point of the space)."""
    fallback = FallbackConfig()
    task.template.func(fallback, *task.args)
    index = getattr(fallback, "index", -1)
    return task.config_space.get(index) if index is not None and index >= 0 else None
