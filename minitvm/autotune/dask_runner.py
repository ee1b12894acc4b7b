"""Tuning on a Dask cluster: builds on CPU workers, measurements on workers that own one GPU each.

    from minitvm import autotune
    runner = autotune.DaskRunner("tcp://scheduler:8786", min_repeat_ms=10, check_correctness=True)
    with autotune.measure_option(runner=runner) as option:   # builds: a DaskBuilder on the same cluster
        tuner.tune(200, option, callbacks=[autotune.log_to_file("r50.log")])

Each candidate takes the local path inside a Dask worker: a build task hands it to that worker's
:class:`~minitvm.autotune.measure.LocalBuilder` (spawned compile processes, the build timeout),
a measure task to that worker's :class:`~minitvm.autotune.measure.LocalRunner` (one isolated
runner process holding the CUDA context, the run timeout, a new process after a crash). Dask
adds where things run and what happens when a worker is lost:

* a measure task asks for one unit of the worker resource ``resource`` (``"GPU"``): only workers
  started with ``--resources GPU=1`` take it, one at a time, on the device their
  ``CUDA_VISIBLE_DEVICES`` names (two measuring workers of one host that see the same GPUs are
  refused for CUDA targets), so timings never share a device;
* build tasks go to the workers without that resource (any worker, if there are none): a build
  on a measuring worker would hold its thread, and its GPU would wait;
* a worker that dies mid-task has its task run again on another one by the scheduler (up to
  ``distributed.scheduler.allowed-failures`` times; then the candidate is recorded as
  ``RUNTIME_DEVICE``, or ``COMPILE_HOST`` for a build); when no candidate of a batch finished for
  ``stall_timeout`` seconds, the workers holding the unfinished ones are taken to be hung and
  removed from the cluster, so their candidates go elsewhere; candidates still unfinished after
  another such wait are recorded as ``RUN_TIMEOUT`` (``BUILD_TIMEOUT``). The tuner goes on, and
  every trial reaches the log.

``import minitvm`` does not import Dask: ``distributed`` is imported when a runner, builder or
cluster is made (``pip install 'minitvm[dask]'``). The workers need minitvm (and the modules of
any user template) importable; the scheduler does not.
"""
from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import queue
import threading
import time
import uuid

from ..errors import ArgumentError, DeviceError, UsageError
from ..target import Target
from .measure import Builder, LocalBuilder, LocalRunner, Runner, _short
from .result import BuildResult, MeasureErrorNo, MeasureInput, MeasureResult

__all__ = ["DaskRunner", "DaskBuilder", "local_cluster", "visible_gpus"]


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise UsageError("tuning through Dask needs the package 'distributed' "
                         "(pip install 'minitvm[dask]')") from exc
    return distributed


# --------------------------------------------------------------------------------------------
# inside a Dask worker
# --------------------------------------------------------------------------------------------
_LOCAL: dict = {}      # (worker address, owner token, role) -> this worker's LocalBuilder / LocalRunner
_LOCAL_LOCK = threading.Lock()


def _local(token: str, role: str, settings: dict):
    """This worker's LocalBuilder or LocalRunner for the client ``token`` (made on first use)."""
    worker = _distributed().get_worker()
    key = (worker.address, token, role)
    with _LOCAL_LOCK:
        obj = _LOCAL.get(key)
        if obj is None:
            # A worker started by a Nanny is a daemonic process, and multiprocessing refuses
            # children to those (they could outlive it). Ours cannot: every pool process exits
            # with its parent (_worker.init_worker).
            me = multiprocessing.current_process()
            if me.daemon:
                me.daemon = False
            if role == "builder":
                obj = LocalBuilder(n_parallel=worker.state.nthreads, **settings)
            else:
                obj = LocalRunner(device=0, **settings)   # the worker's GPU: CUDA_VISIBLE_DEVICES
            _LOCAL[key] = obj
    return obj, worker


def _worker_name(worker) -> str:
    return str(worker.name) if worker.name is not None else worker.address


