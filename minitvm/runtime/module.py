"""What every compiled module shares: function signatures, argument checking, timing.

The runtime never sees IR: a backend hands it a :class:`FunctionSignature` per entry point
(parameter names, shapes with symbolic dimensions named by string, dtypes).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError, RuntimeError_, ShapeError
from ..errors import DtypeError


@dataclass(frozen=True)
class ParamSpec:
    """One tensor parameter: its name, shape (ints, or str names of symbolic dims) and dtype."""

    name: str
    shape: tuple
    dtype: str


@dataclass(frozen=True)
class FunctionSignature:
    """An entry point: tensor parameters in call order and the symbolic dims they use."""

    name: str
    params: tuple
    shape_vars: tuple = ()

    def bind(self, arrays) -> dict:
        """Check ``arrays`` against the parameters; return the value of each symbolic dim.

        ``arrays`` are objects with ``.shape`` and ``.dtype`` (numpy arrays or NDArrays).
        """
        if len(arrays) != len(self.params):
            names = ", ".join(p.name for p in self.params)
            raise ShapeError(f"{self.name} takes {len(self.params)} arguments ({names}), got {len(arrays)}")
        values: dict = {}
        computed = []
        for p, a in zip(self.params, arrays):
            if not hasattr(a, "shape") or not hasattr(a, "dtype"):
                raise DtypeError(
                    f"{self.name}: argument {p.name} must be a numpy array or minitvm NDArray, "
                    f"got {type(a).__name__}")
            dtype = str(np.dtype(a.dtype)) if not isinstance(a.dtype, str) else a.dtype
            if dtype != p.dtype:
                raise DtypeError(f"{self.name}: argument {p.name} must have dtype {p.dtype}, got {dtype}")
            shape = tuple(a.shape)
            if len(shape) != len(p.shape):
                raise ShapeError(
                    f"{self.name}: argument {p.name} must have {len(p.shape)} dimensions "
                    f"{_fmt(p.shape)}, got shape {shape}")
            for axis, (want, got) in enumerate(zip(p.shape, shape)):
                if isinstance(want, str) and not want.isidentifier():
                    computed.append((p, axis, want, got, shape))
                elif isinstance(want, str):
                    if values.setdefault(want, got) != got:
                        raise ShapeError(
                            f"{self.name}: argument {p.name} axis {axis} is {got}, but the symbolic "
                            f"dimension {want} was already bound to {values[want]}")
                elif want != got:
                    raise ShapeError(
                        f"{self.name}: argument {p.name} must have shape {_fmt(p.shape)}, got {shape} "
                        f"(axis {axis})")
        for p, axis, want, got, shape in computed:
            try:
                expect = eval(want, {"__builtins__": {}, "min": min, "max": max}, dict(values))  # noqa: S307
            except NameError as exc:
                raise ShapeError(f"{self.name}: argument {p.name} axis {axis} has extent {want}, but {exc.name} "
                                 "is not the extent of any argument axis") from None
            if expect != got:
                raise ShapeError(f"{self.name}: argument {p.name} axis {axis} must have extent {want} = {expect}, "
                                 f"got shape {shape}")
        missing = [v for v in self.shape_vars if v not in values]
        if missing:
            raise ShapeError(f"{self.name}: symbolic dimensions {missing} are not bound by any argument shape")
        return values


def _fmt(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@dataclass(frozen=True)
class TimeResult:
    """Seconds per call for each repeat; ``mean`` and ``median`` over the repeats."""

    results: tuple

    @property
    def mean(self) -> float:
        return float(np.mean(self.results))

    @property
    def median(self) -> float:
        return float(np.median(self.results))

    @property
    def min(self) -> float:
        return float(np.min(self.results))

    def __str__(self):
        return f"TimeResult(mean={self.mean * 1e3:.4f} ms, median={self.median * 1e3:.4f} ms, repeat={len(self.results)})"


class Module:
    """A compiled module: call entry points by name or call the module for its main one."""

    type_key = "module"

    def __init__(self, signatures, source: str):
        self.signatures = {s.name: s for s in signatures}
        self.entry_name = signatures[0].name if signatures else None
        self._source = source

    def get_source(self, fmt: str = "") -> str:
        """The generated code (LLVM IR or CUDA C)."""
        return self._source

    def __getitem__(self, name):
        if name not in self.signatures:
            raise RuntimeError_(f"module has no function {name!r}; it has {sorted(self.signatures)}")
        return lambda *args: self.run(name, args)

    def get_function(self, name):
        """A callable running entry point ``name``."""
        return self[name]

    def __call__(self, *args):
        return self.run(self.entry_name, args)

    def run(self, name: str, args) -> None:
        """Run entry point ``name`` on ``args`` (checked against its signature)."""
        raise NotImplementedError

    def bind(self, name: str, args):
        """A no-argument callable running entry point ``name`` on ``args``; modules that can
        check the arguments once (the CPU's) make later calls cheaper."""
        if name not in self.signatures:
            raise RuntimeError_(f"module has no function {name!r}; it has {sorted(self.signatures)}")
        args = list(args)
        return lambda: self.run(name, args)

    def _sync(self) -> None:
        """Wait for queued work (GPU modules override this)."""

    def _timer(self):
        """A pair (start(), stop() -> seconds) measuring the work queued in between."""
        state = {}

        def start():
            state["t"] = time.perf_counter()

        def stop():
            return time.perf_counter() - state["t"]

        return start, stop

    def time_evaluator(self, name: str | None = None, dev=None, number: int = 10, repeat: int = 1,
                       min_repeat_ms: float = 0.0):
        """A function that times entry point ``name``: returns a :class:`TimeResult`.

        Runs once to warm up, then ``repeat`` times a batch of ``number`` calls; when a batch
        takes less than ``min_repeat_ms``, ``number`` grows until it does not.
        """
        name = name or self.entry_name
        if name not in self.signatures:
            raise RuntimeError_(f"module has no function {name!r}; it has {sorted(self.signatures)}")
        if number < 1 or repeat < 1:
            raise ArgumentError("time_evaluator: number and repeat must be at least 1")

        def evaluator(*args) -> TimeResult:
            self.run(name, args)
            self._sync()
            start, stop = self._timer()
            n = number
            results = []
            for _ in range(repeat):
                while True:
                    start()
                    for _ in range(n):
                        self.run(name, args)
                    elapsed = stop()
                    if elapsed * 1e3 >= min_repeat_ms or min_repeat_ms <= 0:
                        break
                    n = max(n * 2, int(n * min_repeat_ms / max(elapsed * 1e3, 1e-3) * 1.1) + 1)
                results.append(elapsed / n)
            return TimeResult(tuple(results))

        return evaluator
