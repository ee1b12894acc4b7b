"""The boosted-tree cost model (``autotune.gbt``), its features (``autotune.features``) and the
tuner built on them (``GBTTuner``): learning, the numpy fallback, transfer from other tasks."""
import math
import sys

import numpy as np
import pytest

from minitvm import autotune
from minitvm.autotune import BuildResult, MeasureErrorNo, MeasureResult
from minitvm.autotune.features import config_features, feature_matrix, feature_names
from minitvm.autotune.gbt import BoostedTrees, lightgbm_available
from minitvm.errors import ArgumentError

BACKENDS = ["numpy", pytest.param("lightgbm", marks=pytest.mark.skipif(not lightgbm_available(),
                                                                       reason="lightgbm is not installed"))]


def _rank_corr(a, b) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def _landscape(X):
    """A cost with an optimum inside a range, an interaction and a step."""
    return (X[:, 0] - 3) ** 2 + np.abs(X[:, 1] - X[:, 2]) + 2.0 * (X[:, 3] > 4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("objective", ["regression", "rank"])
def test_boosted_trees_rank_unseen_points_of_a_synthetic_landscape(backend, objective):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 8, (300, 6)).astype(float)
    y = _landscape(X) + 0.1 * rng.normal(size=len(X))
    test = rng.integers(0, 8, (500, 6)).astype(float)
    model = BoostedTrees(objective, backend).fit(X, y)
    assert model.fitted and model.backend == backend
    assert _rank_corr(model.predict(test), _landscape(test)) > 0.6     # chance: 0


def test_boosted_trees_boost_from_a_base_and_handle_missing_features():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] + X[:, 1]
    m = BoostedTrees("regression", "numpy", n_trees=200).fit(X, y, base=X[:, 0])   # the base knows half of it
    assert np.abs(m.predict(X, base=X[:, 0]) - y).mean() < 0.2
    X[::3, 1] = np.nan                                     # a feature some tasks lack
    assert np.all(np.isfinite(BoostedTrees("regression", "numpy").fit(X, y).predict(X)))


def test_boosted_trees_reject_bad_arguments():
    with pytest.raises(ArgumentError, match="objective"):
        BoostedTrees("hinge")
    with pytest.raises(ArgumentError, match="backend"):
        BoostedTrees(backend="catboost")
    with pytest.raises(ArgumentError, match="n_trees"):
        BoostedTrees(n_trees=0)
    with pytest.raises(ArgumentError, match="learning_rate"):
        BoostedTrees(learning_rate=0.0)
    with pytest.raises(ArgumentError, match="X must be rows x features"):
        BoostedTrees().fit(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ArgumentError, match="finite"):
        BoostedTrees().fit(np.zeros((2, 2)), np.array([1.0, math.inf]))
    with pytest.raises(ArgumentError, match="max_depth"):
        BoostedTrees(max_depth="deep")
    with pytest.raises(ArgumentError, match="the 2 features"):
        BoostedTrees(backend="numpy").fit(np.eye(3)[:, :2], np.arange(3.0)).predict(np.zeros((1, 3)))


