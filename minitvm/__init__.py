"""minitvm: a tensor compiler for fast int8 inference on NVIDIA GPUs (and the CPU through LLVM)."""
from .version import __version__  # noqa: F401

from . import errors  # noqa: F401
from . import tir  # noqa: F401
from .runtime import ndarray as nd  # noqa: F401
from .runtime.ndarray import cpu, cuda, gpu, Device  # noqa: F401
from . import te  # noqa: F401,E402
from .driver import build, lower  # noqa: F401,E402
from .target import Target  # noqa: F401,E402
from .model_compile import compile, load  # noqa: F401,E402,A004
