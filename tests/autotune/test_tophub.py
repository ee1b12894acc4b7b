"""The tuned configs that ship with minitvm (``autotune.tophub``)."""
import json
import warnings

import pytest

import minitvm
from minitvm import autotune
from minitvm.autotune import tophub


def _records():
    out = []
    for path in tophub.log_files():
        with open(path, encoding="utf-8") as f:
            out.extend((path, json.loads(line)) for line in f if line.strip())
    return out


@pytest.mark.slow  # every shipped config through NVRTC
def test_every_shipped_config_still_fits_its_template_and_compiles():
    """A template change that orphans a shipped config fails here, not silently at run time
    (knobs added since the log was written take their first value, as in ApplyHistoryBest)."""
    records = _records()
    assert len(records) >= 23
    for path, r in records:
        task = autotune.Task(r["task"], r["args"], target="cuda")
        space = task.config_space
        cfg = space.get(space.index_of(r["config"]["knobs"], fill_missing=True))
        assert space.is_valid(cfg), (path, r["config"])
    # compiling every one takes a while on the CPU: a spread of them
    for _, r in records[::6]:
        task = autotune.Task(r["task"], r["args"], target="cuda")
        space = task.config_space
        s, tensors = task.instantiate(space.get(space.index_of(r["config"]["knobs"], fill_missing=True)))
        assert minitvm.build(s, tensors, "cuda -arch=sm_90").cubin


def test_root_context_answers_shipped_workloads_without_warning(monkeypatch):
    monkeypatch.delenv("MINITVM_TOPHUB", raising=False)
    task = autotune.Task(_records()[0][1]["task"], _records()[0][1]["args"], target="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error", autotune.FallbackConfigWarning)
        cfg = autotune.FallbackContext().query("cuda", task.workload)
    logged = _records()[0][1]["config"]["knobs"]
    assert not cfg.is_fallback and {k: cfg.values[k] for k in logged} == logged
    assert all(task.config_space.space_map[k].get(0).val == v for k, v in cfg.values.items() if k not in logged)


def test_tophub_can_be_turned_off_and_user_logs_come_first(monkeypatch, tmp_path):
    task = autotune.Task(_records()[0][1]["task"], _records()[0][1]["args"], target="cuda")
    monkeypatch.setenv("MINITVM_TOPHUB", "0")
    with pytest.warns(autotune.FallbackConfigWarning):
        assert autotune.FallbackContext().query("cuda", task.workload).is_fallback
    assert autotune.FallbackContext(use_tophub=False).query("cuda", task.workload).is_fallback
    monkeypatch.delenv("MINITVM_TOPHUB")
    # a user's log for the same workload wins over the shipped config
    space = task.config_space
    other = next(c for c in (space.get(i) for i in range(0, len(space), 9973)) if space.is_valid(c)
                 and c.values["tile_n"] != _records()[0][1]["config"]["knobs"]["tile_n"])
    inp = autotune.MeasureInput("cuda", task, other)
    res = autotune.MeasureResult((1e-9,), autotune.MeasureErrorNo.NO_ERROR)
    with autotune.ApplyHistoryBest([(inp, res)]):
        assert autotune.DispatchContext.current().query("cuda", task.workload).values == other.values
