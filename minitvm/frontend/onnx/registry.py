"""Tables of ONNX converters that the converter modules fill and the importer reads.

A :class:`ConverterTable` maps an ONNX op type to its *converter* ``fn(importer, node)`` (adds
graph nodes, returns the graph node name(s) of the outputs) and to its *constant evaluator*
``fn(importer, node, input arrays)`` (used when every input is a constant; returns arrays).
Each converter module holds one table; :mod:`.load` merges them in a fixed order, later tables
overriding earlier ones (the quantized converters wrap the float ones they replace).
"""
from __future__ import annotations

from typing import Callable

__all__ = ["ConverterTable"]


class ConverterTable:
    """ONNX op type -> converter and op type -> constant evaluator; ``ms_domain``: the op types
    also accepted from the ``com.microsoft`` domain."""

    def __init__(self):
        """An empty table."""
        self.converters: dict[str, Callable] = {}
        self.const_evals: dict[str, Callable] = {}
        self.ms_domain: set[str] = set()

    def converter(self, *op_types):
        """Decorator registering ``fn(importer, node)`` as the converter of ``op_types``."""
        def deco(fn):
            for n in op_types:
                self.converters[n] = fn
            return fn
        return deco

    def const_eval(self, *op_types):
        """Decorator registering ``fn(importer, node, arrays)`` as the constant evaluator of ``op_types``."""
        def deco(fn):
            for n in op_types:
                self.const_evals[n] = fn
            return fn
        return deco

    @staticmethod
    def merged(*tables: "ConverterTable") -> "ConverterTable":
        """One table holding every entry of ``tables``; a later table's entry replaces an earlier one's."""
        out = ConverterTable()
        for t in tables:
            out.converters.update(t.converters)
            out.const_evals.update(t.const_evals)
            out.ms_domain |= t.ms_domain
        return out

    def supported_ops(self) -> list[str]:
        """ONNX op types with a converter or a constant evaluator, sorted."""
        return sorted(set(self.converters) | set(self.const_evals))
