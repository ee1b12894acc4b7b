"""The CPU runtime: JIT-compile LLVM IR with llvmlite and call it through ctypes.

LLVM is initialized once per process and a target machine is cached per target; every
module is parsed into its own LLVM context and optimized with LLVM's default -O3 pipeline
(new pass manager). Each :class:`LLVMModule` owns one MCJIT execution engine, which keeps the
machine code alive as long as the module lives.

Parallel loops call ``minitvm_parallel_for``: the generated code passes an outlined body
``i32 body(i64 begin, i64 end, ptr closure)`` and the trip count; the iteration range is cut
into one contiguous chunk per thread. On x86-64 Linux that symbol is the native
pool of :mod:`minitvm.runtime.llvm_pool`, machine code all the way; elsewhere it is
:func:`_parallel_for_impl`, a Python thread pool reached through ctypes (about 0.1 ms a loop).
A parallel loop met while already inside one runs serially on the current thread.
"""
from __future__ import annotations

import ctypes
import os
import queue
import re
import sys
import threading
import traceback
from dataclasses import dataclass

import numpy as np

from .. import dtype as dt
from ..errors import ArgumentError, BuildError, DtypeError, RuntimeError_
from . import llvm_pool
from .module import Module
from .ndarray import NDArray, _cpu_from

_CTYPES = {
    "int8": ctypes.c_int8, "int16": ctypes.c_int16, "int32": ctypes.c_int32, "int64": ctypes.c_int64,
    "uint8": ctypes.c_uint8, "uint16": ctypes.c_uint16, "uint32": ctypes.c_uint32,
    "uint64": ctypes.c_uint64,
}

_lock = threading.RLock()
_llvm_state: dict = {}


# ----------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetOptions:
    """What ``llvm -mcpu=... -mattr=... -opt-level=...`` asks for (empty cpu = the host's).

    Plain data: :func:`minitvm.codegen.llvm.target_options` makes it from a parsed
    :class:`~minitvm.target.Target`, which sits above the runtime.
    """

    cpu: str = ""
    features: str = ""
    opt_level: int = 3


def _llvm():
    """llvmlite.binding, with the native target initialized and our runtime symbols added."""
    llvm = _llvm_state.get("binding")
    if llvm is not None:
        return llvm
    with _lock:
        if "binding" not in _llvm_state:
            import llvmlite.binding as llvm
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_native_asmparser()
            target = llvm.Target.from_default_triple()
            host = (llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())
            pool = llvm_pool.build(llvm, target.create_target_machine(cpu=host[0], features=host[1], opt=2,
                                                                      jit=True))
            if pool is not None:
                pool.set_threads(num_threads())
                llvm.add_symbol("minitvm_parallel_for", pool.parallel_for)
            else:
                llvm.add_symbol("minitvm_parallel_for", ctypes.cast(_PARALLEL_FOR, ctypes.c_void_p).value)
            _llvm_state["target"], _llvm_state["host"], _llvm_state["pool"] = target, host, pool
            _llvm_state["binding"] = llvm
    return _llvm_state["binding"]


def _resolve(options: TargetOptions):
    host_cpu, host_features = _llvm_state["host"]
    if options.cpu:
        return options.cpu, options.features
    return host_cpu, (host_features + "," + options.features if options.features else host_features)


def _new_target_machine(options: TargetOptions):
    llvm = _llvm()
    cpu, features = _resolve(options)
    return _llvm_state["target"].create_target_machine(
        cpu=cpu, features=features, opt=options.opt_level, jit=True)


def _cached(options: TargetOptions):
    """The target machine for ``options`` (for passes and assembly), built once."""
    key = ("tm", options)
    tm = _llvm_state.get(key)
    if tm is None:
        _llvm()
        with _lock:
            tm = _llvm_state.get(key)
            if tm is None:
                tm = _llvm_state[key] = _new_target_machine(options)
    return tm


