"""Tuners: which configs to measure next.

Every tuner shares :meth:`Tuner.tune`, the measurement loop. A tuner only decides what to try:
``next_batch(n)`` proposes up to ``n`` configs never proposed before, and ``update(inputs,
results)`` hears how they did — a model-based tuner (a cost model over ``config.features()``)
overrides these two and inherits the loop.
"""
from __future__ import annotations

import logging
import math
import os
import random
import time

from ..errors import ArgumentError
from ..target import Target
from .features import feature_matrix, feature_names, readable_feature_matrix
from .gbt import BoostedTrees
from .knob import ConfigError
from .measure import create_measure_batch
from .record import load_records
from .result import MeasureInput

__all__ = ["Tuner", "RandomTuner", "GridSearchTuner", "GATuner", "ModelTuner", "GBTTuner", "TUNERS"]

logger = logging.getLogger("minitvm.autotune")


class Tuner:
    """Base tuner over ``task.config_space``; tracks the best config measured so far.

    Attributes after (or during) :meth:`tune`: ``best_config``, ``best_cost`` (seconds),
    ``best_flops`` (operations per second), ``best_measure_pair`` ``(input, result)``,
    ``best_iter`` (trial number of the best), ``trials`` (trials measured), ``n_errors``,
    ``trials_per_second`` of the last ``tune`` call.
    """

    def __init__(self, task):
        self.task = task
        self.space = task.config_space
        self.best_config = None
        self.best_cost = math.inf
        self.best_flops = 0.0
        self.best_measure_pair = None
        self.best_iter = -1
        self.trials = 0
        self.n_errors = 0
        self.trials_per_second = 0.0
        self.tune_seconds = 0.0

    # ---- what a tuner decides
    def has_next(self) -> bool:
        """Whether some config has not been proposed yet."""
        raise NotImplementedError

    def next_batch(self, batch_size: int) -> list:
        """Up to ``batch_size`` configs (ConfigEntity) never proposed before."""
        raise NotImplementedError

    def update(self, inputs, results) -> None:
        """Learn from measured ``inputs`` and their ``results`` (nothing, for model-free tuners)."""

    # ---- the loop
    def tune(self, n_trial: int, measure_option, early_stopping: int | None = None, callbacks=(),
             pipeline: bool | None = None):
        """Measure up to ``n_trial`` configs, ``n_parallel`` (the builder's) at a time.

        Stops early when the space is exhausted or when ``early_stopping`` trials passed without
        a better config. After each batch every callback is called as ``cb(tuner, inputs,
        results)``; a callback's ``start(tuner)`` method, if any, is called before the first
        batch and its ``close()`` at the end. ``pipeline``
        builds the next batch while the current one is timed (default: on for ``cuda``, where
        timing happens on the GPU; off for ``llvm``, where builds would disturb CPU timings).
        Returns the best config (None if no trial succeeded).
        """
        measure = create_measure_batch(self.task, measure_option)
        n_parallel = max(1, int(measure.n_parallel))
        if pipeline is None:
            pipeline = Target(measure.target).kind == "cuda"
        stop_after = early_stopping if early_stopping is not None else math.inf
        t0 = time.perf_counter()
        done = 0
        pending = None

        def start_batch(limit):
            configs = self.next_batch(min(n_parallel, limit)) if limit > 0 and self.has_next() else []
            if not configs:
                return None
            inputs = [MeasureInput(measure.target, self.task, c) for c in configs]
            return inputs, measure.submit(inputs)

        try:
            for cb in callbacks:
                begin = getattr(cb, "start", None)
                if begin is not None:
                    begin(self)
            pending = start_batch(n_trial)
            while pending is not None:
                inputs, builds = pending
                pending = None
                if pipeline:
                    builds.result()
                    pending = start_batch(n_trial - done - len(inputs))
                results = measure.run(inputs, builds)
                for k, (inp, res) in enumerate(zip(inputs, results)):
                    self._record(self.trials + k, inp, res)
                done += len(results)
                self.trials += len(results)
                self.update(inputs, results)
                for cb in callbacks:
                    cb(self, inputs, results)
                if self.best_iter >= 0 and self.trials - 1 - self.best_iter >= stop_after:
                    logger.info("early stopping: %d trials without improvement", stop_after)
                    break
                if self.best_iter < 0 and done >= stop_after:
                    break
                if pending is None:
                    pending = start_batch(n_trial - done)
        finally:
            if pending is not None:
                pending[1].cancel()
            for cb in callbacks:
                close = getattr(cb, "close", None)
                if close is not None:
                    close()
            self.tune_seconds = time.perf_counter() - t0
            self.trials_per_second = done / self.tune_seconds if self.tune_seconds > 0 else 0.0
        return self.best_config

    def _record(self, i, inp, res) -> None:
        if res.ok:
            cost = res.mean
            flops = self.task.flop / cost if cost > 0 else 0.0
            if cost < self.best_cost:
                self.best_cost, self.best_flops = cost, flops
                self.best_config, self.best_measure_pair, self.best_iter = inp.config, (inp, res), i
            logger.debug("trial %d: %.4g ms, %.2f GFLOP/s, %s", i, cost * 1e3, flops / 1e9, inp.config)
        else:
            self.n_errors += 1
            logger.debug("trial %d: %s %s (%s)", i, res.error_no.name, inp.config, res.error_msg)


