"""Exceptions raised by minitvm.

Every error names the object at fault (tensor, axis, stage, buffer, knob) and, where it
can, what would fix it.
"""


class MiniTVMError(Exception):
    """Base class of every error minitvm raises on purpose."""


class DtypeError(MiniTVMError, TypeError):
    """Operands of incompatible dtypes, or a value that does not fit its dtype."""


class ShapeError(MiniTVMError, ValueError):
    """A shape, index count or argument shape that does not match."""


class GraphError(MiniTVMError, ValueError):  """A malformed graph or an unsupported op/attribute (names node and op)."""


class ArgumentError(MiniTVMError, ValueError):
    """An argument value out of its range or not one of its choices (names the argument)."""


class ScheduleError(MiniTVMError):
    """A schedule primitive applied to the wrong stage or axis, or in the wrong order."""


class LoweringError(MiniTVMError):
    """A schedule that cannot be turned into a loop nest (e.g. unbounded region)."""


class LimitError(MiniTVMError, ValueError):
    """A program past one of minitvm's explicit limits (expression depth or size; see
    ``minitvm.tir.limits``); the message names the tensor or function and the limit."""


class TensorizeError(ScheduleError):
    """A loop nest that does not match the tensor intrinsic it is tensorized with."""


class CodegenError(MiniTVMError):
    """IR that a backend cannot translate."""


class BuildError(MiniTVMError):
    """A backend compiler (LLVM, NVRTC) rejected generated code."""


class ArtifactError(MiniTVMError, ValueError):
    """A file that is not a minitvm artifact, or one of another format version, or incomplete."""


class UsageError(MiniTVMError, ValueError):
    """A bad argument to a public entry point (``minitvm.compile``: the model, dtype, calibration)."""


class RuntimeError_(MiniTVMError, RuntimeError):
    """A failure while running a compiled module (bad arguments, device errors)."""


class DeviceError(RuntimeError_):
    """No usable device, or a device call failed."""


# The public name; the trailing underscore only avoids shadowing the builtin inside this module.
RuntimeError = RuntimeError_  # noqa: A001