def test_without_lightgbm_everything_falls_back_to_numpy(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightgbm", None)     # import lightgbm now fails
    assert not lightgbm_available()
    assert BoostedTrees().backend == "numpy"
    with pytest.raises(ArgumentError, match="not installed"):
        BoostedTrees(backend="lightgbm")
    tuner = autotune.GBTTuner(_task((64, 64, 64)), plan_size=8, seed=0)
    assert tuner.backend == "numpy"
    tuner.tune(24, _option())
    assert tuner.trials == 24 and tuner.predict([tuner.space.get(0)]) is not None


# ---- features
def test_features_name_the_same_things_across_workloads_of_a_template():
    a = autotune.Task("conv2d_NCHWc_int8.cuda", ((16, 16, 56, 56, 4), (16, 16, 3, 3, 4, 4), 1, 1))
    b = autotune.Task("conv2d_NCHWc_int8.cuda", ((1, 64, 7, 7, 4), (128, 64, 1, 1, 4, 4), 1, 0))
    assert feature_names(a) == feature_names(b)
    config = a.config_space.get(12345678)
    f = config_features(a, config)
    v = config.values
    threads = math.prod(v[k][2] for k in ("tile_n", "tile_f", "tile_y", "tile_x"))   # the thread level
    assert f["loop4.2"] == pytest.approx(math.log2(threads))
    per_thread = math.prod(v[k][1] * v[k][3] for k in ("tile_n", "tile_f", "tile_y", "tile_x"))
    assert f["loop4.1+-2"] == pytest.approx(math.log2(per_thread))
    assert f["tile_y:extent"] == pytest.approx(math.log2(56)) and f["tile_y.2/"] == pytest.approx(
        math.log2(v["tile_y"][2]) / math.log2(56))
    assert f["double_buffer"] == float(v["double_buffer"]) and f["log2_flop"] == pytest.approx(math.log2(a.flop))
    # a logged dict without a knob added later reads as the knob's first value
    del v["vector_data"]
    assert config_features(a, v)["vector_data"] == 4.0
    assert np.isnan(feature_matrix(a, [config], ["no_such_feature"])).all()


# ---- the tuner
def _task(shape):
    return autotune.Task("matmul.cpu", (*shape, "float32"))


def _cost(config) -> float:
    """A landscape whose best inner tiles (y 4, x 8, vectorized) hold for every shape."""
    v = config.values
    shape = sum(math.log2(config.space.space_map[k].extent) for k in ("tile_y", "tile_x", "tile_k"))
    rough = abs(math.log2(v["tile_y"][1]) - 2) + abs(math.log2(v["tile_x"][1]) - 3) + 0.3 * math.log2(v["tile_k"][1])
    return 1e-6 * shape * (1 + rough) * (1.0 if v["vectorize"] else 3.0)


class _Builder(autotune.Builder):
    n_parallel = 8

    def build(self, inputs, target=None):
        return [BuildResult(None, (), MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class _Runner(autotune.Runner):
    def __init__(self):
        self.measured = []

    def run(self, inputs, build_results):
        self.measured.extend(inp.config.index for inp in inputs)
        return [MeasureResult((_cost(inp.config),), MeasureErrorNo.NO_ERROR) for inp in inputs]


def _option(runner=None):
    return autotune.measure_option(_Builder(), runner or _Runner())


def _records(task, n, seed):
    records = []
    autotune.RandomTuner(task, seed=seed).tune(n, _option(), callbacks=[lambda t, i, r: records.extend(zip(i, r))])
    return records


def _mean_cost(configs) -> float:
    return sum(map(_cost, configs)) / len(configs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_transfer_ranks_the_first_batch_of_a_new_task(backend, tmp_path):
    """A model trained on two other shapes' trials picks a good first batch before any trial."""
    task = _task((64, 128, 64))
    space = task.config_space
    history = _records(_task((64, 64, 64)), 60, seed=1) + _records(_task((128, 64, 32)), 60, seed=2)
    log = tmp_path / "other_layers.log"
    autotune.save_records(log, history)
    warm = autotune.GBTTuner(task, history=[log], backend=backend, plan_size=8, seed=0)
    assert warm.base_model is not None and warm.n_transfer == 120 and warm.trials == 0
    assert not warm.visited                                # other workloads' configs are not this task's
    cold = autotune.GBTTuner(task, backend=backend, plan_size=8, seed=0)
    assert cold.base_model is None and cold.predict([space.get(0)]) is None
    everything = [space.get(i) for i in range(len(space))]
    first_warm, first_cold = warm.next_batch(8), cold.next_batch(8)
    assert _mean_cost(first_warm) < 0.6 * _mean_cost(everything) < _mean_cost(first_cold)
    assert _rank_corr(warm.predict(everything), [_cost(c) for c in everything]) > 0.6
    # then it refits on its own trials, on top of the base model
    warm.tune(24, _option())
    assert warm.trials == 24 and warm._task_model() is not None


def test_load_history_sorts_this_tasks_records_from_other_workloads():
    task = _task((64, 64, 64))
    own, other = _records(task, 20, seed=3), _records(_task((32, 64, 64)), 30, seed=4)
    tuner = autotune.TUNERS["gbt"](task, seed=0)
    assert tuner.load_history(own + other) == 20           # as tune_graph / tune_tasks call it
    assert tuner.visited == {inp.config.index for inp, _ in own}
    assert tuner.n_transfer == 30 and tuner.base_model is not None
    stale = autotune.decode(autotune.encode(*other[0]).replace('"tile_y": [', '"tile_y": "wide", "was": ['))
    assert tuner.load_history(other + [stale]) == 0 and tuner.n_transfer == 60    # the unreadable one is passed over
    conv = autotune.Task("conv2d_NCHWc_int8.cuda", ((1, 4, 8, 8, 4), (4, 4, 3, 3, 4, 4), 1, 1))
    other_template = [(autotune.MeasureInput("cuda", conv, conv.config_space.get(0)), own[0][1])]
    assert tuner.load_history(other_template) == 0 and tuner.n_transfer == 60


def test_gbt_tuner_never_repeats_and_exhausts_a_small_space():
    task = _task((16, 8, 8))
    runner = _Runner()
    tuner = autotune.GBTTuner(task, history=_records(_task((16, 16, 8)), 30, seed=5), plan_size=8, pool_size=16,
                              n_trees=10, seed=1)
    n = len(task.config_space)
    tuner.tune(n + 10, _option(runner))
    assert tuner.trials == n and sorted(runner.measured) == list(range(n))


def test_gbt_tuner_respects_the_space_filters():
    task = autotune.Task("conv2d_NCHWc_int8.cuda", ((16, 16, 28, 28, 4), (32, 16, 1, 1, 4, 4), 1, 0))
    space = task.config_space

    class ConvRunner(_Runner):
        def run(self, inputs, build_results):
            self.measured.extend(inp.config.index for inp in inputs)
            return [MeasureResult((1e-6 * (1 + sum(config_features(task, inp.config).values()) % 7),),
                                  MeasureErrorNo.NO_ERROR) for inp in inputs]

    runner = ConvRunner()
    tuner = autotune.GBTTuner(task, plan_size=8, pool_size=32, seed=2)
    tuner.tune(40, _option(runner))
    assert tuner._ready() and len(runner.measured) == len(set(runner.measured)) == 40
    assert all(space.is_valid(i) for i in runner.measured)


def test_gbt_tuner_rejects_bad_arguments(tmp_path):
    task = _task((32, 16, 8))
    with pytest.raises(ArgumentError, match="objective"):
        autotune.GBTTuner(task, objective="hinge")
    with pytest.raises(ArgumentError, match="backend"):
        autotune.GBTTuner(task, backend="xgboost2")
    with pytest.raises(ArgumentError, match="history items"):
        autotune.GBTTuner(task, history=[42])
    with pytest.raises(autotune.record.TuningLogError, match="cannot be read"):
        autotune.GBTTuner(task, history=str(tmp_path / "missing.log"))
    with pytest.raises(ArgumentError, match="pool_size"):
        autotune.GBTTuner(task, pool_size=0)
