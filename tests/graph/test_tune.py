"""Tasks of a whole model, and tuning them into one log (with a fake builder and runner)."""
import numpy as np
import pytest

from minitvm import autotune
from minitvm.autotune import BuildResult, MeasureErrorNo, MeasureResult
from minitvm.cli import quantize_for_target
from minitvm.graph import zoo
from minitvm.graph.build import lowered_groups, optimize
from minitvm.graph.tune import extract_tasks, tune_graph


def _int8_resnet18():
    graph, _ = zoo.get_model("resnet18", batch=2, image_size=32)
    return quantize_for_target(graph, np.random.default_rng(0), n_images=0)


def test_tasks_are_the_workloads_the_build_looks_up():
    graph = _int8_resnet18()
    tasks = extract_tasks(graph, "cuda", counts=True)
    names = [t.name for t, _ in tasks]
    # the first conv stays float (skip_conv_layers=[0]), the classifier too (skip_dense_layer)
    assert names[0] == "conv2d_nchw.cuda" and names[-1] == "dense.cuda"
    assert set(names[1:-1]) == {"conv2d_NCHWc_int8.cuda"}
    assert len({t.workload for t, _ in tasks}) == len(tasks)
    # one task per distinct conv/dense kernel, weighted by how many kernels share it
    anchors = [g.group.anchor for g in lowered_groups(optimize(graph), "cuda")
               if g.group.anchor and graph.node(g.group.anchor).op in ("conv2d", "dense")]
    assert sum(n for _, n in tasks) == len(anchors) == 21
    # every task's space holds its template's default config
    for t, _ in tasks:
        assert len(t.config_space) > 0 and t.target == "cuda"


class _Builder(autotune.Builder):
    n_parallel = 4

    def build(self, inputs, target=None):
        return [BuildResult(None, (), MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class _Runner(autotune.Runner):
    """Cost from the config index: deterministic, different per config."""

    def run(self, inputs, build_results):
        return [MeasureResult((1e-3 * (1 + inp.config.index % 97),), MeasureErrorNo.NO_ERROR) for inp in inputs]


def test_tune_graph_logs_every_task_and_resumes(tmp_path):
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    log = tmp_path / "model.log"
    option = autotune.measure_option(_Builder(), _Runner())
    results = tune_graph(graph, str(log), "cuda", n_trial=8, measure_option=option, progress=False)
    tasks = extract_tasks(graph, "cuda")
    assert [t for t, _ in results] == tasks
    records = autotune.load_records(str(log))
    assert len(records) == 8 * len(tasks)
    best = autotune.ApplyHistoryBest(str(log))
    for task, cost in results:
        assert best.best(task.workload, "cuda")[0] == pytest.approx(cost)
    # a second run finds every task tuned already and measures nothing
    again = tune_graph(graph, str(log), "cuda", n_trial=8, measure_option=option, progress=False)
    assert len(autotune.load_records(str(log))) == len(records)
    assert [c for _, c in again] == pytest.approx([c for _, c in results])
    # with a larger budget, a third run tops each task up and never re-measures a logged config
    tune_graph(graph, str(log), "cuda", n_trial=12, measure_option=option, progress=False)
    more = autotune.load_records(str(log))
    assert len(more) == 12 * len(tasks)
    for task in tasks:
        configs = [inp.config.index for inp, _ in more if inp.task.workload == task.workload]
        assert len(set(configs)) == len(configs) == 12


def test_tune_graph_measures_the_shipped_config_first_and_starts_from_history(tmp_path, monkeypatch):
    from minitvm.autotune import tophub
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    tasks = extract_tasks(graph, "cuda")
    first = tasks[0]
    space = first.config_space
    shipped = next(c for c in map(space.get, range(len(space) // 3, len(space))) if space.is_valid(c))
    ship_log = tmp_path / "shipped.log"
    autotune.record.save_records(ship_log, [(autotune.MeasureInput("cuda -arch=sm_90", first, shipped),
                                             MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR))])
    monkeypatch.setattr(tophub, "_context", autotune.ApplyHistoryBest(str(ship_log)))
    # an earlier log of the second task: its trials seed the search and are not measured again
    earlier = tmp_path / "earlier.log"
    option = autotune.measure_option(_Builder(), _Runner())
    tune_graph(graph, str(earlier), "cuda", n_trial=6, measure_option=option, progress=False)
    old = {inp.config.index for inp, _ in autotune.load_records(str(earlier)) if inp.task.workload == tasks[1].workload}
    loaded = {}
    real = autotune.GATuner.load_history

    def spy(self, recs):
        loaded[self.task.workload] = real(self, recs)
        return loaded[self.task.workload]
    monkeypatch.setattr(autotune.GATuner, "load_history", spy)
    log = tmp_path / "model.log"
    tune_graph(graph, str(log), "cuda", n_trial=6, measure_option=option, progress=False, history=[str(earlier)])
    assert loaded[tasks[1].workload] == 6 and loaded[first.workload] == 1 + 6   # + the shipped trial
    records = autotune.load_records(str(log))
    mine = [inp.config.index for inp, _ in records if inp.task.workload == first.workload]
    assert mine[0] == shipped.index and len(mine) == len(set(mine)) == 6
    second = {inp.config.index for inp, _ in records if inp.task.workload == tasks[1].workload}
    assert len(second) == 6 and not second & old
    monkeypatch.setenv("MINITVM_TOPHUB", "0")          # nothing shipped: the first trial is the tuner's
    log2 = tmp_path / "plain.log"
    tune_graph(graph, str(log2), "cuda", n_trial=6, measure_option=option, progress=False)
    assert [inp.config.index for inp, _ in autotune.load_records(str(log2))
            if inp.task.workload == first.workload][0] != shipped.index


def test_tune_graph_rejects_bad_arguments(tmp_path):
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    with pytest.raises(ValueError, match="tuner"):
        tune_graph(graph, str(tmp_path / "a.log"), tuner="annealing")
    with pytest.raises(ValueError, match="n_trial"):
        tune_graph(graph, str(tmp_path / "a.log"), n_trial=0)
    with pytest.raises(ValueError, match="history log .*nowhere.log' does not exist"):
        tune_graph(graph, str(tmp_path / "a.log"), history=[str(tmp_path / "nowhere.log")])