def target_info(options: TargetOptions = TargetOptions()) -> tuple[str, str]:
    """(target triple, data layout) of the machine code the JIT produces."""
    tm = _cached(options)
    return tm.triple, str(tm.target_data)


def missing_features(cpu: str, features: str) -> list:
    """The features of machine code compiled for ``cpu`` with ``features`` (LLVM's ``+a,-b``
    form) that this host's CPU lacks: empty when the code runs here."""
    host_name, host_features = host_cpu()
    have = {f[1:] for f in host_features.split(",") if f.startswith("+")}
    want = [f[1:] for f in features.split(",") if f.startswith("+")]
    return [f for f in want if f not in have]


def host_cpu() -> tuple[str, str]:
    """(host CPU name, its feature string) as LLVM sees them."""
    _llvm()
    return _llvm_state["host"]


# ----------------------------------------------------------------------------------------
# compile
# ----------------------------------------------------------------------------------------
def _excerpt(ir: str, line: int, context: int = 4) -> str:
    lines = ir.splitlines()
    lo, hi = max(0, line - 1 - context), min(len(lines), line + context)
    return "\n".join(f"{'>' if k == line - 1 else ' '}{k + 1:5d} | {lines[k]}" for k in range(lo, hi))


def _parse_ir(ir: str):
    llvm = _llvm()
    try:
        # a context per module: the global one would keep every module's uniqued
        # constants and types alive for the life of the process
        mod = llvm.parse_assembly(ir, context=llvm.create_context())
    except RuntimeError as exc:
        msg = str(exc)
        m = re.search(r":(\d+):\d+: error", msg)
        where = "\n" + _excerpt(ir, int(m.group(1))) if m else ""
        raise BuildError(f"LLVM rejected the generated IR: {msg.strip()}{where}") from None
    try:
        mod.verify()
    except RuntimeError as exc:
        msg = str(exc).strip()
        where = ""
        m = re.search(r"(%[\w.]+) = ", msg)
        if m:
            for k, text in enumerate(ir.splitlines()):
                if text.strip().startswith(m.group(0)):
                    where = "\n" + _excerpt(ir, k + 1)
                    break
        raise BuildError(f"LLVM verification of the generated IR failed: {msg}{where}") from None
    return mod


def _optimize(mod, options: TargetOptions) -> None:
    if options.opt_level == 0:
        return
    llvm = _llvm()
    # A pass builder holds analysis caches keyed by module address, so each module gets a
    # fresh one (about 0.1 ms); a module pass manager cannot be run twice.
    pto = llvm.create_pipeline_tuning_options(speed_level=options.opt_level)
    vec = options.opt_level >= 2
    pto.loop_vectorization = vec
    # off: LLVM 20's SLP vectorizer turned 16 unrolled guarded reads (select(in range, clamp(X[i]),
    # 0) with in-range tests of possibly negative indices) into vector compares that dropped some
    # guards -- wrong values, tests/runtime/test_llvm_module.py; the templates vectorize in the IR
    pto.slp_vectorization = False
    pto.loop_interleaving = vec
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(_cached(options), pto)
    pb.getModulePassManager().run(mod, pb)


def compile_ir(ir: str, options: TargetOptions = TargetOptions()):
    """Parse, verify and optimize ``ir``; returns the llvmlite module (for tools and tests)."""
    mod = _parse_ir(ir)
    tm = _cached(options)
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    _optimize(mod, options)
    return mod


# ----------------------------------------------------------------------------------------
# the module
# ----------------------------------------------------------------------------------------
# id(LLVMModule) -> (its execution engine, the LLVM context of its module), kept outside the
# module so that neither is garbage before LLVMModule.__del__ has closed the engine
_owned: dict = {}


@dataclass
class _Entry:
    sig: object
    fn: object
    written: frozenset
    scalar_ranges: tuple
    bound: dict  # (shape, dtype) of every argument -> shape-variable values


