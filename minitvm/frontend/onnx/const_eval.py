"""``Shape`` and ``Size`` of graph tensors (constants: every shape is static here), and the op
types claimed on constant inputs only: they are folded at import (:mod:`.fold`), for the shape
computations of exported models."""
from __future__ import annotations

import numpy as np

from .registry import ConverterTable

__all__ = ["CONVERTERS"]

#: the Shape / Size converters and the fold-only op types
CONVERTERS = ConverterTable()
CONVERTERS.fold_only |= {"Constant", "ConstantOfShape", "Range"}


@CONVERTERS.converter("Shape")
def _shape(imp, node):
    """Shape of a graph tensor (``start`` / ``end`` as numpy slicing, clamped, as ONNX says)."""
    shape, _ = imp.type(node, node.input(0))
    return np.asarray(shape, np.int64)[node.get("start", 0):node.get("end", None)]


@CONVERTERS.converter("Size")
def _size(imp, node):
    """Element count of a graph tensor."""
    shape, _ = imp.type(node, node.input(0))
    return np.asarray(int(np.prod(shape)), np.int64)
