"""Measuring candidates: build in parallel worker processes, time in an isolated runner process.

    option = autotune.measure_option(
        builder=autotune.LocalBuilder(n_parallel=8, timeout=10),
        runner=autotune.LocalRunner(number=10, repeat=3, min_repeat_ms=50, timeout=10))

* :class:`LocalBuilder` instantiates the template with each config and compiles it — lower,
  codegen, then LLVM (``llvm``) or NVRTC to a cubin (``cuda``, no GPU needed) — in a pool of
  ``spawn``-ed worker processes (``concurrent.futures.ProcessPoolExecutor``), recycled every
  ``max_builds_per_worker`` builds because llvmlite leaks memory per compile. A build that runs
  past ``timeout`` is interrupted in its worker (or, if stuck in native code, its pool is killed).
* :class:`LocalRunner` times each built candidate in one long-lived runner process (which, for
  ``cuda``, holds the CUDA context: starting it costs seconds). Inputs are random data of the
  right dtypes (int8 in [-128, 127]) made once per workload; outputs are poisoned before every
  candidate. A candidate that hangs (``timeout``), crashes the process, or leaves the CUDA
  context dead (an illegal address) is recorded with its error code and the runner process is
  replaced; the tuner goes on. With ``check_correctness=True`` each candidate's outputs are
  compared with the template's numpy reference (computed once per workload).

Every outcome is a :class:`MeasureResult` with a :class:`MeasureErrorNo`.
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import math
import multiprocessing
import os
import threading
import time
import warnings
import weakref
from concurrent.futures.process import BrokenProcessPool

from ..errors import ArgumentError
from ..target import Target
from . import _worker
from .result import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult

__all__ = ["Builder", "Runner", "LocalBuilder", "LocalRunner", "MeasureOption", "measure_option",
           "create_measure_batch"]


def _spawn_pool(n: int, initializer=None, initargs=()) -> cf.ProcessPoolExecutor:
    ctx = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=initializer, initargs=initargs)


def _kill_pool(pool) -> None:
    """Kill a pool's worker processes at once and drop the pool (no waiting on stuck work)."""
    if pool is None:
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        try:
            p.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001
        pass
    for p in procs:
        try:
            p.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass


def _short(msg: str, limit: int = 512) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[:limit - 3] + "..."


class Builder:
    """Base of builders: ``build(inputs) -> list[BuildResult]``; ``n_parallel`` sets the batch size."""

    n_parallel = 1

    def build(self, inputs, target=None) -> list:
        """Build every :class:`MeasureInput` (for ``target`` when given, else each input's)."""
        raise NotImplementedError

    def submit(self, inputs, target=None):
        """Start building; the answer's ``result()`` gives the BuildResults (here: at once)."""
        return _DoneBuild(self.build(inputs, target))

    def close(self) -> None:
        """Release worker processes."""


class Runner:
    """Base of runners: ``run(inputs, build_results) -> list[MeasureResult]``."""

    def default_builder(self) -> Builder:
        """The builder :func:`measure_option` pairs with this runner when given none."""
        return LocalBuilder()

    def prepare(self, task, target) -> str:
        """Start up for ``task`` on ``target``; returns the target string to build for."""
        return str(target)

    def run(self, inputs, build_results) -> list:
        """Time every successfully built candidate; failed builds pass their error through."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the runner process."""


_LIVE: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_all():  # pragma: no cover - interpreter exit
    for obj in list(_LIVE):
        try:
            obj.close()
        except Exception:  # noqa: BLE001
            pass