class BoundCall:
    """One entry point with its arguments checked and turned into addresses; keeps the arrays
    alive. Calling it runs the function and raises :class:`RuntimeError_` on a failure code."""

    __slots__ = ("name", "fn", "cargs", "arrays")

    def __init__(self, name, fn, cargs, arrays):
        self.name, self.fn, self.cargs, self.arrays = name, fn, cargs, arrays

    def __call__(self) -> None:
        rc = self.fn(*self.cargs)
        if rc != 0:
            err = getattr(_tls, "error", None)
            _tls.error = None
            raise RuntimeError_(f"{self.name} failed (code {rc})" + (f": {err}" if err else ""))


class LLVMModule(Module):
    """JIT-compiled CPU code for one or more lowered functions.

    Built by :func:`minitvm.codegen.llvm.build_llvm` from an ``LLVMSource`` (IR text plus
    signatures). Call ``mod[name](*arrays)``, ``mod(*arrays)`` (first function) or
    ``mod.run(name, arrays)`` with numpy arrays or CPU NDArrays.
    """

    type_key = "llvm"

    def __init__(self, source, options: TargetOptions = TargetOptions(), object_code: bytes | None = None):
        super().__init__(list(source.signatures), source.ir)
        self.options = options
        self.source = source
        llvm = _llvm()
        self._object = object_code
        with _lock:
            if object_code is None:
                # keep the machine code MCJIT makes: an artifact saves it, and loads it without compiling
                mod = compile_ir(source.ir, options)
                context = mod._context
                engine = llvm.create_mcjit_compiler(mod, _new_target_machine(options))
                kept: list = []
                engine.set_object_cache(notify_func=lambda _mod, buf: kept.append(bytes(buf)))
            else:
                context = llvm.create_context()
                empty = llvm.parse_assembly("", context=context)
                empty.triple = _cached(options).triple
                engine = llvm.create_mcjit_compiler(empty, _new_target_machine(options))
                try:
                    engine.add_object_file(llvm.ObjectFileRef.from_data(bytes(object_code)))
                except RuntimeError as exc:
                    raise BuildError(f"LLVM could not load the object code: {exc}") from None
            # the engine and the LLVM context owning its module are released in that order by
            # __del__ (disposing the context first frees the module twice: a crash when both die
            # in one garbage cycle, in whatever order the collector picks)
            _owned[id(self)] = (engine, context)
            engine.finalize_object()
            if object_code is None:
                self._object = kept[0] if kept else None
        self._engine = engine
        self._entries: dict[str, _Entry] = {}
        for sig in source.signatures:
            scalar_types = [_CTYPES[t] for t in source.shape_var_types[sig.name]]
            proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.c_void_p] * len(sig.params)), *scalar_types)
            fn = proto(engine.get_function_address(sig.name))
            ranges = tuple(dt.value_range(t) for t in source.shape_var_types[sig.name])
            self._entries[sig.name] = _Entry(sig, fn, frozenset(source.written[sig.name]), ranges, {})

    def __del__(self):
        entry = _owned.pop(id(self), None)
        if entry is not None:
            try:
                entry[0].close()
            except Exception:  # noqa: BLE001 - never raise from a finalizer
                pass

    def object_code(self) -> bytes:
        """The module's machine code as an object file (what MCJIT loaded), for saving."""
        if self._object is None:
            raise BuildError("this LLVM module kept no object code")
        return self._object

    def machine(self) -> dict:
        """What the machine code was compiled for: target ``triple``, ``cpu`` and ``features``."""
        cpu, features = _resolve(self.options)
        return {"triple": _cached(self.options).triple, "cpu": cpu, "features": features}

    def get_source(self, fmt: str = "") -> str:
        """LLVM IR as generated (``""``/``"ll"``), after -O3 (``"optimized"``), or ``"asm"``."""
        if fmt in ("", "ll", "llvm"):
            return self._source
        if fmt in ("optimized", "opt"):
            return str(compile_ir(self._source, self.options))
        if fmt in ("asm", "s"):
            mod = compile_ir(self._source, self.options)
            tm = _cached(self.options)
            with _lock:
                return tm.emit_assembly(mod)
        raise ArgumentError(f"get_source: unknown format {fmt!r}; use '', 'optimized' or 'asm'")

    def run(self, name: str, args) -> None:
        """Run entry point ``name`` on ``args`` (numpy arrays or CPU NDArrays), in place."""
        self.bind(name, args)()

    def bind(self, name: str, args) -> "BoundCall":
        """Entry point ``name`` with ``args`` checked once: calling the result runs it on them
        again, at the cost of the foreign call alone (the graph executor's path)."""
        entry = self._entries.get(name)
        if entry is None:
            raise RuntimeError_(f"module has no function {name!r}; it has {sorted(self._entries)}")
        arrays = [a if isinstance(a, np.ndarray) else _host(a, entry.sig, k) for k, a in enumerate(args)]
        key = tuple((a.shape, a.dtype) for a in arrays if isinstance(a, np.ndarray))
        complete = len(key) == len(arrays)
        scalars = entry.bound.get(key) if complete else None
        if scalars is None:
            scalars = self._bind(entry, arrays)
            if complete:
                if len(entry.bound) > 64:
                    entry.bound.clear()
                entry.bound[key] = scalars
        ptrs = []
        for k, a in enumerate(arrays):
            flags = a.flags
            if not (flags.c_contiguous and flags.aligned):
                raise RuntimeError_(
                    f"{entry.sig.name}: argument {entry.sig.params[k].name} is not a C-contiguous, aligned "
                    f"array (strides {a.strides}); pass np.ascontiguousarray(...) of it")
            if k in entry.written and not flags.writeable:
                raise RuntimeError_(f"{entry.sig.name}: argument {entry.sig.params[k].name} is written by "
                                    "the function but the array is read-only")
            ptrs.append(a.__array_interface__["data"][0])
        return BoundCall(entry.sig.name, entry.fn, (*ptrs, *scalars), arrays)

    @staticmethod
    def _bind(entry, arrays) -> tuple:
        """Check the arguments against the signature; the shape-variable values to pass."""
        sig = entry.sig
        values = sig.bind(arrays)
        for k, a in enumerate(arrays):
            if not isinstance(a, np.ndarray):
                raise DtypeError(f"{sig.name}: argument {sig.params[k].name} must be a numpy array or a "
                                 f"CPU NDArray, got {type(a).__name__}")
        scalars = []
        for v, (lo, hi) in zip(sig.shape_vars, entry.scalar_ranges):
            x = values[v]
            if not lo <= x <= hi:
                raise RuntimeError_(f"{sig.name}: symbolic dimension {v} = {x} does not fit its dtype")
            scalars.append(x)
        return tuple(scalars)