class _SamplingTuner(Tuner):
    """Shared bookkeeping: proposed indices are never proposed again; configs rejected by the
    space's ``multi_filter`` are skipped without being measured."""

    max_skips = 100_000

    def __init__(self, task):
        super().__init__(task)
        self.visited: set = set()
        self.n_skipped = 0
        self._size = len(self.space)
        self._exhausted = self._size == 0

    def has_next(self) -> bool:
        """Whether an unproposed config remains."""
        return not self._exhausted and len(self.visited) < self._size

    def _candidate(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def load_history(self, records) -> int:
        """Start from earlier measurements of this task: ``records`` are ``(MeasureInput,
        MeasureResult)`` pairs, e.g. :func:`~minitvm.autotune.record.load_records` of a log.

        Records of another workload or target kind are ignored, and so are configs the
        current space no longer holds or its filters reject. The rest are never proposed
        again and are passed to :meth:`update`, so the genetic and model-based tuners breed
        and learn from them. The best config stays what this run measures. Returns how many
        records were used."""
        kind = Target(self.task.target).kind
        inputs, results = [], []
        for inp, res in records:
            if inp.task.workload != self.task.workload or Target(inp.target).kind != kind:
                continue
            try:
                config = self.space.get(self.space.index_of(inp.config.values, fill_missing=True))
            except ConfigError:
                continue
            if not self.space.is_valid(config):
                continue
            self.visited.add(config.index)
            inputs.append(MeasureInput(inp.target, self.task, config))
            results.append(res)
        if inputs:
            self.update(inputs, results)
        return len(inputs)

    def next_batch(self, batch_size: int) -> list:
        """Up to ``batch_size`` new, valid configs."""
        out = []
        skips = 0
        while len(out) < batch_size:
            idx = self._candidate()
            if idx is None:
                self._exhausted = True
                break
            self.visited.add(idx)
            config = self.space.get(idx)
            if not self.space.is_valid(config):
                self.n_skipped += 1
                skips += 1
                if skips >= self.max_skips:
                    logger.warning("%s: %d configs in a row rejected by the space's filters; giving up",
                                   type(self).__name__, skips)
                    self._exhausted = True
                    break
                continue
            out.append(config)
        return out


class RandomTuner(_SamplingTuner):
    """Configs drawn uniformly at random without replacement (never repeats); ``seed`` makes
    the order reproducible."""

    def __init__(self, task, seed=None):
        super().__init__(task)
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2 ** 32)
        self._rng = random.Random(self.seed)
        self._rest = None   # explicit shuffled list once most of the space is visited

    def _candidate(self):
        n = self._size
        while True:
            if self._rest is not None:
                while self._rest:
                    idx = self._rest.pop()
                    if idx not in self.visited:
                        return idx
                return None
            if len(self.visited) >= n:
                return None
            if 2 * len(self.visited) >= n:
                # rejection sampling gets slow: shuffle what is left (the space is small by now)
                self._rest = [i for i in range(n) if i not in self.visited]
                self._rng.shuffle(self._rest)
                continue
            idx = self._rng.randrange(n)
            if idx not in self.visited:
                return idx


class GridSearchTuner(_SamplingTuner):
    """Configs in index order: 0, 1, 2, ..."""

    def __init__(self, task):
        super().__init__(task)
        self._next = 0

    def _candidate(self):
        while self._next < self._size:
            idx = self._next
            self._next += 1
            if idx not in self.visited:
                return idx
        return None