def _build_on_worker(token, settings, task, index, target) -> BuildResult:
    builder, _ = _local(token, "builder", settings)
    return builder.submit_indexed([(task, index, target)]).result()[0]


def _hello_on_worker(token, settings, target) -> dict:
    runner, worker = _local(token, "runner", settings)
    runner.prepare(None, target)
    return dict(runner.device_info, worker=_worker_name(worker))


def _measure_on_worker(token, settings, target, task, build_result):
    runner, worker = _local(token, "runner", settings)
    # the runner reads the target and task of an input, never its config
    return runner.run([MeasureInput(target, task, None)], [build_result])[0], _worker_name(worker)


def _visible_devices_of_worker():
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def _release_on_worker(token) -> int:
    """Stop this worker's builder and runner processes of client ``token``."""
    with _LOCAL_LOCK:
        keys = [k for k in _LOCAL if k[1] == token]
        objs = [_LOCAL.pop(k) for k in keys]
    for obj in objs:
        obj.close()
    return len(objs)


# --------------------------------------------------------------------------------------------
# on the scheduler
# --------------------------------------------------------------------------------------------
def _scheduler_functions():
    """The functions run on the scheduler. Made inside a function so that cloudpickle sends
    them by value: the scheduler needs no minitvm."""

    def workers(dask_scheduler):
        return {addr: {"name": str(ws.name), "host": ws.host, "nthreads": ws.nthreads,
                       "resources": dict(ws.resources)} for addr, ws in dask_scheduler.workers.items()}

    async def drop_holders(keys, dask_scheduler):
        held = {ts.processing_on.address for k in keys
                if (ts := dask_scheduler.tasks.get(k)) is not None and ts.processing_on is not None}
        names = []
        for addr in sorted(held):
            ws = dask_scheduler.workers.get(addr)
            if ws is not None:
                names.append(f"{ws.name} ({addr})")
                await dask_scheduler.remove_worker(addr, stimulus_id=f"minitvm-stalled-{time.time()}")
        return names

    return workers, drop_holders


_SCHEDULER_WORKERS, _SCHEDULER_DROP = _scheduler_functions()


class _Stalled(Exception):
    """Stands in for a candidate that no worker finished (the workers holding it hung)."""