def _host(a, sig, k: int):
    """Argument ``k`` as a numpy array over the same memory: a CPU NDArray, or any DLPack tensor in
    host memory (torch CPU tensors ...); other objects pass through to the signature's checks."""
    name = sig.params[k].name if k < len(sig.params) else f"#{k}"
    if isinstance(a, NDArray) and a.device.kind != "cpu":
        raise RuntimeError_(
            f"{sig.name}: argument {name} lives on {a.device}, but this module runs on the CPU; "
            "copy it with .copyto(minitvm.cpu()) or build the kernel for target cuda")
    try:
        host = _cpu_from(a)
    except (TypeError, ValueError, BufferError, RuntimeError) as exc:
        raise DtypeError(f"{sig.name}: argument {name} ({type(a).__name__}) cannot be read as an array: {exc}") from None
    if host is None and (hasattr(a, "__dlpack_device__") or hasattr(a, "__cuda_array_interface__")):
        raise RuntimeError_(f"{sig.name}: argument {name} ({type(a).__module__}.{type(a).__name__}) lives on a "
                            "GPU, but this module runs on the CPU; move it to the CPU or build for target cuda")
    return a if host is None else host


# ----------------------------------------------------------------------------------------
# parallel loops
# ----------------------------------------------------------------------------------------
_BODY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_tls = threading.local()
_pool_state: dict = {"pool": None, "threads": None}


