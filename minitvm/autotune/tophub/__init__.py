"""Tuned configs that ship with minitvm (after TVM's TopHub): one JSON-lines log per file here.

The root dispatch context answers a workload from these logs before it falls back to the
template's default, so common models run with tuned kernels without a tuning run. A user's
own ``ApplyHistoryBest`` is asked first; ``MINITVM_TOPHUB=0`` turns the shipped logs off.

``cuda_resnet50_int8_b16_h200.log``: ResNet-50's 23 distinct int8 convs
(``conv2d_NCHWc_int8.cuda``) at batch 16 on an NVIDIA H200, each the faster of two
genetic-search results (see ``docs/autotune.md``).

``cuda_resnet50_int8_tensorcore_h200.log``: ResNet-50's 44 distinct int8 convs on the tensor cores
(``conv2d_NHWC_int8_tensorcore.cuda``) and its float classifier (``dense.cuda``) at batch 1 and 16
on an NVIDIA H200, the best of 40 genetic-search trials each (``minitvm tune``, 2026-12-02; the
raw trials: ``benchmarks/logs/resnet50_int8_tensorcore_b1_b16_h200_trials.log.gz``).

``cuda_vgg19_drn26_inception3_int8_tensorcore_h200.log``: the same for VGG-19 at batch 1,
DRN-C-26 at batch 1 and 16 (13 of its 18 tasks at 16) and Inception V3 at batch 16 (32 of 44
tasks), 32 trials each (raw: ``benchmarks/logs/vgg19_drn26_inception3_int8_h200_trials.log.gz``).
The float first convs (``conv2d_nchw.cuda``) were tuned too but are not shipped: 32-40 trials
did not show a config faster than the default.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ..history import TuningHistory

__all__ = ["log_files", "context", "enabled", "shipped_config"]

_lock = threading.Lock()
_context = None


def log_files() -> list:
    """The shipped tuning logs, sorted by name."""
    return sorted(str(p) for p in Path(__file__).parent.glob("*.log"))


def enabled() -> bool:
    """Whether the shipped logs are consulted (``MINITVM_TOPHUB=0`` turns them off)."""
    return os.environ.get("MINITVM_TOPHUB", "1").strip().lower() not in ("0", "false", "no", "off")


def context():
    """One :class:`~minitvm.autotune.history.TuningHistory` over the shipped logs (loaded once)."""
    global _context
    with _lock:
        if _context is None:
            _context = TuningHistory(log_files())
        return _context


def shipped_config(task):
    """The config the shipped logs hold for ``task`` on its target (a point of its space), or
    None: nothing shipped for that workload, or ``MINITVM_TOPHUB=0``."""
    if not enabled():
        return None
    return context().lookup(task.target, task.workload)