class LocalBuilder(Builder):
    """Compile candidates in ``n_parallel`` spawned worker processes.

    ``timeout``: seconds one build may take (BUILD_TIMEOUT past it); ``max_builds_per_worker``:
    the pool is replaced after about this many builds per worker (llvmlite leaks ~70 KB per
    compile). ``n_parallel`` defaults to the number of CPUs.
    """

    def __init__(self, n_parallel: int | None = None, timeout: float = 10.0, max_builds_per_worker: int = 300):
        self.n_parallel = max(1, int(n_parallel or os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.max_builds_per_worker = max(1, int(max_builds_per_worker))
        self._pool = None
        self._builds = 0
        self._fresh = False
        self._lock = threading.Lock()
        _LIVE.add(self)

    def _get_pool(self):
        if self._pool is None:
            self._pool = _spawn_pool(self.n_parallel, _worker.init_worker, ("builder",))
            self._builds = 0
            self._fresh = True
        return self._pool

    def build(self, inputs, target=None) -> list:
        """Build ``inputs`` in parallel; returns one :class:`BuildResult` per input, in order."""
        return self.submit(inputs, target).result()

    def submit(self, inputs, target=None) -> "_PendingBuild":
        """Start building ``inputs``; ``.result()`` of the answer waits for the BuildResults.
        (The tuning loop builds the next batch this way while the runner times the current one.)"""
        return self.submit_indexed([(inp.task, inp.config.index, str(target or inp.target)) for inp in inputs])

    def submit_indexed(self, candidates) -> "_PendingBuild":
        """Start building ``(task, config index, target string)`` triples (what :meth:`submit`
        and a Dask worker's builds call)."""
        jobs = [(task, int(index), str(target), self.timeout) for task, index, target in candidates]
        with self._lock:
            pool = self._get_pool()
            startup = 60.0 if self._fresh else 0.0
            self._fresh = False
            t0 = time.monotonic()
            try:
                futures = [pool.submit(_worker.build_job, job) for job in jobs]
            except (BrokenProcessPool, RuntimeError):
                _kill_pool(pool)
                self._pool = None
                pool = self._get_pool()
                futures = [pool.submit(_worker.build_job, job) for job in jobs]
            rounds = math.ceil(len(jobs) / self.n_parallel)
            deadline = t0 + startup + rounds * (self.timeout + 2.0) + 5.0
            return _PendingBuild(self, pool, futures, t0, deadline)

    def _collect(self, pending: "_PendingBuild") -> list:
        results, broken = [], False
        for fut in pending.futures:
            try:
                r = fut.result(timeout=max(0.0, pending.deadline - time.monotonic()))
            except cf.TimeoutError:
                broken = True
                r = BuildResult(None, (), MeasureErrorNo.BUILD_TIMEOUT,
                                f"the build ran past {self.timeout:g} s (stuck in native code; "
                                "its worker pool was killed)", self.timeout)
            except BrokenProcessPool as exc:
                broken = True
                r = BuildResult(None, (), MeasureErrorNo.COMPILE_HOST,
                                _short(f"a build worker process died: {exc}"), time.monotonic() - pending.t0)
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
                r = BuildResult(None, (), MeasureErrorNo.UNKNOWN_ERROR,
                                _short(f"{type(exc).__name__}: {exc}"), time.monotonic() - pending.t0)
            results.append(r)
        with self._lock:
            self._builds += len(results)
            if pending.pool is self._pool:
                if broken:
                    _kill_pool(self._pool)
                    self._pool = None
                elif self._builds >= self.max_builds_per_worker * self.n_parallel:
                    self._pool.shutdown(wait=True)
                    self._pool = None
        return results

    def close(self) -> None:
        """Shut the worker pool down."""
        pool, self._pool = self._pool, None
        if pool is not None:
            _kill_pool(pool)


class _PendingBuild:
    """Builds under way; ``result()`` waits for them (at most once)."""

    def __init__(self, builder, pool, futures, t0, deadline):
        self.builder, self.pool, self.futures, self.t0, self.deadline = builder, pool, futures, t0, deadline
        self._results = None

    def result(self) -> list:
        """The BuildResults, in input order."""
        if self._results is None:
            self._results = self.builder._collect(self)
        return self._results

    def cancel(self) -> None:
        """Drop builds not started yet (the others finish and are ignored)."""
        for f in self.futures:
            f.cancel()


class _DoneBuild:
    def __init__(self, results):
        self._results = results

    def result(self) -> list:
        return self._results

    def cancel(self) -> None:
        pass


class LocalRunner(Runner):
    """Time built candidates in one long-lived, isolated runner process.

    ``number`` runs per measurement, ``repeat`` measurements (the logged costs);
    ``min_repeat_ms``: ``number`` grows until one measurement takes this long; ``timeout``:
    seconds one candidate may take (load, first run, check, timing) before RUN_TIMEOUT;
    ``check_correctness``: compare outputs with the template's numpy reference;
    ``device``: the CUDA device index; ``max_runs_per_worker``: replace the process after this
    many candidates (the LLVM JIT leaks a little per module).
    """

    def __init__(self, number: int = 4, repeat: int = 3, min_repeat_ms: float = 0.0, timeout: float = 10.0,
                 check_correctness: bool = False, device: int = 0, max_runs_per_worker: int = 1000,
                 startup_timeout: float = 120.0):
        if number < 1 or repeat < 1:
            raise ArgumentError("LocalRunner: number and repeat must be at least 1")
        self.number, self.repeat, self.min_repeat_ms = int(number), int(repeat), float(min_repeat_ms)
        self.timeout = float(timeout)
        self.check_correctness = bool(check_correctness)
        self.device = int(device)
        self.max_runs_per_worker = max(1, int(max_runs_per_worker))
        self.startup_timeout = float(startup_timeout)
        self._pool = None
        self._info: dict = {}
        self._prepared: dict = {}
        self._runs = 0
        self._kind = None
        self.restarts = 0
        self._no_reference_warned: set = set()
        self._lock = threading.Lock()
        _LIVE.add(self)

    # ---- the runner process
    def _start(self, kind: str) -> None:
        pool = _spawn_pool(1, _worker.init_worker, ("runner",))
        try:
            info = pool.submit(_worker.runner_hello, kind, self.device).result(timeout=self.startup_timeout)
        except BaseException:
            _kill_pool(pool)
            raise
        self._pool, self._info, self._kind = pool, info, kind
        self._prepared = {}
        self._runs = 0

    def _restart(self) -> None:
        _kill_pool(self._pool)
        self._pool = None
        self._prepared = {}
        self.restarts += 1

    def _ensure(self, kind: str) -> None:
        if self._pool is not None and self._kind != kind:
            self._restart()
        if self._pool is None:
            self._start(kind)

    def prepare(self, task, target) -> str:
        """Start the runner process for ``target`` (raises if the device is missing); for
        ``cuda`` without ``-arch=`` returns the target with the device's architecture."""
        kind = Target(target).kind
        with self._lock:
            self._ensure(kind)
            if kind == "cuda" and "-arch" not in str(target):
                return f"{target} -arch={self._info['arch']}"
            return str(target)

    @property
    def device_info(self) -> dict:
        """What the runner process reported at start-up (device name, arch ...)."""
        return dict(self._info)

    def _prepare_data(self, task, target, arg_info) -> tuple:
        key = (task.workload_key, tuple(arg_info), self.check_correctness)
        if key in self._prepared:
            return self._prepared[key]
        job = (task, str(target), tuple(arg_info), self.check_correctness, self.device)
        fut = self._pool.submit(_worker.prepare_job, job)
        has_ref = fut.result(timeout=max(self.startup_timeout, 10 * self.timeout))
        if self.check_correctness and not has_ref and task.workload_key not in self._no_reference_warned:
            self._no_reference_warned.add(task.workload_key)
            warnings.warn(f"autotune: template {task.name!r} has no numpy reference; check_correctness "
                          "is off for it (register one with @autotune.template(..., reference=fn))",
                          stacklevel=3)
        data_id = _worker.data_key(task.workload_key, arg_info)
        self._prepared[key] = (data_id, has_ref)
        return self._prepared[key]

    def run(self, inputs, build_results) -> list:
        """Time each built candidate in turn; returns one :class:`MeasureResult` per input."""
        out = []
        with self._lock:
            for inp, br in zip(inputs, build_results):
                t0 = time.monotonic()
                if int(br.error_no) != 0:
                    out.append(MeasureResult((), MeasureErrorNo(int(br.error_no)), br.error_msg,
                                             br.time_cost, time.time()))
                    continue
                out.append(self._run_one(inp, br))
                out[-1].all_cost = br.time_cost + (time.monotonic() - t0)
        return out

    def _run_one(self, inp, br) -> MeasureResult:
        kind = Target(inp.target).kind
        try:
            self._ensure(kind)
            data_id, has_ref = self._prepare_data(inp.task, inp.target, br.arg_info)
        except cf.TimeoutError:
            self._restart()
            return MeasureResult((), MeasureErrorNo.RUN_TIMEOUT, "preparing the input data timed out",
                                 0.0, time.time())
        except BrokenProcessPool as exc:
            self._restart()
            return MeasureResult((), MeasureErrorNo.RUNTIME_DEVICE,
                                 _short(f"the runner process died while preparing data: {exc}"), 0.0, time.time())
        except Exception as exc:  # noqa: BLE001 - e.g. the reference function failed
            return MeasureResult((), MeasureErrorNo.UNKNOWN_ERROR,
                                 _short(f"preparing the input data failed: {type(exc).__name__}: {exc}"),
                                 0.0, time.time())
        job = (str(inp.target), br.artifact, tuple(br.arg_info), data_id, self.number, self.repeat,
               self.min_repeat_ms, self.check_correctness and has_ref, self.device)
        try:
            fut = self._pool.submit(_worker.run_job, job)
            costs, error_no, msg, fatal = fut.result(timeout=self.timeout)
        except cf.TimeoutError:
            self._restart()
            return MeasureResult((), MeasureErrorNo.RUN_TIMEOUT,
                                 f"the run took longer than {self.timeout:g} s; the runner process was restarted",
                                 self.timeout, time.time())
        except BrokenProcessPool:
            code = self._exit_code()
            self._restart()
            return MeasureResult((), MeasureErrorNo.RUNTIME_DEVICE,
                                 f"the runner process died ({code}); it was restarted", 0.0, time.time())
        except Exception as exc:  # noqa: BLE001
            self._restart()
            return MeasureResult((), MeasureErrorNo.UNKNOWN_ERROR, _short(f"{type(exc).__name__}: {exc}"),
                                 0.0, time.time())
        self._runs += 1
        if fatal or self._runs >= self.max_runs_per_worker:
            self._restart()
            if not fatal:
                self.restarts -= 1  # a planned recycle, not a failure
        return MeasureResult(tuple(costs), MeasureErrorNo(error_no), msg, 0.0, time.time())

    def _exit_code(self) -> str:
        try:
            procs = list(self._pool._processes.values())
        except Exception:  # noqa: BLE001
            procs = []
        for p in procs:
            p.join(timeout=1)
            if p.exitcode is not None and p.exitcode < 0:
                import signal
                try:
                    return f"killed by {signal.Signals(-p.exitcode).name}"
                except ValueError:
                    return f"killed by signal {-p.exitcode}"
            if p.exitcode is not None:
                return f"exit code {p.exitcode}"
        return "unknown cause"

    def close(self) -> None:
        """Stop the runner process."""
        pool, self._pool = self._pool, None
        if pool is not None:
            _kill_pool(pool)


class MeasureOption:
    """A builder and a runner used together; close it (or use ``with``) to stop their processes."""

    def __init__(self, builder: Builder, runner: Runner):
        self.builder = builder
        self.runner = runner

    def close(self) -> None:
        """Stop the builder's and the runner's worker processes."""
        self.builder.close()
        self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __getitem__(self, key):  # TVM-style option["builder"]
        return {"builder": self.builder, "runner": self.runner}[key]


def measure_option(builder: Builder | None = None, runner: Runner | None = None) -> MeasureOption:
    """Combine a builder and a runner (default :class:`LocalRunner`) into the option
    :meth:`Tuner.tune` takes; the builder defaults to the runner's ``default_builder()``
    (:class:`LocalBuilder`; a :class:`~minitvm.autotune.dask_runner.DaskRunner` builds on its
    cluster's CPU workers)."""
    runner = runner if runner is not None else LocalRunner()
    return MeasureOption(builder if builder is not None else runner.default_builder(), runner)


class _MeasureBatch:
    """``measure(inputs)``: build then run; ``submit(inputs)`` / ``run(inputs, builds)`` for the
    pipelined loop."""

    def __init__(self, task, option: MeasureOption):
        self.task = task
        self.option = option
        self.target = option.runner.prepare(task, task.target)
        self.n_parallel = option.builder.n_parallel

    def submit(self, inputs):
        """Start building ``inputs``."""
        return self.option.builder.submit(inputs, self.target)

    def run(self, inputs, pending) -> list:
        """Wait for the builds of ``inputs`` and time them."""
        return self.option.runner.run(inputs, pending.result())

    def __call__(self, inputs) -> list:
        return self.run(inputs, self.submit(inputs))


def create_measure_batch(task, option: MeasureOption):
    """A function measuring a list of :class:`MeasureInput` of ``task``: build, then run.
    Starts the runner first (for ``cuda`` it learns the device's architecture to build for)."""
    return _MeasureBatch(task, option)
