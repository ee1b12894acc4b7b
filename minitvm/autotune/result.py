"""What a measurement takes and gives: :class:`MeasureInput` (target, task, config),
:class:`BuildResult` (a built candidate), :class:`MeasureResult` (times or an error) and the
error codes :class:`MeasureErrorNo`. Plain data, shared by the measuring processes, the tuners
and the log."""
from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass, field

__all__ = ["MeasureErrorNo", "MeasureInput", "BuildResult", "MeasureResult"]


class MeasureErrorNo(enum.IntEnum):
    """Why a trial has no valid time (``NO_ERROR`` when it has one)."""

    NO_ERROR = 0
    INSTANTIATION_ERROR = 1   # the template raised while applying the config
    COMPILE_HOST = 2          # lowering, host code generation or LLVM failed
    COMPILE_DEVICE = 3        # NVRTC rejected the CUDA C
    RUNTIME_DEVICE = 4        # running failed: launch error, device fault, crashed runner
    WRONG_ANSWER = 5          # the outputs differ from the reference
    BUILD_TIMEOUT = 6
    RUN_TIMEOUT = 7
    UNKNOWN_ERROR = 8


@dataclass
class MeasureInput:
    """What to measure: ``target`` string, the :class:`~minitvm.autotune.task.Task`, the config."""

    target: str
    task: object
    config: object


@dataclass
class BuildResult:
    """A built candidate: the ``artifact`` the runner loads (LLVM source / CUDA module),
    ``arg_info`` ((shape, dtype, is_output) per argument), error code and message, seconds spent."""

    artifact: object
    arg_info: tuple
    error_no: int
    error_msg: str
    time_cost: float


@dataclass
class MeasureResult:
    """The outcome of one trial: ``costs`` (seconds per run, one per repeat), error code and
    short message, ``all_cost`` (seconds for build + run) and the ``timestamp`` (Unix time)."""

    costs: tuple
    error_no: MeasureErrorNo
    error_msg: str = ""
    all_cost: float = 0.0
    timestamp: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        """True if the trial has a valid time."""
        return int(self.error_no) == 0

    @property
    def mean(self) -> float:
        """Mean cost in seconds (inf for a failed trial)."""
        if not self.ok or not self.costs:
            return math.inf
        return float(sum(self.costs) / len(self.costs))
