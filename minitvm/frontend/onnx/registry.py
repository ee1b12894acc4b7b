"""Tables of ONNX converters that the converter modules fill and the importer reads.

A :class:`ConverterTable` maps an ONNX op type to its *converter* ``fn(importer, node)`` (adds
graph nodes, returns the graph node name(s) of the outputs or constant arrays). A node whose
inputs are all constants is folded at import by onnx's reference evaluator (:mod:`.fold`)
instead, unless its op is in ``sees_constants`` (the converter folds it itself, e.g. to
remember a quantized weight). ``fold_only`` lists the op types claimed on constant inputs only
(shape computations). Each converter module holds one table; :mod:`.load` merges them in a
fixed order, later tables overriding earlier ones (the quantized converters wrap the float ones
they replace).
"""
from __future__ import annotations

from typing import Callable

__all__ = ["ConverterTable"]


class ConverterTable:
    """ONNX op type -> converter; ``ms_domain``: the op types also accepted from the
    ``com.microsoft`` domain; ``fold_only`` and ``sees_constants``: see the module docstring."""

    def __init__(self):
        """An empty table."""
        self.converters: dict[str, Callable] = {}
        self.ms_domain: set[str] = set()
        self.fold_only: set[str] = set()
        self.sees_constants: set[str] = set()

    def converter(self, *op_types):
        """Decorator registering ``fn(importer, node)`` as the converter of ``op_types``."""
        def deco(fn):
            for n in op_types:
                self.converters[n] = fn
            return fn
        return deco

    @staticmethod
    def merged(*tables: "ConverterTable") -> "ConverterTable":
        """One table holding every entry of ``tables``; a later table's entry replaces an earlier one's."""
        out = ConverterTable()
        for t in tables:
            out.converters.update(t.converters)
            out.ms_domain |= t.ms_domain
            out.fold_only |= t.fold_only
            out.sees_constants |= t.sees_constants
        return out

    def supported_ops(self) -> list[str]:
        """ONNX op types with a converter or folded on constant inputs, sorted."""
        return sorted(set(self.converters) | self.fold_only)
