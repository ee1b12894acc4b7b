"""Tuning through Dask on the CPU: a local cluster of one build worker and two measuring workers
that declare a (fake) GPU resource and time llvm candidates, as `minitvm tune --gpus 2` starts
for two GPUs."""
import glob
import io
import json
import os
import signal

import pytest

from minitvm import autotune
from minitvm.autotune import MeasureErrorNo as E
from minitvm.errors import DeviceError

import autotune_util  # noqa: F401  (test.faulty_double.cpu, here and in the workers)
import dask_util      # noqa: F401  (test.dask_double.cpu)

distributed = pytest.importorskip("distributed")
from minitvm.autotune.dask_runner import DaskRunner, local_cluster  # noqa: E402

GPU_WORKERS = {"gpu-0", "gpu-1"}


@pytest.fixture(scope="module")
def client():
    import dask
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):   # a task may meet 2 dying workers
        cluster = local_cluster(2, devices=["0", "1"], build_threads=1)
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c
    cluster.close()


def _wait_for_full_cluster(client):
    client.wait_for_workers(3, timeout=180)   # a killed worker's Nanny starts a new one (slow on a busy machine)


def _names(runner):
    return {addr: w["name"] for addr, w in runner.workers().items()}


def _tune(runner, task, n_trial, log, tuner=None, callbacks=(), **builder):
    tuner = tuner or autotune.RandomTuner(task, seed=0)
    option = autotune.measure_option(autotune.DaskBuilder(runner.client, **builder) if builder else None, runner)
    seen = []
    with option:
        tuner.tune(n_trial, option, callbacks=[autotune.log_to_file(log), lambda t, i, r: seen.extend(zip(i, r)),
                                               *callbacks])
        names = _names(runner)
        roles = {names[a]: sorted(r + option.builder.client.run(dask_util.local_roles, option.builder._token)[a])
                 for a, r in runner.client.run(dask_util.local_roles, runner._token).items()}
    return tuner, seen, roles


def test_tuning_through_dask_measures_on_gpu_workers_and_logs_like_a_local_run(client, tmp_path):
    _wait_for_full_cluster(client)
    task = autotune.Task("matmul.cpu", (32, 32, 32, "float32"))
    log = tmp_path / "dask.log"
    runner = DaskRunner(client, number=1, repeat=2, timeout=20, check_correctness=True)
    shown = io.StringIO()
    tuner, seen, roles = _tune(runner, task, 8, log,
                               callbacks=[autotune.progress_bar(8, file=shown, worker_rates=runner.worker_rates)])
    assert [r.error_no for _, r in seen] == [E.NO_ERROR] * 8, [r.error_msg for _, r in seen]
    # measured only on the workers with the GPU resource, built only on the other one
    assert set(runner.worker_trials) <= GPU_WORKERS and sum(runner.worker_trials.values()) == 8
    assert roles == {"build": ["builder"], "gpu-0": ["runner"], "gpu-1": ["runner"]}
    assert set(runner.worker_rates()) == set(runner.worker_trials)
    assert "trials/s=" in shown.getvalue() and "gpu-" in shown.getvalue()   # each worker's rate
    # the log reads back like a local run's: the same fields, and ApplyHistoryBest picks the best
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    local_line = json.loads(open(sorted(glob.glob(os.path.join(
        os.path.dirname(autotune.__file__), "tophub", "*.log")))[0]).readline())
    assert all(set(x) == set(local_line) for x in lines) and len(lines) == 8
    assert all(len(x["costs"]) == 2 and x["all_cost"] > 0 for x in lines)
    recs = autotune.load_records(log)
    assert min(r.mean for _, r in recs) == tuner.best_cost
    with autotune.ApplyHistoryBest(log) as ctx:
        assert ctx.query("llvm", task.workload) == tuner.best_config


