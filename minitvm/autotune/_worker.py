"""Code that runs inside the builder and runner worker processes (spawned, not forked).

Kept apart from ``measure.py`` so a worker imports only what a job needs. Every function here
returns plain, picklable results; failures become error codes, never exceptions the parent has
to unpickle (except for setup errors such as a missing GPU, which should stop tuning).
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import threading
import time
import zlib
from contextlib import contextmanager

import numpy as np

from ..errors import ArgumentError
from .result import BuildResult, MeasureErrorNo

_MAX_MSG = 512


def _short(exc) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_MSG else text[:_MAX_MSG - 3] + "..."


def init_worker(role: str) -> None:
    """Worker start-up: leave Ctrl-C to the parent (it stops the workers), and exit when the
    parent dies."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # pragma: no cover - not the main thread
        pass
    os.environ.setdefault("MINITVM_AUTOTUNE_WORKER", role)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # a pool process would wait on its call queue forever once its parent is gone (a Dask
        # worker killed mid-task, a tuning script killed by the OOM killer): leave with it
        threading.Thread(target=_exit_with, args=(parent,), name="minitvm-parent-watch", daemon=True).start()


def _exit_with(parent) -> None:
    parent.join()
    os._exit(1)


class _Timeout(BaseException):
    """Raised by the alarm inside a job (a BaseException so ``except Exception`` in a template
    does not swallow it)."""


@contextmanager
def _alarm(seconds: float):
    """Interrupt the enclosed Python code after ``seconds`` with :class:`_Timeout`."""
    usable = seconds and seconds > 0 and hasattr(signal, "setitimer") \
        and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------------------------
# builder
# --------------------------------------------------------------------------------------------
_TASKS: dict = {}


def _cached_task(task):
    """One Task object per workload in this process, so its space is built once."""
    key = (task.workload_key, task.target)
    t = _TASKS.get(key)
    if t is None:
        if len(_TASKS) > 64:
            _TASKS.clear()
        t = _TASKS[key] = task
    return t


def _arg_info(tensors) -> tuple:
    from ..tensor import PlaceholderOp
    info = []
    for t in tensors:
        shape = []
        for d in t.shape:
            v = getattr(d, "value", d)
            if not isinstance(v, int):
                raise ArgumentError(f"argument {t.name} has a symbolic dimension {d}; tuning needs constant shapes")
            shape.append(int(v))
        info.append((tuple(shape), str(t.dtype), not isinstance(t.op, PlaceholderOp)))
    return tuple(info)


