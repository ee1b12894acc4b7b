"""Shared-memory planning: static ``__shared__`` arrays, or one dynamic block above 48 KB.

Shared buffers are laid out one after another, each rounded up to 16 bytes. A kernel whose total
is above the static limit (or that asks for ``shared.dyn``) takes them all from one dynamic
block, in which buffers whose lifetimes are separated by a barrier share bytes: a GEMM's
accumulator staging tile, written after the k-loop, reuses the k-loop's operand tiles. The
(shared) total is checked against the architecture's opt-in limit per block.

Lifetimes are taken over the kernel's top-level statement sequence (through allocations,
attributes and lets; a loop or a branch counts as one statement, so a buffer used inside a
loop lives through all of it). Two buffers may overlap when every access of one comes before
every access of the other and a ``__syncthreads()`` statement lies between them at that level.
"""
from __future__ import annotations

import dataclasses

from ... import dtype as dt
from ...device_limits import cuda_limits
from ...errors import CodegenError
from .. import expr as E
from ..device import DeviceKernel, SharedMemoryPlan, scan_kernel



def plan_shared_memory(kernel: DeviceKernel, fname: str, arch: str | None) -> DeviceKernel:
    """``kernel`` with its :class:`SharedMemoryPlan`; ``arch`` (``sm_XY`` or None) bounds the total."""
    nodes = [a for a in scan_kernel(kernel.body).allocs if a.buffer.scope in ("shared", "shared.dyn")]
    shared = [a.buffer for a in nodes]
    sizes = {a: (const_size(a.buffer, fname) * dt.numpy_dtype(a.buffer.dtype).itemsize
                 * dt.lanes_of(a.buffer.dtype) + 15) // 16 * 16 for a in nodes}
    total = sum(sizes.values())
    limits = cuda_limits(arch)
    dynamic = total > limits.max_static_shared_bytes or any(b.scope == "shared.dyn" for b in shared)
    if dynamic:
        offsets, total = _overlapped_offsets(kernel.body, nodes, sizes)
    else:
        offsets, at = {}, 0
        for a in nodes:
            offsets[a] = at
            at += sizes[a]
    limit = limits.max_shared_bytes_per_block
    if limit is not None and total > limit:
        names = ", ".join(f"{b.name} ({const_size(b, fname) * dt.numpy_dtype(b.dtype).itemsize} B)"
                          for b in shared)
        raise CodegenError(f"{fname}: kernel {kernel.name} needs {total} bytes of shared memory "
                           f"({names}); {arch} allows at most {limit} per block: use smaller tiles")
    return dataclasses.replace(kernel, shared=SharedMemoryPlan(offsets, total if dynamic else 0))


def _overlapped_offsets(body, nodes, sizes) -> tuple:
    """Byte offsets of the shared allocations ``nodes`` in one block, buffers whose lifetimes a
    barrier separates sharing bytes; returns ``(offsets, total bytes)``."""
    steps = _top_level(body)
    data = {a.buffer.data: a for a in nodes}
    first, last = {}, {}
    barriers = []
    for k, st in enumerate(steps):
        if _is_barrier(st):
            barriers.append(k)
        for v in _shared_uses(st, data):
            first.setdefault(v, k)
            last[v] = k

    def apart(a, b):
        """Every use of ``a`` ends, a barrier passes, before ``b``'s first use."""
        if a not in last or b not in first:
            return False
        return any(last[a] < k < first[b] for k in barriers)

    offsets, placed = {}, []
    for a in nodes:
        live = sorted((offsets[o], offsets[o] + sizes[o]) for o in placed if not (apart(o, a) or apart(a, o)))
        at = 0
        for lo, hi in live:
            if at + sizes[a] <= lo:
                break
            at = max(at, hi)
        offsets[a] = at
        placed.append(a)
    return offsets, max((offsets[a] + sizes[a] for a in nodes), default=0)


def _top_level(body) -> list:
    """The kernel's top-level statements, through allocations, attributes, lets and sequences."""
    from ..stmt import Allocate, AttrStmt, LetStmt, SeqStmt
    if isinstance(body, SeqStmt):
        return [x for s in body.seq for x in _top_level(s)]
    if isinstance(body, (Allocate, AttrStmt, LetStmt)):
        return _top_level(body.body)
    return [body]


def _is_barrier(stmt) -> bool:
    from ..stmt import Evaluate
    return isinstance(stmt, Evaluate) and isinstance(stmt.value, E.Call) and stmt.value.op == "syncthreads"


def _shared_uses(stmt, data: dict) -> list:
    """The shared ``Allocate`` nodes (values of ``data``, keyed by buffer data var) ``stmt`` touches."""
    from ..functor import post_order_visit
    from ..stmt import BufferStore
    found = []

    def visit(n):
        buf = getattr(n, "buffer", None) if isinstance(n, (E.BufferLoad, BufferStore)) else None
        if buf is not None:
            for v, a in data.items():
                if v is buf.data and a not in found:
                    found.append(a)
    post_order_visit(stmt, visit)
    return found


def const_size(b, fname: str) -> int:
    """The element count of ``shared``/``local`` buffer ``b``, which must have a constant shape."""
    size = 1
    for s in b.shape:
        if not isinstance(s, E.IntImm):
            raise CodegenError(
                f"{fname}: {b.scope} buffer {b.name} has the symbolic shape "
                f"({', '.join(str(x) for x in b.shape)}); {b.scope} buffers need constant sizes: "
                "split the axes they cover by constant factors")
        size *= int(s.value)
    return size
