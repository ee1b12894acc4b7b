"""Measurement in worker processes: a real CPU tuning run, and every kind of failing candidate."""
import json
import time

from minitvm import autotune
from minitvm.autotune import MeasureErrorNo as E

import autotune_util  # noqa: F401  (registers test.faulty_double.cpu, here and in the workers)


def test_failing_candidates_get_their_error_codes_and_tuning_goes_on(tmp_path):
    task = autotune.Task("test.faulty_double.cpu", (64,))
    space = task.config_space
    log = tmp_path / "faulty.log"
    seen = []
    tuner = autotune.GridSearchTuner(task)   # the mode knob varies fastest: one trial per mode
    with autotune.measure_option(
            autotune.LocalBuilder(n_parallel=2, timeout=1.0),
            autotune.LocalRunner(number=1, repeat=1, timeout=2.0, check_correctness=True)) as option:
        tuner.tune(len(autotune_util.MODES), option,
                   callbacks=[autotune.log_to_file(log), lambda t, i, r: seen.extend(zip(i, r))])
        restarts = option.runner.restarts
    codes = {inp.config["mode"].val: res.error_no for inp, res in seen}
    assert codes == {
        "ok": E.NO_ERROR,
        "raise": E.INSTANTIATION_ERROR,
        "compile_error": E.COMPILE_HOST,
        "sleep": E.BUILD_TIMEOUT,
        "crash": E.RUNTIME_DEVICE,
        "hang": E.RUN_TIMEOUT,
        "wrong": E.WRONG_ANSWER,
        "ok_again": E.NO_ERROR,   # the runner process was replaced after the crash and the hang
    }
    assert restarts == 2
    assert tuner.n_errors == 6 and tuner.best_config["mode"].val in ("ok", "ok_again")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["error"] for x in lines] == [codes[m].name for m in autotune_util.MODES]
    by_mode = {x["config"]["knobs"]["mode"]: x for x in lines}
    assert "injected instantiation error" in by_mode["raise"]["error_msg"]
    assert "SIGSEGV" in by_mode["crash"]["error_msg"] or "died" in by_mode["crash"]["error_msg"]
    assert by_mode["ok"]["costs"] and not by_mode["hang"]["costs"]
    assert all(len(x["error_msg"]) <= 512 for x in lines)
    assert space.index_of(by_mode["wrong"]["config"]["knobs"]) == by_mode["wrong"]["config"]["index"]


def test_cpu_gemm_tuning_improves_over_the_worst_config(tmp_path):
    task = autotune.Task("matmul.cpu", (64, 64, 64, "float32"))
    log = tmp_path / "gemm.log"
    tuner = autotune.RandomTuner(task, seed=0)
    with autotune.measure_option(
            autotune.LocalBuilder(n_parallel=2, timeout=20),
            autotune.LocalRunner(number=2, repeat=2, timeout=20, check_correctness=True)) as option:
        t0 = time.perf_counter()
        tuner.tune(16, option, callbacks=[autotune.log_to_file(log)])
        elapsed = time.perf_counter() - t0
    recs = autotune.load_records(log)
    ok = [r.mean for _, r in recs if r.ok]
    assert len(recs) == 16 and len(ok) == 16, [r.error_msg for _, r in recs if not r.ok]
    assert tuner.best_cost == min(ok) and tuner.best_cost * 1.5 < max(ok)
    print(f"\nCPU GEMM 64^3: 16 trials in {elapsed:.2f} s = {16 / elapsed:.1f} trials/s "
          f"(incl. worker start-up); best {tuner.best_flops / 1e9:.1f} GFLOP/s, worst "
          f"{task.flop / max(ok) / 1e9:.1f} GFLOP/s")
    # the log applies: the best config is what the template now uses
    with autotune.ApplyHistoryBest(log) as ctx:
        assert ctx.query("llvm", task.workload) == tuner.best_config


def test_builder_recycles_its_workers():
    task = autotune.Task("matmul.cpu", (16, 16, 16, "float32"))
    builder = autotune.LocalBuilder(n_parallel=1, timeout=20, max_builds_per_worker=2)
    try:
        inputs = [autotune.MeasureInput("llvm", task, task.config_space.get(i)) for i in range(3)]
        first = builder.build(inputs[:2])
        assert builder._pool is None   # 2 builds: recycled
        second = builder.build(inputs[2:])
        assert all(r.error_no == E.NO_ERROR for r in first + second)
    finally:
        builder.close()


def test_invalid_config_index_is_an_instantiation_error():
    task = autotune.Task("matmul.cpu", (16, 16, 16, "float32"))

    class Bad:
        def __init__(self, index):
            self.index, self.values = index, {}

    builder = autotune.LocalBuilder(n_parallel=1, timeout=20)
    try:
        results = builder.build([autotune.MeasureInput("llvm", task, Bad(i)) for i in (-1, 10 ** 9)])
    finally:
        builder.close()
    assert all(r.error_no == E.INSTANTIATION_ERROR and "out of range" in r.error_msg for r in results)
