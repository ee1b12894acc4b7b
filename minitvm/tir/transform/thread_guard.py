"""Thread guards: a binding whose extent is smaller than its kernel's launch dimension is guarded.

Two stages of one kernel may bind ``threadIdx.x`` with different extents; the block is launched
with the larger one, so the smaller binding gets ``if (threadIdx.x < extent)``.
"""
from __future__ import annotations

import dataclasses

from .. import expr as E
from ..device import DeviceKernel
from ..functor import Mutator
from ..stmt import AttrStmt, IfThenElse


class _GuardThreads(Mutator):
    """Guard bindings whose extent is smaller than the launch dimension of their tag."""

    def __init__(self, dims):
        self.dims = dims

    def visit_AttrStmt(self, n):
        n = self.generic_visit(n)
        if n.attr_key == "thread_extent" and isinstance(n.node, E.IterVar):
            full = self.dims.get(n.node.thread_tag)
            if isinstance(full, int) and isinstance(n.value, E.IntImm) and n.value.value < full:
                var = n.node.var
                guarded = IfThenElse(E.LT(var, E.const(n.value.value, var.dtype)), n.body)
                return AttrStmt(n.node, n.attr_key, n.value, guarded)
        return n


def guard_threads(kernel: DeviceKernel) -> DeviceKernel:
    """``kernel`` with a guard on every thread binding narrower than its launch dimension."""
    dims = {}
    for axis, g, b in zip("xyz", kernel.grid, kernel.block):
        dims[f"blockIdx.{axis}"] = g
        dims[f"threadIdx.{axis}"] = b
    return dataclasses.replace(kernel, body=_GuardThreads(dims).visit(kernel.body))