class GATuner(RandomTuner):
    """Genetic search (after AutoTVM's ``GATuner``): the first ``pop_size`` configs are random;
    after that each new config is a child of two parents drawn from the ``pop_size`` fastest
    measured so far (weighted by speed): every knob comes from one parent or the other, and is
    redrawn at random with probability ``mutation_prob``. Never repeats a config; configs the
    space's filters reject are skipped; when no new child turns up it falls back to a random
    config. ``seed`` makes it reproducible for a given sequence of results."""

    def __init__(self, task, pop_size: int = 32, mutation_prob: float = 0.1, seed=None):
        super().__init__(task, seed=seed)
        if pop_size < 2:
            raise ArgumentError(f"GATuner: pop_size must be at least 2, got {pop_size}")
        if not 0.0 <= mutation_prob <= 1.0:
            raise ArgumentError(f"GATuner: mutation_prob must lie in [0, 1], got {mutation_prob}")
        self.pop_size, self.mutation_prob = int(pop_size), float(mutation_prob)
        self._radix = [len(sp) for sp in self.space.space_map.values()]
        self._scored: list = []          # (operations per second, index) of measured configs

    def update(self, inputs, results) -> None:
        """Keep the speed of each measured config (failures score 0)."""
        for inp, res in zip(inputs, results):
            score = self.task.flop / res.mean if res.ok and res.mean > 0 else 0.0
            self._scored.append((score, inp.config.index))
        self._scored.sort(key=lambda t: -t[0])
        del self._scored[self.pop_size:]

    def _candidate(self):
        parents = [(s, i) for s, i in self._scored if s > 0]
        if len(parents) >= 2 and len(self.visited) >= self.pop_size:
            weights = [s for s, _ in parents]
            for _ in range(64):
                a, b = self._rng.choices(parents, weights=weights, k=2)
                da, db = self.space.knob_indices(a[1]), self.space.knob_indices(b[1])
                child = [x if self._rng.random() < 0.5 else y for x, y in zip(da, db)]
                for k, r in enumerate(self._radix):
                    if self._rng.random() < self.mutation_prob:
                        child[k] = self._rng.randrange(r)
                idx = self.space.index_from_knobs(child)
                if idx not in self.visited:
                    return idx
        return super()._candidate()


