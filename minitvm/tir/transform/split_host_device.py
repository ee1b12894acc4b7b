"""Host/device split: a lowered function becomes its GPU kernels, workspaces and launch dimensions.

Each top-level subtree that starts with a ``thread_extent`` attribute is one kernel
``<func>_kernel<k>``; top-level ``global`` allocations become workspaces; top-level lets are
substituted; anything else at the top level (a loop not bound to threads, a store) is a
:class:`~minitvm.errors.CodegenError`. Per kernel, launch dimensions are collected from its
``thread_extent`` attributes: block dimensions must be constants, grid dimensions may be
expressions in the shape variables.
"""
from __future__ import annotations

import re

from ...device_limits import cuda_limits
from ...errors import CodegenError
from .. import expr as E
from ..device import DeviceFunc, DeviceKernel, scan_kernel
from ..functor import Visitor, collect_vars, structural_equal, substitute
from ..stmt import Allocate, AttrStmt, BufferStore, Evaluate, For, IfThenElse, LetStmt, PrimFunc, SeqStmt, is_no_op

_LIMITS = cuda_limits()
_BLOCK_LIMITS = dict(zip("xyz", _LIMITS.max_block_dims))
_GRID_LIMITS = dict(zip("xyz", _LIMITS.max_grid_dims))


def split_host_device(f: PrimFunc) -> DeviceFunc:
    """Split ``f`` into its kernels (with launch dimensions and parameters) and workspaces."""
    host = _HostSplit(f)
    shape_vars = _shape_vars(f)
    kernels = tuple(_kernel(f, f"{f.name}_kernel{k}", body, host.workspaces, shape_vars)
                    for k, body in enumerate(host.kernels))
    return DeviceFunc(f.name, f.params, f.attrs, tuple(host.workspaces), kernels)


def _shape_vars(f: PrimFunc) -> list:
    """The symbolic dimensions of ``f`` in argument order (as its runtime signature lists them)."""
    out = list(f.attrs.get("shape_vars", ()) or ())
    for b in f.params:
        for s in b.shape:
            if not isinstance(s, E.IntImm):
                for v in sorted(collect_vars(s), key=lambda v: v.name):
                    if v not in out:
                        out.append(v)
    return out


class _HostSplit:
    """Finds the kernels (top-level thread_extent subtrees) and workspaces of a function."""

    def __init__(self, f: PrimFunc):
        self.f = f
        self.kernels: list = []
        self.workspaces: list = []        # Buffers
        self.walk(f.body, [])
        if not self.kernels:
            raise CodegenError(
                f"{f.name}: nothing in the function is bound to GPU threads, so there is no CUDA kernel "
                "to generate; bind the outer axes of the output with "
                "s[T].bind(axis, te.thread_axis(\"blockIdx.x\")) and s[T].bind(axis, te.thread_axis(\"threadIdx.x\"))")

    def walk(self, s, allocs):
        """Collect kernels under ``s``; ``allocs``: enclosing non-global Allocate buffers and attributes."""
        if isinstance(s, SeqStmt):
            for c in s.seq:
                self.walk(c, allocs)
        elif isinstance(s, Allocate) and s.buffer.scope == "global":
            self.workspaces.append(s.buffer)
            self.walk(s.body, allocs)
        elif isinstance(s, Allocate):
            first = len(self.kernels)
            self.walk(s.body, allocs + [s.buffer])
            users = [k for k in self.kernels[first:] if s.buffer.data in _used_data(k)]
            if len(users) > 1:
                raise CodegenError(
                    f"{self.f.name}: {s.buffer.scope} buffer {s.buffer.name} is allocated outside the thread "
                    f"bindings and used by {len(users)} separate kernels; {s.buffer.scope} memory does not "
                    "survive from one kernel to the next. Bind the common outer axis to blockIdx so that "
                    "its producer and consumers form one kernel, or make the buffer global")
        elif isinstance(s, LetStmt):
            self.walk(substitute(s.body, {s.var: s.value}), allocs)
        elif isinstance(s, AttrStmt) and s.attr_key == "thread_extent":
            kernel = s
            used = _used_data(s)
            for outer in reversed(allocs):
                if isinstance(outer, AttrStmt):   # e.g. pragma_auto_unroll_max_step around the kernel
                    kernel = AttrStmt(outer.node, outer.attr_key, outer.value, kernel)
                elif outer.data in used:
                    kernel = Allocate(outer, kernel)
            self.kernels.append(kernel)
        elif isinstance(s, AttrStmt):
            self.walk(s.body, allocs + [s])
        elif isinstance(s, Evaluate) and is_no_op(s):
            pass
        else:
            raise CodegenError(self.unbound_message(s))

    def unbound_message(self, s) -> str:
        written = []

        class _V(Visitor):
            def visit_BufferStore(self, n):
                if n.buffer.name not in written:
                    written.append(n.buffer.name)
                self.generic_visit(n)

        _V().visit(s)
        target = written[0] if written else None
        what = {For: f"the loop over {s.loop_var.name}" if isinstance(s, For) else "",
                BufferStore: "a store", IfThenElse: "a branch", Evaluate: "a call"}.get(type(s), "code")
        where = f" writing buffer {target}" if target else ""
        name = target or "T"
        return (f"{self.f.name}: {what or type(s).__name__}{where} is not bound to GPU threads and would "
                f"run on the host; in CUDA code every loop nest must be bound to blockIdx/threadIdx: "
                f"bind its axes with s[{name}].bind(axis, te.thread_axis(\"blockIdx.x\")) and "
                f"s[{name}].bind(axis, te.thread_axis(\"threadIdx.x\"))")


