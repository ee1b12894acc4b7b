"""Tuners and the tuning loop, with an in-process fake builder and runner (no workers)."""
import math

import pytest

from minitvm import autotune
from minitvm.autotune import BuildResult, MeasureErrorNo, MeasureResult


def _task():
    return autotune.Task("matmul.cpu", (32, 16, 8, "float32"))


def test_random_tuner_never_repeats_and_exhausts_the_space():
    task = _task()
    tuner = autotune.RandomTuner(task, seed=0)
    seen = []
    while tuner.has_next():
        batch = tuner.next_batch(7)
        assert batch
        seen.extend(c.index for c in batch)
    assert sorted(seen) == list(range(len(task.config_space)))
    assert tuner.next_batch(3) == []


def test_random_tuner_is_reproducible_with_a_seed():
    task = _task()
    a = [c.index for c in autotune.RandomTuner(task, seed=42).next_batch(20)]
    b = [c.index for c in autotune.RandomTuner(task, seed=42).next_batch(20)]
    c = [c.index for c in autotune.RandomTuner(task, seed=43).next_batch(20)]
    assert a == b and a != c and len(set(a)) == 20


def test_random_tuner_handles_huge_spaces():
    task = autotune.Task("conv2d_NCHWc_int8.cuda", ((16, 16, 56, 56, 4), (16, 16, 3, 3, 4, 4), 1, 1))
    space = task.config_space
    assert len(space) > 10 ** 8
    tuner = autotune.RandomTuner(task, seed=1)
    batch = tuner.next_batch(16)
    assert len({c.index for c in batch}) == 16
    assert all(space.is_valid(c) for c in batch)   # filtered configs are skipped, never proposed
    assert tuner.n_skipped > 0


def test_grid_search_goes_in_index_order_and_skips_filtered():
    task = _task()
    tuner = autotune.GridSearchTuner(task)
    assert [c.index for c in tuner.next_batch(5)] == [0, 1, 2, 3, 4]


def _trials_to_best(tuner, option) -> int:
    """Tune the whole space; the trial at which ``tuner`` first met its best config."""
    tuner.tune(len(tuner.task.config_space), option)
    return tuner.best_iter