class ModelTuner(GATuner):
    """Model-based search (after AutoTVM's cost-model tuner, with a ridge regression instead of
    boosted trees): the first ``plan_size`` configs are random; after each batch a linear model
    of log run time over ``space.features`` (log2 split extents, knob values) and their squares
    is refit on every trial so far (failures count as twice the slowest time), and the next
    batch is the configs it predicts fastest among ``pool_size`` new candidates that
    :class:`GATuner` proposes (children of fast configs, and random ones), plus a share
    ``epsilon`` of the pool drawn at random to keep exploring. Never repeats a
    config; ``seed`` makes it reproducible for a given sequence of results.

    Another cost model plugs in by overriding ``_featurize`` (feature rows of configs),
    ``predict`` and ``_ready`` (whether ``predict`` can rank yet)."""

    def __init__(self, task, plan_size: int = 32, pool_size: int = 256, epsilon: float = 0.1, l2: float = 1.0,
                 mutation_prob: float = 0.1, seed=None):
        super().__init__(task, pop_size=plan_size, mutation_prob=mutation_prob, seed=seed)
        name = type(self).__name__
        if pool_size < 1:
            raise ArgumentError(f"{name}: pool_size must be positive, got {pool_size}")
        if not 0.0 <= epsilon <= 1.0:
            raise ArgumentError(f"{name}: epsilon must lie in [0, 1], got {epsilon}")
        self.pool_size, self.epsilon, self.l2 = int(pool_size), float(epsilon), float(l2)
        self._features: list = []        # per measured trial
        self._log_costs: list = []       # log seconds, None for failures

    def _featurize(self, configs) -> list:
        """Feature rows of ``configs`` for the model."""
        return [self.space.features(c) for c in configs]

    def update(self, inputs, results) -> None:
        """Record each trial's features and log run time (and the GA's population)."""
        super().update(inputs, results)
        self._features.extend(self._featurize([inp.config for inp in inputs]))
        self._log_costs.extend(math.log(res.mean) if res.ok and res.mean > 0 else None for res in results)

    def _targets(self):
        """Log run time of every trial so far, failures at twice the slowest (None: no success yet)."""
        return _with_failures(self._log_costs)

    def _ready(self) -> bool:
        """Whether the model has ``plan_size`` successful trials to learn from."""
        return sum(c is not None for c in self._log_costs) >= self.pop_size

    def _fit(self):
        """Weights and normalisation of the ridge model, or None before ``plan_size`` successes."""
        import numpy as np
        if not self._ready():
            return None
        X = np.asarray(self._features, np.float64)
        y = np.asarray(self._targets())
        mu, sd = X.mean(0), X.std(0) + 1e-9
        A = self._design((X - mu) / sd)
        w = np.linalg.solve(A.T @ A + self.l2 * np.eye(A.shape[1]), A.T @ y)
        return w, mu, sd

    @staticmethod
    def _design(Z):
        import numpy as np
        # squares let the model place an optimum inside a knob's range (a best tile size)
        return np.hstack([Z, Z ** 2, np.ones((Z.shape[0], 1))])

    def predict(self, configs) -> list:
        """Predicted log run time of ``configs`` (None before the model is fit)."""
        import numpy as np
        model = self._fit()
        if model is None:
            return None
        w, mu, sd = model
        X = np.asarray(self._featurize(configs), np.float64)
        return (self._design((X - mu) / sd) @ w).tolist()

    def next_batch(self, batch_size: int) -> list:
        """The ``batch_size`` most promising new configs of a pool (the genetic proposer's
        until the model is ready to rank)."""
        if not self._ready():
            return super().next_batch(batch_size)
        pool = super().next_batch(max(self.pool_size, batch_size))
        if len(pool) <= batch_size:
            return pool
        pred = self.predict(pool)
        order = sorted(range(len(pool)), key=lambda k: pred[k])
        n_explore = min(batch_size, int(round(self.epsilon * batch_size)))
        chosen = order[:batch_size - n_explore]
        rest = order[batch_size - n_explore:]
        chosen += self._rng.sample(rest, n_explore)
        keep = {pool[k].index for k in chosen}
        returned = [c.index for c in pool if c.index not in keep]
        for idx in returned:   # the candidates not taken may be proposed later
            self.visited.discard(idx)
        if self._rest is not None:   # the random proposer's list of what is left
            self._rest.extend(returned)
        self._exhausted = False
        return [pool[k] for k in chosen]


