"""A function split into host and device parts: its GPU kernels, as the CUDA pipeline leaves them.

:func:`~minitvm.tir.transform.split_host_device.split_host_device` turns a lowered
:class:`~minitvm.tir.stmt.PrimFunc` into a :class:`DeviceFunc`; the later CUDA passes rewrite
each :class:`DeviceKernel`'s body and the CUDA code generator prints them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import dtype as dt
from . import expr as E
from .functor import Visitor
from .printer import device_func_str, kernel_str


@dataclass(frozen=True, eq=False)
class SharedMemoryPlan:
    """Where each shared allocation of a kernel lives.

    ``dynamic_bytes`` is 0 when the buffers are declared statically; otherwise they are carved
    out of one dynamic block, ``offsets`` mapping each shared ``Allocate`` node to its byte offset.
    """

    offsets: dict
    dynamic_bytes: int


@dataclass(frozen=True, eq=False)
class DeviceKernel:
    """One kernel: a top-level ``thread_extent`` subtree of its function.

    ``grid`` holds an int or an integer expression over shape variables per axis (x, y, z),
    ``block`` constant ints. ``params`` and ``workspaces`` are indices into the function's
    parameters and workspaces the kernel touches; ``shape_vars`` are the symbolic dimensions it
    reads, in the function's order. ``shared`` is set by shared-memory planning.
    """

    name: str
    body: object
    grid: tuple
    block: tuple
    params: tuple
    workspaces: tuple
    shape_vars: tuple
    shared: SharedMemoryPlan | None = None

    def __str__(self):
        return kernel_str(self)

    __repr__ = __str__


@dataclass(frozen=True, eq=False)
class DeviceFunc:
    """A function after the host/device split: its signature, workspaces and kernels in launch order.

    ``name``, ``params`` and ``attrs`` are those of the :class:`~minitvm.tir.stmt.PrimFunc` it came
    from; ``workspaces`` are the global buffers allocated at its top level (scratch memory the host
    allocates per call).
    """

    name: str
    params: tuple
    attrs: dict
    workspaces: tuple
    kernels: tuple

    def __str__(self):
        return device_func_str(self)

    __repr__ = __str__


class KernelScan(Visitor):
    """Buffers read/written, vector-accessed buffers, variables used and bound in a kernel body."""

    def __init__(self):
        self.read, self.written, self.vector = set(), set(), set()
        self.used_vars, self.bound = set(), set()
        self.thread_attrs = []
        self.allocs = []

    def visit_BufferLoad(self, n):
        self.read.add(n.buffer.data)
        if n.indices and dt.lanes_of(n.indices[-1].dtype) > 1:
            self.vector.add(n.buffer.data)
        self.generic_visit(n)
        self.generic_buffer(n.buffer)

    def visit_BufferStore(self, n):
        self.written.add(n.buffer.data)
        if n.indices and dt.lanes_of(n.indices[-1].dtype) > 1:
            self.vector.add(n.buffer.data)
        self.generic_visit(n)
        self.generic_buffer(n.buffer)

    def generic_buffer(self, b):
        if b.elem_offset is not None and not E.is_const_int(b.elem_offset, 0):
            self.visit(b.elem_offset)

    def visit_Call(self, n):
        for a in n.args:
            if isinstance(a, E.Var) and a.dtype == "handle":
                self.read.add(a)
                self.written.add(a)
        if n.op == "address_of" and isinstance(n.args[0], E.BufferLoad):
            (self.written if E.address_access(n) & E.ADDRESS_WRITE else self.read).add(n.args[0].buffer.data)
        self.generic_visit(n)

    def visit_Var(self, n):
        self.used_vars.add(n)

    visit_SizeVar = visit_Var

    def visit_For(self, n):
        self.bound.add(n.loop_var)
        self.generic_visit(n)

    def visit_LetStmt(self, n):
        self.bound.add(n.var)
        self.generic_visit(n)

    def visit_Let(self, n):
        self.bound.add(n.var)
        self.generic_visit(n)

    def visit_Allocate(self, n):
        self.allocs.append(n)
        self.generic_visit(n)

    def visit_AttrStmt(self, n):
        if n.attr_key == "thread_extent" and isinstance(n.node, E.IterVar):
            self.thread_attrs.append(n)
            self.bound.add(n.node.var)
            self.visit(n.body)  # the extent is a launch dimension, evaluated on the host
            return
        self.generic_visit(n)


def scan_kernel(body) -> KernelScan:
    """What the kernel body ``body`` reads, writes, binds and allocates."""
    scan = KernelScan()
    scan.visit(body)
    return scan