class FakeBuilder(autotune.Builder):
    n_parallel = 4

    def build(self, inputs, target=None):
        return [BuildResult(None, (), MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class FakeRunner(autotune.Runner):
    """Cost = a function of the config; configs with vectorize=False fail."""

    def run(self, inputs, build_results):
        out = []
        for inp in inputs:
            v = inp.config.values
            if not v["vectorize"]:
                out.append(MeasureResult((), MeasureErrorNo.RUNTIME_DEVICE, "fake failure"))
            else:
                cost = 1e-3 * (1 + abs(v["tile_y"][1] - 4) + abs(v["tile_x"][1] - 8))
                out.append(MeasureResult((cost, cost), MeasureErrorNo.NO_ERROR))
        return out


def test_tune_loop_tracks_the_best_and_calls_callbacks():
    task = _task()
    tuner = autotune.GridSearchTuner(task)
    calls = []

    class CB:
        def start(self, t):
            calls.append("start")

        def __call__(self, t, inputs, results):
            calls.append(len(results))

        def close(self):
            calls.append("close")

    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    best = tuner.tune(len(task.config_space), option, callbacks=[CB()])
    assert calls[0] == "start" and calls[-1] == "close" and sum(calls[1:-1]) == len(task.config_space)
    assert best.values["tile_y"][1] == 4 and best.values["tile_x"][1] == 8
    assert math.isclose(tuner.best_cost, 1e-3)
    assert math.isclose(tuner.best_flops, task.flop / 1e-3)
    assert tuner.n_errors == len(task.config_space) // 2
    assert tuner.trials == len(task.config_space) and tuner.trials_per_second > 0


def test_tune_respects_n_trial_and_early_stopping():
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    tuner = autotune.RandomTuner(task, seed=0)
    tuner.tune(10, option)
    assert tuner.trials == 10
    tuner = autotune.GridSearchTuner(task)
    tuner.tune(1000, option, early_stopping=8)
    assert tuner.trials - 1 - tuner.best_iter <= 8 + FakeBuilder.n_parallel
    assert tuner.trials < len(task.config_space)


class LearningTuner(autotune.RandomTuner):
    """A stand-in for a model-based tuner: only next_batch/update are overridden."""

    def __init__(self, task):
        super().__init__(task, seed=0)
        self.seen = []

    def update(self, inputs, results):
        self.seen.extend((i.config.features(), r.ok) for i, r in zip(inputs, results))


def test_a_model_based_tuner_drops_into_the_loop():
    task = _task()
    tuner = LearningTuner(task)
    tuner.tune(12, autotune.measure_option(FakeBuilder(), FakeRunner()))
    assert len(tuner.seen) == 12 and all(isinstance(f, list) and f for f, _ in tuner.seen)


def test_tune_with_pipelining_gives_the_same_trials():
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    a, b = autotune.RandomTuner(task, seed=5), autotune.RandomTuner(task, seed=5)
    a.tune(20, option, pipeline=False)
    b.tune(20, option, pipeline=True)
    assert a.trials == b.trials == 20 and a.best_config == b.best_config


def test_progress_bar_shows_best_and_errors(capsys):
    import io
    buf = io.StringIO()
    task = _task()
    tuner = autotune.RandomTuner(task, seed=0)
    tuner.tune(8, autotune.measure_option(FakeBuilder(), FakeRunner()), callbacks=[autotune.progress_bar(8, file=buf)])
    text = buf.getvalue()
    assert "8/8" in text and "errors=" in text and "GFLOP/s" in text


def test_task_arguments_must_be_plain():
    with pytest.raises(autotune.TaskError, match="plain values"):
        autotune.Task("matmul.cpu", (object(), 1, 1))
    with pytest.raises(autotune.TaskError, match="no autotune template"):
        autotune.Task("no.such.template", (1,)).config_space


def test_task_workload_is_hashable_serializable_and_pickles():
    import json
    import pickle
    t = autotune.Task("conv2d_NCHWc_int8.cuda", ([1, 4, 8, 8, 4], [4, 4, 3, 3, 4, 4], 1, 1))
    u = autotune.Task("conv2d_NCHWc_int8.cuda", ((1, 4, 8, 8, 4), (4, 4, 3, 3, 4, 4), (1, 1), (1, 1, 1, 1)))
    assert t.workload == u.workload and hash(t) == hash(u)   # normalized by the template
    assert json.loads(t.workload_key)[0] == "conv2d_NCHWc_int8.cuda"
    assert pickle.loads(pickle.dumps(t)) == t


def test_ga_tuner_never_repeats_is_reproducible_and_exhausts_the_space():
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    n = len(task.config_space)
    a, b = autotune.GATuner(task, pop_size=8, seed=3), autotune.GATuner(task, pop_size=8, seed=3)
    a.tune(n + 5, option)
    b.tune(40, option)
    assert a.trials == n and sorted(a.visited) == list(range(n))   # every config once
    a2 = autotune.GATuner(task, pop_size=8, seed=3)
    a2.tune(40, option)
    assert a2.best_config == b.best_config and a2.visited == b.visited


def test_ga_tuner_finds_the_best_sooner_than_random_search():
    """On a smooth landscape, children of fast configs beat uniform sampling (over 10 seeds)."""
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    ga = [_trials_to_best(autotune.GATuner(task, pop_size=8, seed=s), option) for s in range(10)]
    rnd = [_trials_to_best(autotune.RandomTuner(task, seed=s), option) for s in range(10)]
    assert sum(ga) < 0.7 * sum(rnd), (ga, rnd)


def _history(task, n, seed=0):
    """Records of ``n`` measured trials of ``task`` (a random search run through the loop)."""
    records = []
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    autotune.RandomTuner(task, seed=seed).tune(n, option, callbacks=[lambda t, i, r: records.extend(zip(i, r))])
    return records


def test_load_history_takes_this_tasks_records_only_and_never_proposes_them_again(tmp_path):
    task = _task()
    records = _history(task, 24)
    log = tmp_path / "old.log"
    autotune.record.save_records(log, records + _history(autotune.Task("matmul.cpu", (16, 16, 8, "float32")), 5))
    tuner = autotune.GATuner(task, pop_size=8, seed=0)
    assert tuner.load_history(autotune.record.load_records(log)) == 24   # the other workload's 5 are ignored
    assert tuner.visited == {inp.config.index for inp, _ in records}
    proposed = set()
    while tuner.has_next():
        proposed |= {c.index for c in tuner.next_batch(16)}
    assert proposed.isdisjoint(tuner.visited - proposed) and len(proposed) == len(task.config_space) - 24
    assert tuner.best_config is None            # the best is what this run measures


def test_ga_tuner_seeded_with_history_finds_the_best_sooner():
    """Bred from an earlier run's fast configs, the search reaches the optimum in fewer trials."""
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    seeded, fresh = [], []
    for s in range(10):
        # an earlier run's trials, the optimum itself left out
        history = [(i, r) for i, r in _history(task, 16, seed=100 + s) if not (r.ok and math.isclose(r.mean, 1e-3))]
        tuner = autotune.GATuner(task, pop_size=8, seed=s)
        tuner.load_history(history)
        seeded.append(_trials_to_best(tuner, option))
        fresh.append(_trials_to_best(autotune.GATuner(task, pop_size=8, seed=s), option))
    assert sum(seeded) < 0.7 * sum(fresh), (seeded, fresh)


def test_model_tuner_learns_from_history():
    """With enough earlier successes loaded, the first batch is already the model's pick."""
    task = _task()
    tuner = autotune.ModelTuner(task, plan_size=8, seed=0)
    assert tuner.predict([task.config_space.get(0)]) is None      # nothing to learn from yet
    assert tuner.load_history(_history(task, 40)) == 40
    assert tuner.predict([task.config_space.get(0)]) is not None
    space = task.config_space

    def fake_cost(c):
        v = c.values
        return (1 + abs(v["tile_y"][1] - 4) + abs(v["tile_x"][1] - 8)) if v["vectorize"] else 100.0
    batch = tuner.next_batch(4)
    mean_all = sum(fake_cost(space.get(i)) for i in range(len(space))) / len(space)
    assert len(batch) == 4 and sum(map(fake_cost, batch)) / 4 < 0.5 * mean_all


def test_ga_tuner_rejects_bad_parameters():
    with pytest.raises(ValueError, match="pop_size"):
        autotune.GATuner(_task(), pop_size=1)
    with pytest.raises(ValueError, match="mutation_prob"):
        autotune.GATuner(_task(), mutation_prob=1.5)


def test_model_tuner_never_repeats_is_reproducible_and_exhausts_the_space():
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    n = len(task.config_space)
    full = autotune.ModelTuner(task, plan_size=8, seed=3)
    full.tune(n + 5, option)
    assert full.trials == n and sorted(full.visited) == list(range(n))
    a, b = autotune.ModelTuner(task, plan_size=8, seed=4), autotune.ModelTuner(task, plan_size=8, seed=4)
    a.tune(40, option)
    b.tune(40, option)
    assert a.best_config == b.best_config and a.visited == b.visited


@pytest.mark.slow  # hundreds of trials
def test_model_tuner_learns_the_landscape():
    """Its cost model ranks unmeasured configs: after 40 trials its predictions correlate with
    the true costs, and it reaches the best config sooner than random search (over 10 seeds)."""
    import numpy as np
    task = _task()
    option = autotune.measure_option(FakeBuilder(), FakeRunner())
    space = task.config_space
    tuner = autotune.ModelTuner(task, plan_size=8, seed=1)
    assert tuner.predict([space.get(0)]) is None          # nothing learnt yet
    tuner.tune(40, option)
    ok = [c for c in (space.get(i) for i in range(len(space))) if c.values["vectorize"]]
    cost = np.array([1 + abs(c.values["tile_y"][1] - 4) + abs(c.values["tile_x"][1] - 8) for c in ok])
    pred = np.array(tuner.predict(ok))
    rank_corr = np.corrcoef(np.argsort(np.argsort(pred)), np.argsort(np.argsort(cost)))[0, 1]
    assert rank_corr > 0.5
    model = [_trials_to_best(autotune.ModelTuner(task, plan_size=8, seed=s), option) for s in range(10)]
    rnd = [_trials_to_best(autotune.RandomTuner(task, seed=s), option) for s in range(10)]
    assert sum(model) < 0.8 * sum(rnd), (model, rnd)


def test_model_tuner_rejects_bad_parameters():
    with pytest.raises(ValueError, match="pool_size"):
        autotune.ModelTuner(_task(), pool_size=0)
    with pytest.raises(ValueError, match="epsilon"):
        autotune.ModelTuner(_task(), epsilon=2.0)