# --------------------------------------------------------------------------------------------
# the client side
# --------------------------------------------------------------------------------------------
class _DaskClient:
    """What DaskBuilder and DaskRunner share: the client, the worker table, the stall watch and
    the release of the workers' processes."""

    def _connect(self, cluster, resource, stall_timeout) -> None:
        distributed = _distributed()
        self._own_client = not isinstance(cluster, distributed.Client)
        if isinstance(cluster, str) and not cluster:
            raise ArgumentError("Dask: the scheduler address is empty (e.g. tcp://host:8786)")
        self.client = distributed.Client(cluster, set_as_default=False) if self._own_client else cluster
        self.resource = resource or None
        self.stall_timeout = float(stall_timeout)
        self._token = uuid.uuid4().hex
        self._cluster = None    # closed with us when we made it (DaskRunner.local)

    def workers(self) -> dict:
        """The cluster's workers now: address -> name, host, nthreads, resources."""
        return self.client.run_on_scheduler(_SCHEDULER_WORKERS)

    def _split(self, table) -> tuple:
        """(measuring workers, build workers) of a worker table."""
        measuring = [a for a, w in table.items() if self.resource is None or w["resources"].get(self.resource)]
        building = [a for a in table if a not in measuring] if self.resource is not None else list(table)
        return measuring, building

    def _collect(self, futures) -> list:
        """Each future's result in order, or the exception that stands in for it. When nothing
        finishes for ``stall_timeout`` s, the workers holding what is left are removed (once
        per stall); after a second stall in a row the rest are cancelled as :class:`_Stalled`."""
        finished: queue.Queue = queue.Queue()
        for f in futures:
            f.add_done_callback(finished.put)
        got, pending, dropped = {}, {f.key: f for f in futures}, None
        while pending:
            try:
                f = finished.get(timeout=self.stall_timeout)
            except queue.Empty:
                if dropped is None:
                    try:
                        dropped = self.client.run_on_scheduler(_SCHEDULER_DROP, list(pending))
                    except Exception as exc:  # noqa: BLE001 - the scheduler is gone too: give up on these
                        dropped = []
                        logging.getLogger("minitvm.autotune").warning("Dask: the scheduler did not answer: %s", exc)
                    if dropped:
                        logging.getLogger("minitvm.autotune").warning(
                            "Dask: nothing finished for %g s; removed the hung worker(s) %s",
                            self.stall_timeout, ", ".join(dropped))
                        continue
                why = (f"no Dask worker finished it within {self.stall_timeout:g} s"
                       + (f" (hung workers removed: {', '.join(dropped)})" if dropped else
                          " (no worker was running it: none may take it)"))
                for key in pending:
                    got[key] = _Stalled(why)
                self.client.cancel(list(pending.values()))
                break
            if pending.pop(f.key, None) is None:
                continue
            dropped = None
            if f.status == "finished":
                got[f.key] = f.result()
                continue
            try:
                got[f.key] = f.exception() or RuntimeError(f"task {f.status}")
            except BaseException as exc:  # noqa: BLE001 - cancelled: the exception is the answer
                got[f.key] = exc
        return [got[f.key] for f in futures]

    def _release(self) -> None:
        try:
            self.client.run(_release_on_worker, self._token, wait=True)
        except Exception:  # noqa: BLE001 - workers gone already
            pass
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _lost(exc, role: str) -> tuple:
    """(error code, message) of a candidate whose Dask task failed with ``exc``."""
    distributed = _distributed()
    if isinstance(exc, _Stalled):
        code = MeasureErrorNo.BUILD_TIMEOUT if role == "build" else MeasureErrorNo.RUN_TIMEOUT
        return code, str(exc)
    if isinstance(exc, distributed.KilledWorker):
        code = MeasureErrorNo.COMPILE_HOST if role == "build" else MeasureErrorNo.RUNTIME_DEVICE
        doing = "building" if role == "build" else "measuring"
        return code, _short(f"the Dask workers {doing} it died each time: {exc}")
    return MeasureErrorNo.UNKNOWN_ERROR, _short(f"the Dask {role} task failed: {type(exc).__name__}: {exc}")


class DaskBuilder(_DaskClient, Builder):
    """Compile candidates on a Dask cluster's build workers (those without ``resource``), each
    through that worker's :class:`~minitvm.autotune.measure.LocalBuilder` (``timeout``,
    ``max_builds_per_worker`` as there; one compile process per worker thread).

    ``cluster``: a ``distributed.Client`` (kept open), a scheduler address or a cluster object;
    ``n_parallel`` (the tuner's batch size): default, the build workers' threads, at least two
    per worker with ``resource``.
    """

    def __init__(self, cluster, n_parallel: int | None = None, timeout: float = 10.0,
                 max_builds_per_worker: int = 300, resource: str | None = "GPU", stall_timeout: float | None = None):
        self._connect(cluster, resource, stall_timeout if stall_timeout is not None else 90.0 + timeout)
        self._n_parallel = None if n_parallel is None else max(1, int(n_parallel))
        self.timeout = float(timeout)
        self._settings = {"timeout": self.timeout, "max_builds_per_worker": max(1, int(max_builds_per_worker))}

    @property
    def n_parallel(self) -> int:
        """Candidates per batch: as given, else the threads of the build workers, and at least
        two per measuring worker (so that every GPU has work while the batch lasts)."""
        if self._n_parallel is not None:
            return self._n_parallel
        table = self.workers()
        measuring, building = self._split(table)
        return max(1, sum(table[a]["nthreads"] for a in (building or table)), 2 * len(measuring))

    def build(self, inputs, target=None) -> list:
        """Build ``inputs``; one :class:`BuildResult` per input, in order."""
        return self.submit(inputs, target).result()

    def submit(self, inputs, target=None) -> "_PendingDaskBuild":
        """Start building ``inputs`` on the cluster; ``.result()`` waits for the BuildResults."""
        _, building = self._split(self.workers())
        futures = [self.client.submit(_build_on_worker, self._token, self._settings, inp.task, inp.config.index,
                                      str(target or inp.target), workers=building or None, pure=False)
                   for inp in inputs]
        return _PendingDaskBuild(self, futures)

    def close(self) -> None:
        """Stop the workers' compile processes (and the client, if this builder made it)."""
        self._release()