def _used_data(s) -> set:
    out = set()

    class _V(Visitor):
        def visit_BufferLoad(self, n):
            out.add(n.buffer.data)
            self.generic_visit(n)

        def visit_BufferStore(self, n):
            out.add(n.buffer.data)
            self.generic_visit(n)

        def visit_Var(self, n):
            out.add(n)

    _V().visit(s)
    return out


def _kernel(f, kname, body, workspaces, shape_vars) -> DeviceKernel:
    """The kernel ``body`` with its launch dimensions and the parameters it takes."""
    scan = scan_kernel(body)
    grid, block = _launch_dims(f, kname, scan.thread_attrs)
    used_data = scan.read | scan.written
    params = tuple(i for i, b in enumerate(f.params) if b.data in used_data)
    spaces = tuple(j for j, b in enumerate(workspaces) if b.data in used_data)
    local_allocs = {a.buffer.data for a in scan.allocs}
    taken = {f.params[i].data for i in params} | {workspaces[j].data for j in spaces}
    free = [v for v in scan.used_vars if v not in scan.bound and v not in taken and v not in local_allocs]
    for v in free:
        if v not in shape_vars:
            raise CodegenError(
                f"{f.name}: kernel {kname} uses the variable {v.name}, which is neither bound inside the "
                "kernel (loop, let, thread index) nor a symbolic dimension of a parameter")
    dims = []
    for v in shape_vars:
        if v in free:
            if v.dtype not in ("int32",):
                raise CodegenError(f"{f.name}: symbolic dimension {v.name} has dtype {v.dtype}; "
                                   "the CUDA runtime passes symbolic dimensions as int32")
            dims.append(v)
    return DeviceKernel(kname, body, grid, block, params, spaces, tuple(dims))


def _launch_dims(f, kname, attrs):
    """(grid, block) of a kernel from its thread bindings, checked against the CUDA limits."""
    dims: dict = {}
    for a in attrs:
        tag = a.node.thread_tag
        if tag.startswith("vthread"):
            raise CodegenError(f"{f.name}: virtual thread {a.node.var.name} survived lowering")
        m = re.fullmatch(r"(blockIdx|threadIdx)\.([xyz])", tag)
        if not m:
            raise CodegenError(
                f"{f.name}: unknown thread tag {tag!r} on {a.node.var.name}; use blockIdx.x/y/z, "
                "threadIdx.x/y/z or vthread")
        ext = a.value
        if m.group(1) == "threadIdx":
            if not isinstance(ext, E.IntImm):
                raise CodegenError(
                    f"{f.name}: {tag} ({a.node.var.name}) has the symbolic extent {ext}; block "
                    "dimensions must be constants: split the axis by a constant factor before binding "
                    "the inner part to threadIdx")
            dims[tag] = max(dims.get(tag, 0), int(ext.value))
        else:
            prev = dims.get(tag)
            if isinstance(ext, E.IntImm):
                if prev is None or isinstance(prev, int):
                    dims[tag] = max(prev or 0, int(ext.value))
                else:
                    raise CodegenError(f"{f.name}: {tag} is bound with extents {prev} and {ext}")
            elif prev is None:
                dims[tag] = ext
            elif isinstance(prev, int) or not structural_equal(prev, ext):
                raise CodegenError(
                    f"{f.name}: {tag} is bound with different extents {prev} and {ext} in one kernel")
    grid, block = [], []
    for axis in "xyz":
        g = dims.get(f"blockIdx.{axis}", 1)
        if isinstance(g, int) and g > _GRID_LIMITS[axis]:
            raise CodegenError(f"{f.name}: grid dimension {axis} is {g}, above the CUDA limit "
                               f"{_GRID_LIMITS[axis]}")
        grid.append(g)
        b = dims.get(f"threadIdx.{axis}", 1)
        if b > _BLOCK_LIMITS[axis]:
            raise CodegenError(f"{f.name}: block dimension {axis} is {b}, above the CUDA limit "
                               f"{_BLOCK_LIMITS[axis]}")
        block.append(b)
    if block[0] * block[1] * block[2] > _LIMITS.max_threads_per_block:
        raise CodegenError(f"{f.name}: kernel {kname} uses {block[0]}x{block[1]}x{block[2]} = "
                           f"{block[0] * block[1] * block[2]} threads per block; CUDA allows at most "
                           f"{_LIMITS.max_threads_per_block}")
    return tuple(grid), tuple(block)