class GBTTuner(ModelTuner):
    """Model-based search with gradient-boosted trees (after AutoTVM's ``XGBTuner``) that can
    start from the trials of other tasks.

    Like :class:`ModelTuner` it ranks a pool of the genetic proposer's candidates and measures
    the best, plus a share ``epsilon`` at random; its model is :class:`~.gbt.BoostedTrees`
    (lightgbm when installed, else numpy; ``backend``) over the named features of
    :mod:`~.features` (knob values, loop levels of the splits, the shape), refit after each
    batch on this task's trials. ``objective``: ``"regression"`` (log run time relative to the
    task's mean: the same units in every task, so a base model and a task's correction add up)
    or ``"rank"`` (only the order within a task; worse on the replayed H200 logs, see
    ``docs/autotune.md``).

    ``history``: tuning logs (paths) or ``(MeasureInput, MeasureResult)`` records, read as
    :meth:`load_history` reads them: trials of this task's workload are never proposed again and
    train the model; trials of *other* workloads of the same template and target kind (other
    layers, other models) train a base model once, and this task's model then learns a
    correction of the base model's scores from its own trials, as they come. With a base model
    the very first batch is already ranked; without one, the first ``plan_size`` successful
    configs are the genetic proposer's (random at first). Never repeats a config; ``seed``
    makes it reproducible for a given sequence of results.
    """

    def __init__(self, task, history=(), objective: str = "regression", backend: str = "auto", plan_size: int = 32,
                 pool_size: int = 256, epsilon: float = 0.1, n_trees: int = 100, mutation_prob: float = 0.1,
                 seed=None):
        super().__init__(task, plan_size=plan_size, pool_size=pool_size, epsilon=epsilon,
                         mutation_prob=mutation_prob, seed=seed)
        self._trees = {"objective": objective, "backend": backend, "n_trees": n_trees, "seed": self.seed % 2 ** 31}
        self.backend = BoostedTrees(**self._trees).backend      # checks the arguments now
        self._names = feature_names(self.task)
        self.base_model = None
        self.n_transfer = 0                  # records of other workloads behind base_model
        self._transfer = {"rows": [], "y": [], "groups": [], "ids": {}}
        self._model, self._fit_at = None, -1
        if isinstance(history, (str, os.PathLike)):
            history = [history]
        records = []
        for item in history:
            if isinstance(item, (str, os.PathLike)):
                records.extend(load_records(item))
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], MeasureInput):
                records.append(item)
            else:
                raise ArgumentError(f"GBTTuner: history items must be tuning-log paths or (MeasureInput, "
                                    f"MeasureResult) records, got {type(item).__name__} {item!r:.80}")
        if records:
            self.load_history(records)

    def _featurize(self, configs):
        return feature_matrix(self.task, configs, self._names)

    def load_history(self, records) -> int:
        """As :meth:`_SamplingTuner.load_history` for this workload's records; the records of other
        workloads of the same template and target kind (re)train the base model. Returns how many
        records of this workload were used (``n_transfer``: how many of others)."""
        import numpy as np
        records = list(records)
        used = super().load_history(records)
        kind = Target(self.task.target).kind
        others: dict = {}
        for inp, res in records:
            t = inp.task
            if t.name == self.task.name and t.workload != self.task.workload and Target(inp.target).kind == kind:
                others.setdefault(t.workload_key, (t, []))[1].append((inp.config.values, res))
        for key, (t, trials) in others.items():
            rows, y = _relative_trials(t, trials, self._names)
            if rows is None:
                continue
            gid = self._transfer["ids"].setdefault(key, len(self._transfer["ids"]))
            self._transfer["rows"].append(rows)
            self._transfer["y"].append(y)
            self._transfer["groups"].append(np.full(len(y), gid))
            self.n_transfer += len(y)
        if others and self._transfer["rows"]:
            self.base_model = BoostedTrees(**self._trees).fit(
                np.concatenate(self._transfer["rows"]), np.concatenate(self._transfer["y"]),
                np.concatenate(self._transfer["groups"]))
            self._fit_at = -1
        return used

    def _ready(self) -> bool:
        """Whether the model can rank: a base model, or ``plan_size`` successful trials."""
        return self.base_model is not None or super()._ready()

    def _task_model(self):
        """The trees fit on this task's trials (over the base model's scores), refit when new
        trials came; None with fewer than two trials."""
        import numpy as np
        if self._fit_at != len(self._log_costs):
            self._fit_at = len(self._log_costs)
            y = _relative(self._log_costs)
            self._model = None
            if y is not None and len(y) >= 2:
                X = np.asarray(self._features, np.float64)
                base = self.base_model.predict(X) if self.base_model is not None else None
                self._model = BoostedTrees(**self._trees).fit(X, y, base=base)
        return self._model

    def predict(self, configs) -> list:
        """Predicted scores of ``configs``, lower = faster (None while the model cannot rank)."""
        if not self._ready():
            return None
        X = self._featurize(configs)
        base = self.base_model.predict(X) if self.base_model is not None else None
        model = self._task_model()
        return (model.predict(X, base=base) if model is not None else base).tolist()


def _with_failures(log_costs):
    """``log_costs`` with each failure (None) at twice the slowest success; None without one."""
    ok = [c for c in log_costs if c is not None]
    if not ok:
        return None
    worst = max(ok) + math.log(2.0)
    return [worst if c is None else c for c in log_costs]


def _relative(log_costs):
    """:func:`_with_failures` less the mean log run time of the successes, as an array: the
    same units in every task (None without a success)."""
    import numpy as np
    y = _with_failures(log_costs)
    return None if y is None else np.asarray(y) - np.mean([c for c in log_costs if c is not None])


def _relative_trials(task, trials, names):
    """Feature rows and :func:`_relative` log run times of ``trials`` ``[(knob values,
    MeasureResult)]`` of ``task``; ``(None, None)`` without a success. The values need not be
    points of the task's current space (they describe what was measured); values that cannot be
    read as its knobs are passed over."""
    rows, kept = readable_feature_matrix(task, [values for values, _ in trials], names)
    y = _relative([math.log(res.mean) if res.ok and res.mean > 0 else None for res in (trials[k][1] for k in kept)])
    return (None, None) if y is None else (rows, y)


#: the search tuners by the names ``tune_graph``, ``minitvm tune`` and the benchmarks take
TUNERS = {"ga": GATuner, "gbt": GBTTuner, "model": ModelTuner, "random": RandomTuner}