class _PendingDaskBuild:
    """Builds under way on the cluster; ``result()`` waits for them (at most once)."""

    def __init__(self, builder, futures):
        self.builder, self.futures, self.t0 = builder, futures, time.monotonic()
        self._results = None

    def result(self) -> list:
        """The BuildResults, in input order."""
        if self._results is None:
            out = []
            for got in self.builder._collect(self.futures):
                if isinstance(got, BaseException):
                    code, msg = _lost(got, "build")
                    got = BuildResult(None, (), code, msg, time.monotonic() - self.t0)
                out.append(got)
            self._results = out
        return self._results

    def cancel(self) -> None:
        """Drop the builds (the tuner stopped)."""
        self.builder.client.cancel(self.futures)


class DaskRunner(_DaskClient, Runner):
    """Time built candidates on the workers of a Dask cluster that declare ``resource``
    (``"GPU"``: one worker per GPU), each through that worker's
    :class:`~minitvm.autotune.measure.LocalRunner` (``number``, ``repeat``, ``min_repeat_ms``,
    ``timeout``, ``check_correctness``, ``max_runs_per_worker``, ``startup_timeout`` as there).
    ``resource=None`` measures on any worker.

    ``cluster``: a ``distributed.Client`` (kept open), a scheduler address
    (``"tcp://host:8786"``) or a cluster object; :meth:`local` starts one on this host.
    ``stall_timeout``: seconds without any candidate of a batch finishing after which the
    workers holding the rest count as hung (default: the longest a healthy worker can take for
    one candidate: start-up, input data, run). Its default builder is a :class:`DaskBuilder`
    on the same client. ``worker_rates()`` gives the trials/s of each measuring worker.
    """

    def __init__(self, cluster, number: int = 4, repeat: int = 3, min_repeat_ms: float = 0.0, timeout: float = 10.0,
                 check_correctness: bool = False, resource: str | None = "GPU", max_runs_per_worker: int = 1000,
                 startup_timeout: float = 120.0, stall_timeout: float | None = None):
        if number < 1 or repeat < 1:
            raise ArgumentError("DaskRunner: number and repeat must be at least 1")
        self.timeout, self.startup_timeout = float(timeout), float(startup_timeout)
        if stall_timeout is None:
            stall_timeout = self.startup_timeout + max(self.startup_timeout, 10 * self.timeout) + self.timeout + 10
        self._connect(cluster, resource, stall_timeout)
        self._settings = {"number": int(number), "repeat": int(repeat), "min_repeat_ms": float(min_repeat_ms),
                          "timeout": self.timeout, "check_correctness": bool(check_correctness),
                          "max_runs_per_worker": int(max_runs_per_worker), "startup_timeout": self.startup_timeout}
        self._info: dict = {}                       # worker address -> what its runner reported
        self._trials: collections.Counter = collections.Counter()   # worker name -> trials measured
        self._t0 = None
        self._lock = threading.Lock()

    @classmethod
    def local(cls, gpus: int | None = None, devices=None, build_threads: int | None = None, **kwargs) -> "DaskRunner":
        """A runner over a new :func:`local_cluster` (closed with the runner)."""
        cluster = local_cluster(gpus, devices, build_threads, resource=kwargs.get("resource", "GPU"))
        try:
            runner = cls(cluster, **kwargs)
        except BaseException:
            cluster.close()
            raise
        runner._cluster = cluster
        return runner

    def default_builder(self) -> DaskBuilder:
        """A :class:`DaskBuilder` on this runner's client."""
        return DaskBuilder(self.client, resource=self.resource)

    # ---- the measuring workers
    def _measuring_workers(self) -> list:
        """The measuring workers, waiting up to ``startup_timeout`` for one to join."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            measuring, _ = self._split(self.workers())
            if measuring or time.monotonic() > deadline:
                return measuring
            time.sleep(0.5)

    def _no_workers(self) -> DeviceError:
        where = getattr(self.client.scheduler, "address", "the cluster")
        return DeviceError(
            f"no worker of the Dask cluster at {where} declares the resource {self.resource!r} within "
            f"{self.startup_timeout:g} s: start one worker per GPU, e.g. CUDA_VISIBLE_DEVICES=0 dask worker "
            f"{where} --nthreads 1 --resources {self.resource}=1")

    def _check_devices(self, measuring) -> None:
        """Refuse two measuring workers of one host that see the same GPUs."""
        table = self.workers()
        seen = self.client.run(_visible_devices_of_worker, workers=measuring)
        by_device: dict = {}
        for addr in measuring:
            if addr not in table or addr not in seen:
                continue
            key = (table[addr]["host"], seen[addr])
            by_device.setdefault(key, []).append(f"{table[addr]['name']} ({addr})")
        for (host, visible), names in by_device.items():
            if len(names) > 1:
                shown = "unset" if visible is None else repr(visible)
                raise DeviceError(f"the measuring Dask workers {', '.join(names)} on {host} all see the same GPUs "
                                  f"(CUDA_VISIBLE_DEVICES {shown}): their timings would share a device; give each "
                                  "worker its own GPU with CUDA_VISIBLE_DEVICES")

    def prepare(self, task, target) -> str:
        """Start the runner process of every measuring worker (raises if there is none, if two
        share a GPU, or if their GPUs differ in architecture); for ``cuda`` without ``-arch=``
        returns the target with the workers' architecture."""
        kind = Target(target).kind
        measuring = self._measuring_workers()
        if not measuring:
            raise self._no_workers()
        if kind == "cuda":
            self._check_devices(measuring)
        new = [a for a in measuring if (a, kind) not in self._info]
        futures = [self.client.submit(_hello_on_worker, self._token, self._settings, kind, workers=[a],
                                      allow_other_workers=False, pure=False,
                                      resources={self.resource: 1} if self.resource else None) for a in new]
        for addr, got in zip(new, self._collect(futures)):
            if isinstance(got, _Stalled):
                raise DeviceError(f"the measuring Dask worker {addr} did not start its runner: {got}")
            if isinstance(got, BaseException):
                raise DeviceError(f"the measuring Dask worker {addr} could not start its runner: "
                                  f"{type(got).__name__}: {got}") from got
            self._info[(addr, kind)] = got
        infos = [self._info[(a, kind)] for a in measuring]
        if kind != "cuda":
            return str(target)
        archs = sorted({i["arch"] for i in infos})
        if len(archs) > 1:
            shown = "; ".join(f"{i['worker']}: {i.get('name')} {i['arch']}" for i in infos)
            raise DeviceError(f"the measuring Dask workers have GPUs of different architectures ({shown}); "
                              "tune for one architecture at a time (a resource name per kind of GPU)")
        return str(target) if "-arch" in str(target) else f"{target} -arch={archs[0]}"

    @property
    def device_info(self) -> dict:
        """What each measuring worker's runner reported at start-up, by worker name."""
        return {i["worker"]: dict(i) for i in self._info.values()}

    # ---- measuring
    def run(self, inputs, build_results) -> list:
        """Time each built candidate on some measuring worker; one :class:`MeasureResult` per
        input, in order (a lost candidate gets its error code, see the module's notes)."""
        return self._run(inputs, build_results, None)

    def run_on(self, worker: str, inputs, build_results) -> list:
        """As :meth:`run`, all on the one worker named ``worker`` (its name or address): e.g. the
        same configs timed on each GPU to compare the devices."""
        table = self.workers()
        addr = next((a for a, w in table.items() if worker in (a, w["name"])), None)
        if addr is None:
            raise ArgumentError(f"DaskRunner.run_on: no worker {worker!r} in the cluster "
                                f"(workers: {sorted(w['name'] for w in table.values())})")
        return self._run(inputs, build_results, addr)

    def _run(self, inputs, build_results, worker) -> list:
        out = [None] * len(inputs)
        with self._lock:
            todo = [k for k, br in enumerate(build_results) if int(br.error_no) == 0]
            for k, br in enumerate(build_results):
                if int(br.error_no) != 0:
                    out[k] = MeasureResult((), MeasureErrorNo(int(br.error_no)), br.error_msg, br.time_cost, time.time())
            if todo and worker is None and not self._measuring_workers():
                err = self._no_workers()
                for k in todo:
                    out[k] = MeasureResult((), MeasureErrorNo.RUNTIME_DEVICE, _short(str(err)),
                                           build_results[k].time_cost, time.time())
                return out
            if todo and self._t0 is None:
                self._t0 = time.monotonic()
            futures = [self.client.submit(_measure_on_worker, self._token, self._settings, str(inputs[k].target),
                                          inputs[k].task, build_results[k], pure=False,
                                          resources={self.resource: 1} if self.resource else None,
                                          workers=[worker] if worker else None, allow_other_workers=False)
                       for k in todo]
            for k, got in zip(todo, self._collect(futures)):
                if isinstance(got, BaseException):
                    code, msg = _lost(got, "measure")
                    out[k] = MeasureResult((), code, msg, build_results[k].time_cost, time.time())
                else:
                    out[k], name = got
                    self._trials[name] += 1
        return out

    def worker_rates(self) -> dict:
        """Trials per second of each measuring worker since this runner's first measurement."""
        if self._t0 is None:
            return {}
        elapsed = max(1e-9, time.monotonic() - self._t0)
        return {name: n / elapsed for name, n in sorted(self._trials.items())}

    @property
    def worker_trials(self) -> dict:
        """Trials measured by each worker (by name)."""
        return dict(self._trials)

    def close(self) -> None:
        """Stop the workers' runner processes (and the client and cluster, if this runner made them)."""
        self._release()


