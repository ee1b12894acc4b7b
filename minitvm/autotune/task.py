"""Tuning tasks and the registry of templates (:mod:`minitvm.autotune.template` defines them).

A :class:`Task` is a registered template plus its arguments plus a target. Its ``workload`` —
the template name followed by the arguments, as a tuple — is the key that logs and
``ApplyHistoryBest`` use; its ``config_space`` is built by running the template once with a
:class:`~minitvm.autotune.space.ConfigSpace` as ``cfg``. Template arguments are plain,
serializable values (shapes, dtypes, strides ...).
"""
from __future__ import annotations

import importlib
import json
import numbers
import threading

from ..errors import MiniTVMError
from .space import ConfigSpace

__all__ = ["Task", "TaskError", "register", "get_template", "compute_flop", "workload_key"]


class TaskError(MiniTVMError, ValueError):
    """An unknown template, or task arguments that cannot be serialized."""


_TEMPLATES: dict = {}
_lock = threading.RLock()

# Templates that ship with minitvm: importing the module registers them, so a task (or a log
# record) naming one works without importing it first.
_BUILTIN_MODULES = {
    "conv2d_NCHWc_int8.cuda": "minitvm.topi.cuda.conv2d_int8",
    "conv2d_nchw.cuda": "minitvm.topi.cuda.conv2d",
    "dense.cuda": "minitvm.topi.cuda.dense",
    "conv2d_NHWC_int8_tensorcore.cuda": "minitvm.topi.cuda.gemm_int8_tensorcore",
    "dense_int8_tensorcore.cuda": "minitvm.topi.cuda.gemm_int8_tensorcore",
    "matmul.cpu": "minitvm.topi.cpu.matmul",
    "conv2d_NCHWc.x86": "minitvm.topi.cpu.conv2d_nchwc",
    "depthwise_conv2d_NCHWc.x86": "minitvm.topi.cpu.conv2d_nchwc",
    "conv2d_NCHWc_int8.x86": "minitvm.topi.cpu.conv2d_int8",
    "dense.x86": "minitvm.topi.cpu.dense",
    "dense_packed.x86": "minitvm.topi.cpu.dense",
    "dense_int8.x86": "minitvm.topi.cpu.dense_int8",
}


def default_target(name: str) -> str | None:
    """The target kind a template name's suffix names (``.cuda``, ``.cpu`` ...), or None."""
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return {"cuda": "cuda", "gpu": "cuda", "cpu": "llvm", "llvm": "llvm", "x86": "llvm"}.get(suffix)


