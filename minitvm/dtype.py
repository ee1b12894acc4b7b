"""Dtype strings: numpy names, with an optional lane count (``int8x4``, ``float32x4``).

Rules enforced by the expression builders (see ``docs/te.md``):

* both operands of a binary operator must have the same dtype; Python numbers take the dtype
  of the other operand and must fit it;
* arithmetic keeps its operands' dtype: ``int8 + int8`` is ``int8`` and wraps modulo 2**8
  exactly as two's complement hardware does, on every backend;
* comparisons and logic give ``bool``;
* widening is always explicit: ``x.astype("int32")``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import DtypeError

_SCALARS = {
    "bool": (np.bool_, 1),
    "int8": (np.int8, 8), "int16": (np.int16, 16), "int32": (np.int32, 32), "int64": (np.int64, 64),
    "uint8": (np.uint8, 8), "uint16": (np.uint16, 16), "uint32": (np.uint32, 32), "uint64": (np.uint64, 64),
    "float16": (np.float16, 16), "float32": (np.float32, 32), "float64": (np.float64, 64),
}


@lru_cache(maxsize=None)
def split_lanes(dtype: str) -> tuple[str, int]:
    """``"int8x4"`` -> ``("int8", 4)``; ``"float32"`` -> ``("float32", 1)``."""
    if not isinstance(dtype, str):
        raise DtypeError(f"dtype must be a string such as 'int8' or 'float32', got {dtype!r}")
    base, sep, lanes = dtype.partition("x")
    if base not in _SCALARS:
        raise DtypeError(f"unknown dtype {dtype!r}; known: {', '.join(_SCALARS)} (optionally 'x<lanes>')")
    if not sep:
        return base, 1
    if not lanes.isdigit() or int(lanes) < 1:
        raise DtypeError(f"bad lane count in dtype {dtype!r}")
    n = int(lanes)
    return base, n


def canonical(dtype) -> str:
    """Normalize a dtype given as a string or numpy dtype to minitvm's string form."""
    if not isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype).name
        except TypeError as exc:
            raise DtypeError(f"unknown dtype {dtype!r}") from exc
    split_lanes(dtype)
    return dtype


def element_of(dtype: str) -> str:
    """The scalar dtype of a (possibly vector) dtype."""
    return split_lanes(dtype)[0]


def lanes_of(dtype: str) -> int:
    """Number of lanes of a dtype (1 for scalars and for ``handle``, a pointer)."""
    return 1 if dtype == "handle" else split_lanes(dtype)[1]


def with_lanes(dtype: str, lanes: int) -> str:
    """The vector dtype with ``lanes`` lanes of ``dtype``'s element type."""
    base = element_of(dtype)
    return base if lanes == 1 else f"{base}x{lanes}"


def bits(dtype: str) -> int:
    """Bit width of one element."""
    return _SCALARS[element_of(dtype)][1]


def is_int(dtype: str) -> bool:
    """Signed integer element type."""
    return element_of(dtype).startswith("int")


def is_uint(dtype: str) -> bool:
    """Unsigned integer element type."""
    return element_of(dtype).startswith("uint")


def is_integer(dtype: str) -> bool:
    """Signed or unsigned integer (not bool)."""
    return is_int(dtype) or is_uint(dtype)


def is_float(dtype: str) -> bool:
    """Floating-point element type."""
    return element_of(dtype).startswith("float")


def is_bool(dtype: str) -> bool:
    """Boolean element type."""
    return element_of(dtype) == "bool"


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of one element."""
    return np.dtype(_SCALARS[element_of(dtype)][0])


def value_range(dtype: str) -> tuple:
    """Smallest and largest value representable in ``dtype``."""
    if is_bool(dtype):
        return (0, 1)
    if is_float(dtype):
        info = np.finfo(numpy_dtype(dtype))
        return (float(info.min), float(info.max))
    info = np.iinfo(numpy_dtype(dtype))
    return (int(info.min), int(info.max))


def wrap_int(value: int, dtype: str) -> int:
    """Reduce an integer modulo 2**bits into ``dtype``'s range (two's complement)."""
    b = bits(dtype)
    value &= (1 << b) - 1
    if is_int(dtype) and value >= 1 << (b - 1):
        value -= 1 << b
    return value