def _env_threads(env: str) -> int:
    """``MINITVM_NUM_THREADS`` as a positive int, or an ArgumentError naming the variable."""
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise ArgumentError(f"MINITVM_NUM_THREADS={env!r}: need a positive integer thread count")
    return n


def num_threads() -> int:
    """Threads a parallel loop uses: ``MINITVM_NUM_THREADS``, else the CPUs this process may use."""
    n = _pool_state["threads"]
    if n is None:
        env = os.environ.get("MINITVM_NUM_THREADS")
        if env:
            n = _env_threads(env)
        elif hasattr(os, "sched_getaffinity"):
            n = len(os.sched_getaffinity(0))
        else:
            n = os.cpu_count() or 1
        n = max(1, n)
        _pool_state["threads"] = n
    return n


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for parallel loops from now on."""
    if n < 1:
        raise ArgumentError("set_num_threads: need at least one thread")
    with _lock:
        pool = _pool_state["pool"]
        _pool_state["pool"], _pool_state["threads"] = None, int(n)
        native = _llvm_state.get("pool")
        if native is not None:
            native.set_threads(int(n))
    if pool is not None:
        pool.stop()


class _Workers:
    """The Python pool (where the native one does not run): persistent worker threads fed
    through one C-implemented queue (cheaper than futures)."""

    def __init__(self, n: int):
        self.tasks = queue.SimpleQueue()
        self.n = n
        for k in range(n):
            threading.Thread(target=self._work, name=f"minitvm-par-{k}", daemon=True).start()

    def _work(self):
        _tls.in_parallel = True
        get = self.tasks.get
        while True:
            item = get()
            if item is None:
                return
            body, begin, end, closure, done = item
            try:
                rc = body(begin, end, closure)
            except BaseException as exc:  # reported through the return code
                _tls.error = f"{type(exc).__name__}: {exc}"
                rc = -1
            done.put(rc)

    def stop(self):
        for _ in range(self.n):
            self.tasks.put(None)


def _pool(workers: int) -> _Workers:
    pool = _pool_state["pool"]
    if pool is None:
        with _lock:
            pool = _pool_state["pool"]
            if pool is None:
                pool = _pool_state["pool"] = _Workers(workers)
    return pool


def _reset_after_fork():
    # the parent's worker threads do not exist in a forked child
    _pool_state["pool"] = None
    native = _llvm_state.get("pool")
    if native is not None:
        native.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _parallel_for_impl(fnptr, n, closure):
    submitted = 0
    done = None
    try:
        if n <= 0:
            return 0
        body = _BODY(fnptr)
        threads = num_threads()
        if n == 1 or threads == 1 or getattr(_tls, "in_parallel", False):
            return body(0, n, closure)
        chunks = min(n, threads)
        pool = _pool(threads - 1)
        done = queue.SimpleQueue()
        put = pool.tasks.put
        for c in range(1, chunks):
            put((body, n * c // chunks, n * (c + 1) // chunks, closure, done))
            submitted += 1
        _tls.in_parallel = True
        try:
            rc = body(0, n // chunks, closure)
        finally:
            _tls.in_parallel = False
        for _ in range(submitted):
            rc = done.get() or rc
        submitted = 0
        return rc
    except BaseException as exc:  # an exception must not cross back into C
        # the closure lives in the caller's stack frame: no chunk may outlive this call
        for _ in range(submitted):
            done.get()
        _tls.error = f"parallel loop runtime: {type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        return -1


_PARALLEL_FOR = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)(
    _parallel_for_impl)


__all__ = ["LLVMModule", "TargetOptions", "target_info", "host_cpu", "compile_ir", "missing_features",
           "num_threads", "set_num_threads"]