def normalize_arg(value, where: str):
    """Plain, hashable, JSON-serializable form of one task argument (lists become tuples)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(normalize_arg(v, where) for v in value)
    raise TaskError(f"{where}: task arguments must be plain values (ints, floats, strs, bools, None and "
                    f"tuples of them: shapes, dtypes, strides ...), got {type(value).__name__} {value!r}")


def register(tmpl) -> None:
    """Register template ``tmpl`` under its name (replacing an earlier one of that name)."""
    with _lock:
        _TEMPLATES[tmpl.name] = tmpl


def get_template(name: str, module: str | None = None):
    """The template registered as ``name``; imports ``module`` (or the built-in module that
    defines it) first when it is not registered yet."""
    tmpl = _TEMPLATES.get(name)
    if tmpl is not None:
        return tmpl
    for mod in (module, _BUILTIN_MODULES.get(name)):
        if mod and mod not in ("__main__", "__mp_main__"):
            try:
                importlib.import_module(mod)
            except ImportError:
                continue
            tmpl = _TEMPLATES.get(name)
            if tmpl is not None:
                return tmpl
    known = sorted(_TEMPLATES)
    raise TaskError(f"no autotune template named {name!r} is registered (registered: {known}); import the "
                    "module that defines it before creating the task")


def _restore_task(name, args, target, module):
    get_template(name, module)
    return Task(name, args, target)


class Task:
    """A tuning task: template ``name`` applied to ``args``, compiled for ``target``.

    ``workload`` (hashable tuple) and ``workload_key`` (its JSON text) identify it in logs;
    ``config_space`` is built once, on first use; ``flop`` is the operation count (declared by
    the template with ``cfg.add_flop`` or counted from the compute).
    """

    def __init__(self, name: str, args=(), target=None):
        self.name = name
        tmpl = _TEMPLATES.get(name)
        if tmpl is None:
            try:
                tmpl = get_template(name)
            except TaskError:
                tmpl = None  # resolved lazily (e.g. a task read back from a log)
        self._template = tmpl
        self.args = tmpl.canonical_args(args) if tmpl is not None else \
            tuple(normalize_arg(a, f"task {name!r}") for a in args)
        default = tmpl.target if tmpl is not None else default_target(name)
        self.target = str(target if target is not None else (default or "llvm"))
        self._space = None
        self._flop = None
        self._lock = threading.Lock()

    @property
    def template(self):
        """The registered template (looked up on first use)."""
        if self._template is None:
            self._template = get_template(self.name)
        return self._template

    @property
    def workload(self) -> tuple:
        """``(name, *args)``: hashable and JSON-serializable."""
        return (self.name,) + self.args

    @property
    def workload_key(self) -> str:
        """The workload as compact JSON text (the key written to logs)."""
        return workload_key(self.workload)

    @property
    def config_space(self) -> ConfigSpace:
        """The template's knobs (built by running it once in space-definition mode)."""
        if self._space is None:
            with self._lock:
                if self._space is None:
                    space = ConfigSpace()
                    _, tensors = self.template.func(space, *self.args)
                    self._flop = space.flop or compute_flop(tensors)
                    self._space = space
        return self._space

    @property
    def flop(self) -> float:
        """Operations per run of the workload (2 per multiply-add)."""
        if self._flop is None:
            _ = self.config_space
        return self._flop

    def instantiate(self, config):
        """``(schedule, arg_tensors)`` of the template under ``config``."""
        return self.template.func(config, *self.args)

    def __reduce__(self):
        module = self._template.module if self._template is not None else None
        return (_restore_task, (self.name, self.args, self.target, module))

    def __eq__(self, other):
        return isinstance(other, Task) and other.workload == self.workload and other.target == self.target

    def __hash__(self):
        return hash((self.workload, self.target))

    def __repr__(self):
        return f"Task({self.name!r}, args={self.args!r}, target={self.target!r})"


def workload_key(workload) -> str:
    """Compact JSON text of a workload tuple."""
    return json.dumps(list(workload), separators=(",", ":"))


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list) else x


def workload_from_key(key: str) -> tuple:
    """The workload tuple of a key made by :func:`workload_key`."""
    return _as_tuple(json.loads(key))


# --------------------------------------------------------------------------------------------
# operation counting
# --------------------------------------------------------------------------------------------
def compute_flop(tensors) -> float:
    """Arithmetic operations to compute ``tensors`` (and the computes they read), counting each
    add, multiply, min/max ... of values once per point; index arithmetic, comparisons and
    branches (e.g. padding) count nothing. A multiply-add in a reduction counts 2."""
    from ..tensor import ComputeOp
    from ..tir import expr as E

    arith = (E.Add, E.Sub, E.Mul, E.Div, E.FloorDiv, E.FloorMod, E.Min, E.Max)

    def const_int(e):
        v = getattr(e, "value", None)
        return int(v) if isinstance(e, E.IntImm) else None

    def count(e) -> float:
        if isinstance(e, E.Reduce):
            n = 1
            for iv in e.axis:
                ext = const_int(iv.dom.extent)
                n *= ext if ext is not None else 1
            return (sum(count(s) for s in e.source) / max(1, len(e.source)) + 1) * n
        if isinstance(e, arith):
            return 1 + count(e.a) + count(e.b)
        if isinstance(e, E.Select):
            return max(count(e.true_value), count(e.false_value))
        if isinstance(e, E.Cast):
            return count(e.value)
        if isinstance(e, E.Call):
            if e.op in ("if_then_else", "tvm_if_then_else"):
                return max(count(a) for a in e.args[1:]) if len(e.args) > 1 else 0
            if e.op in ("likely",):
                return 0
            return 1 + sum(count(a) for a in e.args if isinstance(a, E.PrimExpr))
        if isinstance(e, E.Let):
            return count(e.value) + count(e.body)
        return 0  # loads (their indices are addressing), constants, variables, comparisons

    total, seen = 0.0, set()
    stack = [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(op)
        points = 1
        for d in op.shape:
            v = const_int(d)
            points *= v if v is not None else 1
        total += points * sum(count(b) for b in op.body)
        stack.extend(t.op for t in op.input_tensors)
    return float(total)
