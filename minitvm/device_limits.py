"""What one CUDA thread block may ask for, per architecture: the single table of CUDA limits.

:class:`~minitvm.target.Target` hands it out as ``Target.limits``; the schedule templates'
config filters and the CUDA runtime's launch-plan checks read it from here, below every
package that needs it.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceLimits", "cuda_limits"]

# opt-in dynamic shared memory per block, bytes (Ampere A100: 163 KB, consumer Ampere/Ada: 99 KB,
# Hopper: 227 KB); architectures not listed are checked against 48 KB only at run time
_MAX_SHARED_PER_BLOCK = {"sm_80": 166912, "sm_86": 101376, "sm_87": 166912, "sm_89": 101376,
                         "sm_90": 232448, "sm_90a": 232448, "sm_100": 232448, "sm_120": 101376}


@dataclass(frozen=True)
class DeviceLimits:
    """Per-block limits of a CUDA architecture (compute capability 7.5 and up).

    ``max_shared_bytes_per_block`` is the opt-in dynamic shared memory limit, or ``None`` where
    the architecture is not in the table (then only the device checks it, at load time).
    """

    max_threads_per_block: int = 1024
    max_block_dims: tuple = (1024, 1024, 64)
    max_grid_dims: tuple = (2**31 - 1, 65535, 65535)
    max_static_shared_bytes: int = 48 * 1024
    max_shared_bytes_per_block: int | None = None
    max_registers_per_thread: int = 255
    warp_size: int = 32


def cuda_limits(arch: str = "sm_90") -> DeviceLimits:
    """The :class:`DeviceLimits` of CUDA architecture ``arch`` (a normalized name, e.g. ``"sm_90"``)."""
    return DeviceLimits(max_shared_bytes_per_block=_MAX_SHARED_PER_BLOCK.get(arch))
