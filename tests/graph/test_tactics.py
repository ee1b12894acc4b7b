"""Build-time tactic selection (``graph.tactics``): the untuned kernels of a model time a few
configs, the fastest lands in a per-device cache, and a second build measures nothing."""
import numpy as np
import pytest

from minitvm import autotune
from minitvm.autotune import MeasureErrorNo, MeasureResult
from minitvm.autotune.result import BuildResult
from minitvm.errors import BuildError
from minitvm.graph import Graph
from minitvm.graph import quantize  # noqa: F401  (registers the quantized ops)
from minitvm.graph.build import build
from minitvm.graph.passes.alter_layout import alter_layout
from minitvm.graph.tactics import select_tactics, tactics_cache_path, untuned_tasks
from minitvm.graph.tune import default_config

rng = np.random.default_rng(3)
TARGET = "cuda -arch=sm_90"


def _net():
    """One int8 conv (64 -> 64 channels on 12 x 12): a tensor-core task nothing ships a config for."""
    g = Graph("tac")
    x = g.add_input("x", (1, 64, 12, 12), "int8")
    w = g.add_const("w", rng.integers(-8, 8, (64, 64, 3, 3), dtype=np.int8))
    c = g.add_op("conv2d", [x, w], {"padding": (1, 1, 1, 1), "out_dtype": "int32"}, name="c")
    g.mark_output(g.add_op("cast", [c], {"dtype": "float32"}, name="f"))
    return alter_layout(g, target=TARGET)


class _Builder(autotune.Builder):
    def build(self, inputs, target=None):
        return [BuildResult(None, (), MeasureErrorNo.NO_ERROR, "", 0.0) for _ in inputs]


class _Runner(autotune.Runner):
    """Times nothing: a config's cost is its index (so the lowest index measured wins)."""

    def __init__(self):
        self.measured = []

    def run(self, inputs, build_results):
        self.measured += [inp.config.index for inp in inputs]
        return [MeasureResult((1e-6 * (1 + inp.config.index),), MeasureErrorNo.NO_ERROR) for inp in inputs]


def _option(runner):
    return autotune.measure_option(_Builder(), runner)


def test_only_kernels_without_a_tuned_config_are_selected(tmp_path):
    g = _net()
    (task,) = untuned_tasks(g, TARGET)
    assert task.name == "conv2d_NHWC_int8_tensorcore.cuda"
    log = tmp_path / "mine.log"
    autotune.log_to_file(str(log))(None, [autotune.MeasureInput(TARGET, task, default_config(task))],
                                   [MeasureResult((1e-5,), MeasureErrorNo.NO_ERROR)])
    with autotune.ApplyHistoryBest(str(log)):
        assert untuned_tasks(g, TARGET) == []


def test_default_is_measured_first_and_the_fastest_candidate_is_built(tmp_path):
    g, cache, runner = _net(), tmp_path / "h200.log", _Runner()
    (task,) = untuned_tasks(g, TARGET)
    ctx = select_tactics(g, TARGET, 5, cache=cache, measure_option=_option(runner), progress=False)
    assert len(runner.measured) == 5 and runner.measured[0] == default_config(task).index
    with ctx:
        chosen = autotune.DispatchContext.current().query(task.target, task.workload)
    assert chosen.index == min(runner.measured)
    model = build(g, TARGET, tactics=5, tactics_cache=cache)       # cached: nothing measured again
    assert model.steps and len(runner.measured) == 5
    again = _Runner()
    select_tactics(g, TARGET, 5, cache=cache, measure_option=_option(again), progress=False)
    assert again.measured == []


def test_bad_k_and_no_device_are_refused(tmp_path, monkeypatch):
    with pytest.raises(BuildError, match="positive number"):
        select_tactics(_net(), TARGET, 0, cache=tmp_path / "x.log")
    from minitvm.runtime import cuda
    monkeypatch.setattr(cuda, "device_count", lambda: 0)
    with pytest.raises(BuildError, match="no CUDA device"):
        select_tactics(_net(), TARGET, 3)


def test_the_cache_is_named_after_the_device(monkeypatch, tmp_path):
    monkeypatch.setenv("MINITVM_CACHE_DIR", str(tmp_path))
    assert tactics_cache_path("NVIDIA H200") == tmp_path / "tactics" / "nvidia_h200.log"