def test_failing_candidates_get_the_local_error_codes_through_dask(client, tmp_path):
    _wait_for_full_cluster(client)
    task = autotune.Task("test.faulty_double.cpu", (64,))
    runner = DaskRunner(client, number=1, repeat=1, timeout=2.0, check_correctness=True)
    tuner, seen, _ = _tune(runner, task, len(autotune_util.MODES), tmp_path / "faulty.log",
                           autotune.GridSearchTuner(task), timeout=1.0, n_parallel=8)
    codes = {inp.config["mode"].val: res.error_no for inp, res in seen}
    assert codes == {"ok": E.NO_ERROR, "raise": E.INSTANTIATION_ERROR, "compile_error": E.COMPILE_HOST,
                     "sleep": E.BUILD_TIMEOUT, "crash": E.RUNTIME_DEVICE, "hang": E.RUN_TIMEOUT,
                     "wrong": E.WRONG_ANSWER, "ok_again": E.NO_ERROR}
    assert tuner.n_errors == 6


def test_measuring_workers_that_share_a_gpu_are_refused():
    task = autotune.Task("test.faulty_double.cpu", (64,), target="cuda")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, resources={"GPU": 1},
                                  dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as c:
        runner = DaskRunner(c)
        with pytest.raises(DeviceError, match="all see the same GPUs"):
            runner.prepare(task, "cuda")
        with pytest.raises(DeviceError, match="declares the resource 'TPU'"):
            DaskRunner(c, resource="TPU", startup_timeout=0.5).prepare(task, "llvm")


def test_cli_tune_on_a_cluster_without_real_gpus_names_the_worker(client, tmp_path, capsys):
    from minitvm.cli import main
    _wait_for_full_cluster(client)
    assert main(["tune", "resnet18", "--image-size", "32", "--dtype", "int8", "--batch", "2", "--trials", "2",
                 "--log", str(tmp_path / "r18.log"), "--scheduler", client.scheduler.address]) == 1
    err = capsys.readouterr().err
    assert "measuring Dask worker" in err and "no CUDA device" in err


def test_cli_gpus_asks_for_more_gpus_than_visible(tmp_path, capsys, monkeypatch):
    from minitvm.cli import main
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert main(["tune", "resnet18", "--image-size", "32", "--log", str(tmp_path / "t.log"), "--gpus", "2"]) == 1
    assert "2 GPUs asked for, but 1 are visible" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "resnet18", "--gpus", "1", "--scheduler", "tcp://127.0.0.1:1", "--list"])


@pytest.mark.parametrize("action", ["kill", "stop"])
def test_a_killed_or_hung_measuring_worker_loses_no_trial(client, tmp_path, action):
    """The reference of the first candidate measured kills (SIGKILL) or stops (SIGSTOP) the
    Dask worker measuring it: the scheduler (kill) or the stall watch (stop) moves the candidate
    to the other worker, and every trial is measured and logged."""
    _wait_for_full_cluster(client)
    marker = tmp_path / "worker.pid"
    task = autotune.Task("test.dask_double.cpu", (256, action, str(marker), os.getpid()))
    log = tmp_path / f"{action}.log"
    runner = DaskRunner(client, number=1, repeat=1, timeout=5, check_correctness=True, stall_timeout=10)
    try:
        tuner, seen, _ = _tune(runner, task, 6, log, n_parallel=3)
        assert marker.exists(), "the reference never ran in a measuring worker"
        assert [r.error_no for _, r in seen] == [E.NO_ERROR] * 6, [r.error_msg for _, r in seen]
        assert len(autotune.load_records(log)) == 6 and tuner.best_config is not None
        assert sum(runner.worker_trials.values()) == 6
        assert int(marker.read_text()) not in client.run(os.getpid).values()   # restarted, or removed
    finally:
        if marker.exists() and action == "stop":
            os.kill(int(marker.read_text()), signal.SIGKILL)   # its Nanny starts a new one


def test_a_candidate_that_kills_every_worker_is_recorded_and_tuning_goes_on(client, tmp_path):
    _wait_for_full_cluster(client)
    task = autotune.Task("test.dask_double.cpu", (256, "kill_always", "", os.getpid()))
    log = tmp_path / "poison.log"
    runner = DaskRunner(client, number=1, repeat=1, timeout=5, check_correctness=True)
    tuner, seen, _ = _tune(runner, task, 1, log, n_parallel=1)
    assert [r.error_no for _, r in seen] == [E.RUNTIME_DEVICE]
    assert "the Dask workers measuring it died each time" in seen[0][1].error_msg
    assert [r.error_no for _, r in autotune.load_records(log)] == [E.RUNTIME_DEVICE]
