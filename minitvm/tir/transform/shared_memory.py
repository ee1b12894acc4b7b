"""Shared-memory planning: static ``__shared__`` arrays, or one dynamic block above 48 KB.

Shared buffers are laid out one after another, each rounded up to 16 bytes. A kernel whose total
is above the static limit (or that asks for ``shared.dyn``) takes them all from one dynamic
block; the total is checked against the architecture's opt-in limit per block.
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
    total, offsets = 0, {}
    for a in nodes:
        b = a.buffer
        size = const_size(b, fname)
        nbytes = size * dt.numpy_dtype(b.dtype).itemsize * dt.lanes_of(b.dtype)
        offsets[a] = total
        total += (nbytes + 15) // 16 * 16
    limits = cuda_limits(arch)
    dynamic = total > limits.max_static_shared_bytes or any(b.scope == "shared.dyn" for b in shared)
    limit = limits.max_shared_bytes_per_block
    if limit is not None and total > limit:
        names = ", ".join(f"{b.name} ({const_size(b, fname) * dt.numpy_dtype(b.dtype).itemsize} B)"
                          for b in shared)
        raise CodegenError(f"{fname}: kernel {kernel.name} needs {total} bytes of shared memory "
                           f"({names}); {arch} allows at most {limit} per block: use smaller tiles")
    return dataclasses.replace(kernel, shared=SharedMemoryPlan(offsets, total if dynamic else 0))


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