def build_job(job):
    """Instantiate the template with config ``index`` and compile it for ``target``."""
    from ..target import Target
    task, index, target, timeout = job
    t0 = time.perf_counter()

    def fail(code, exc):
        return BuildResult(None, (), code, _short(exc), time.perf_counter() - t0)

    target = Target(target)
    try:
        with _alarm(timeout):
            try:
                task = _cached_task(task)
                config = task.config_space.get(index)
                sch, tensors = task.instantiate(config)
                arg_info = _arg_info(tensors)
            except Exception as exc:  # noqa: BLE001
                return fail(MeasureErrorNo.INSTANTIATION_ERROR, exc)
            from ..lowering.lower import lower
            try:
                func = lower(sch, list(tensors), name="main", target=target)
                if target.kind == "cuda":
                    from ..codegen.cuda import codegen_cuda
                    source, plans, signatures = codegen_cuda([func], target.arch)
                else:
                    from ..codegen.llvm import codegen_llvm, target_options
                    from ..runtime import llvm as rt
                    options = target_options(target)
                    triple, layout = rt.target_info(options)
                    artifact = codegen_llvm([func], triple, layout, target.features)
            except Exception as exc:  # noqa: BLE001
                return fail(MeasureErrorNo.COMPILE_HOST, exc)
            try:
                if target.kind == "cuda":
                    from ..runtime.cuda import CUDAModule
                    artifact = CUDAModule(source, signatures, plans, target.arch)
                else:
                    rt.compile_ir(artifact.ir, options)  # LLVM accepts it
            except Exception as exc:  # noqa: BLE001
                return fail(MeasureErrorNo.COMPILE_DEVICE if target.kind == "cuda" else MeasureErrorNo.COMPILE_HOST, exc)
    except _Timeout:
        return fail(MeasureErrorNo.BUILD_TIMEOUT, f"the build took longer than {timeout:g} s")
    return BuildResult(artifact, arg_info, MeasureErrorNo.NO_ERROR, "", time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# runner
# --------------------------------------------------------------------------------------------
_DATA: "collections.OrderedDict" = collections.OrderedDict()
_MAX_DATA = 4
_POISON_BYTE = 0xA5
_STICKY = ("ILLEGAL_ADDRESS", "LAUNCH_FAILED", "MISALIGNED_ADDRESS", "ILLEGAL_INSTRUCTION",
           "HARDWARE_STACK_ERROR", "INVALID_PC", "ASSERT", "ECC_UNCORRECTABLE", "CONTEXT_IS_DESTROYED",
           "LAUNCH_TIMEOUT")


def runner_hello(kind: str, device: int) -> dict:
    """Start-up of the runner process: open the device (the CUDA context) and describe it."""
    info = {"pid": os.getpid(), "kind": kind}
    if kind == "cuda":
        from ..runtime import cuda
        cuda.require_device(device)
        info.update(arch=cuda.device_arch(device), name=cuda.device_name(device))
    else:
        from ..runtime import llvm as rt
        info.update(cpu=rt.host_cpu()[0])
    return info


def data_key(workload_key: str, arg_info) -> str:
    """The id under which a workload's input data live in the runner process."""
    return f"{workload_key}|{arg_info!r}"


def _random(rng, shape, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.uniform(-1.0, 1.0, shape).astype(dt)
    if dt.kind in "iu":
        if dt.itemsize == 1:
            info = np.iinfo(dt)
            return rng.integers(int(info.min), int(info.max) + 1, shape, dtype=np.int64).astype(dt)
        lo, hi = (-1000, 1001) if dt.kind == "i" else (0, 1001)
        return rng.integers(lo, hi, shape, dtype=np.int64).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(dt)
    return np.zeros(shape, dt)


def _poison_host(a: np.ndarray) -> None:
    if a.dtype.kind == "f":
        a.fill(np.nan)
    else:
        a.view(np.uint8).fill(_POISON_BYTE)


def prepare_job(job) -> bool:
    """Make the input data of a workload (and, when asked, its reference outputs) and keep them
    in this process; returns whether a reference exists."""
    task, target, arg_info, check, device = job
    from ..target import Target
    kind = Target(target).kind
    key = data_key(task.workload_key, arg_info)
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    host = []
    for shape, dtype, is_out in arg_info:
        host.append(np.empty(shape, dtype) if is_out else _random(rng, shape, dtype))
    ref = None
    if check:
        fn = task.template.reference
        if fn is not None:
            inputs = [a for a, (_, _, is_out) in zip(host, arg_info) if not is_out]
            outs = fn(inputs, *task.args)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            ref = [np.asarray(o) for o in outs]
    if kind == "cuda":
        from ..runtime import ndarray as nd
        dev = nd.cuda(device)
        args = [nd.empty(a.shape, str(a.dtype), dev) if is_out else nd.array(a, dev)
                for a, (_, _, is_out) in zip(host, arg_info)]
    else:
        args = host
    _DATA[key] = {"args": args, "out": [i for i, (_, _, o) in enumerate(arg_info) if o], "ref": ref}
    _DATA.move_to_end(key)
    while len(_DATA) > _MAX_DATA:
        _DATA.popitem(last=False)
    return ref is not None


def _context_alive(device: int) -> bool:
    try:
        from ..runtime import cuda
        cuda.synchronize(device)
        return True
    except Exception:  # noqa: BLE001
        return False


def _compare(got: np.ndarray, want: np.ndarray) -> str:
    """'' when ``got`` matches ``want``, else a short description of the mismatch."""
    if got.shape != want.shape:
        return f"shape {got.shape} != reference {want.shape}"
    if got.dtype.kind in "iub":
        bad = got != want.astype(got.dtype)
        if not bad.any():
            return ""
    else:
        w = want.astype(np.float64)
        g = got.astype(np.float64)
        scale = max(1.0, float(np.abs(w).max()) if w.size else 1.0)
        bad = ~np.isclose(g, w, rtol=1e-3, atol=1e-4 * scale)
        if not bad.any():
            return ""
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return (f"{int(bad.sum())} of {bad.size} values differ, first at {first}: "
            f"{got[first].item()!r} != {want[first].item()!r}")


def run_job(job):
    """Load one built candidate, run it once (checking it if asked), then time it.
    Returns ``(costs, error_no, message, fatal)``; ``fatal`` asks for a new process."""
    target, artifact, arg_info, key, number, repeat, min_repeat_ms, check, device = job
    from ..target import Target
    kind = Target(target).kind
    d = _DATA.get(key)
    if d is None:
        return [], int(MeasureErrorNo.UNKNOWN_ERROR), "the runner lost the input data (restarted?)", False
    args = d["args"]

    def device_failure(exc):
        msg = _short(exc)
        fatal = kind == "cuda" and (any(s in msg for s in _STICKY) or not _context_alive(device))
        return [], int(MeasureErrorNo.RUNTIME_DEVICE), msg, fatal

    try:
        if kind == "cuda":
            mod = artifact
        else:
            from ..codegen.llvm import target_options
            from ..runtime import llvm as rt
            mod = rt.LLVMModule(artifact, target_options(target))
    except Exception as exc:  # noqa: BLE001
        code = MeasureErrorNo.COMPILE_DEVICE if kind == "cuda" else MeasureErrorNo.COMPILE_HOST
        return [], int(code), _short(exc), False
    try:
        for i in d["out"]:
            if kind == "cuda":
                args[i].handle.memset_d8(_POISON_BYTE)
            else:
                _poison_host(args[i])
        mod(*args)
        if kind == "cuda":
            from ..runtime import cuda
            cuda.synchronize(device)
    except Exception as exc:  # noqa: BLE001
        return device_failure(exc)
    if check and d["ref"] is not None:
        outs = [args[i].numpy() if kind == "cuda" else args[i] for i in d["out"]]
        if len(outs) != len(d["ref"]):
            return ([], int(MeasureErrorNo.WRONG_ANSWER), f"{len(outs)} outputs but the reference gave {len(d['ref'])}",
                    False)
        for k, (got, want) in enumerate(zip(outs, d["ref"])):
            why = _compare(np.asarray(got), want)
            if why:
                return [], int(MeasureErrorNo.WRONG_ANSWER), _short(f"output {k}: {why}"), False
    try:
        res = mod.time_evaluator(mod.entry_name, number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)(*args)
    except Exception as exc:  # noqa: BLE001
        return device_failure(exc)
    return [float(c) for c in res.results], int(MeasureErrorNo.NO_ERROR), "", False

