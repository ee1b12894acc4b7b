"""The type of a tensor on a graph edge (shared by the graph IR and the op registry)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DtypeError, ShapeError

__all__ = ["TensorType"]


@dataclass(frozen=True)
class TensorType:
    """The type of a tensor on an edge: a static shape, a numpy dtype name and a layout.

    ``layout`` is ``""`` for the default layout (``NCHW`` for 4-D activations, ``OIHW`` for
    convolution weights, row-major otherwise); a ``layout_transform`` sets it to its
    ``dst_layout`` (``"NCHW4c"`` ...).
    """

    shape: tuple
    dtype: str
    layout: str = ""

    def __post_init__(self):
        try:
            shape = tuple(int(d) for d in self.shape)
        except (TypeError, ValueError):
            raise ShapeError(f"tensor shape must be a sequence of ints, got {self.shape!r}") from None
        if any(d < 0 for d in shape):
            raise ShapeError(f"tensor shape must be non-negative, got {shape}")
        object.__setattr__(self, "shape", shape)
        try:
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        except TypeError:
            raise DtypeError(f"unknown dtype {self.dtype!r}") from None
        object.__setattr__(self, "layout", str(self.layout or ""))

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Size in bytes of a dense tensor of this type."""
        return self.size * np.dtype(self.dtype).itemsize

    def with_layout(self, layout: str) -> "TensorType":
        """The same type with another layout."""
        return TensorType(self.shape, self.dtype, layout)

    def __str__(self):
        s = f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"
        return f"{s}@{self.layout}" if self.layout else s