# --------------------------------------------------------------------------------------------
# a cluster on this host
# --------------------------------------------------------------------------------------------
def visible_gpus() -> list:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (its own list when
    set, else ``0 .. n-1`` of the driver's devices)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    from ..runtime import cuda
    return [str(i) for i in range(cuda.device_count())]


def local_cluster(gpus: int | None = None, devices=None, build_threads: int | None = None, resource: str = "GPU",
                  silence_logs: int = logging.WARNING):
    """A Dask cluster on this host, listening on 127.0.0.1 only: one measuring worker process
    per GPU (``CUDA_VISIBLE_DEVICES`` = that GPU, resource ``resource`` = 1, one thread) for the
    first ``gpus`` of ``devices`` (default: :func:`visible_gpus`, all of them), and one build
    worker process with ``build_threads`` threads (default: the CPUs the measuring workers
    leave, at least 1). Close it with ``close()``."""
    distributed = _distributed()
    devices = [str(d) for d in (visible_gpus() if devices is None else devices)]
    n = len(devices) if gpus is None else int(gpus)
    if n < 1:
        raise ArgumentError(f"local_cluster: gpus must be at least 1, got {gpus}")
    if n > len(devices):
        raise DeviceError(f"local_cluster: {n} GPUs asked for, but {len(devices)} are visible here "
                          f"({', '.join(devices) or 'none'}; CUDA_VISIBLE_DEVICES="
                          f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    if len(set(devices[:n])) < n:
        raise ArgumentError(f"local_cluster: a GPU is named twice in {devices[:n]}")
    threads = build_threads if build_threads is not None else max(1, (os.cpu_count() or 1) - n)
    common = {"host": "127.0.0.1", "memory_limit": 0, "silence_logs": silence_logs}
    workers = {f"gpu-{d}": {"cls": distributed.Nanny,
                            "options": dict(common, nthreads=1, resources={resource: 1},
                                            env={"CUDA_VISIBLE_DEVICES": d})}
               for d in devices[:n]}
    workers["build"] = {"cls": distributed.Nanny, "options": dict(common, nthreads=max(1, int(threads)))}
    scheduler = {"cls": distributed.Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}}
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=silence_logs,
                                   name="minitvm-tune")
