"""Streams and CUDA graphs: :class:`Stream` (launches inside ``with stream:`` go to it) and
:class:`CUDAGraph` (a captured sequence of launches replayed with one ``cuGraphLaunch``).

Outside every ``with stream:`` block, work goes to the legacy default stream of the device's
primary context, so launches are ordered with each other and with the synchronous copies of
:class:`~minitvm.runtime.cuda.memory.DeviceBuffer`.
"""
from __future__ import annotations

import sys
import threading

from . import device
from .device import _check, require_device

__all__ = ["Stream", "CUDAGraph"]


class _CurrentStream(threading.local):
    value = None


_STREAM = _CurrentStream()  # this thread's innermost ``with stream:`` stream; None: the default stream


class Stream:
    """A non-blocking CUDA stream on ``device_index``; launches go to it inside ``with stream:``."""

    def __init__(self, device_index: int = 0):
        require_device(device_index)
        self.device_index = device_index
        flags = int(device._drv.CUstream_flags.CU_STREAM_NON_BLOCKING)
        self.handle = _check(device._drv.cuStreamCreate(flags), "cuStreamCreate")
        self._saved = []

    def __enter__(self):
        self._saved.append(_STREAM.value)
        _STREAM.value = self.handle
        return self

    def __exit__(self, *exc):
        _STREAM.value = self._saved.pop()

    def synchronize(self) -> None:
        """Wait for the work queued on this stream."""
        _check(device._drv.cuStreamSynchronize(self.handle), "cuStreamSynchronize")

    def __del__(self):
        try:
            if getattr(self, "handle", None) is not None and sys.is_finalizing() is False:
                device._drv.cuStreamDestroy(self.handle)
        except Exception:  # noqa: BLE001 - never raise from a destructor
            pass


class CUDAGraph:
    """A sequence of launches captured once and replayed with one ``cuGraphLaunch``.

    ``CUDAGraph(fn, stream)`` runs ``fn()`` (which queues kernel launches through minitvm
    modules) under stream capture; ``replay()`` queues the whole captured work again. Run
    ``fn`` once without capture first so modules are loaded and scratch memory allocated.
    """

    def __init__(self, fn, stream: Stream):
        drv = device._drv
        self.stream = stream
        mode = drv.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
        require_device(stream.device_index)
        _check(drv.cuStreamBeginCapture(stream.handle, mode), "cuStreamBeginCapture")
        try:
            with stream:
                fn()
        finally:
            graph = _check(drv.cuStreamEndCapture(stream.handle), "cuStreamEndCapture")
        self.graph = graph
        self.exec = _check(drv.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")

    def replay(self) -> None:
        """Queue the captured launches on the capture stream."""
        _check(device._drv.cuGraphLaunch(self.exec, self.stream.handle), "cuGraphLaunch")

    def __del__(self):
        try:
            if sys.is_finalizing() is False:
                drv = device._drv
                if getattr(self, "exec", None) is not None:
                    drv.cuGraphExecDestroy(self.exec)
                if getattr(self, "graph", None) is not None:
                    drv.cuGraphDestroy(self.graph)
        except Exception:  # noqa: BLE001
            pass
