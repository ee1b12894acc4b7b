"""``minitvm run``'s benchmark phase: whole-model inferences for a time budget, with a progress
bar, instead of a fixed count (one int8 DRN-C-26 inference takes seconds on a small CPU, a
ResNet-50 one 70 microseconds on an H200)."""
from __future__ import annotations

import sys
import time

import numpy as np

#: inferences timed together: long enough to hide the timer, short enough for a lively bar
_CHUNK_SECONDS = 0.05


def benchmark(model, seconds: float, show_progress=None) -> tuple:
    """``(median seconds per inference, inferences timed)`` of ``model`` (inputs set, already run
    once) over about ``seconds`` of back-to-back inferences, at least one. Inferences are timed in
    chunks of about 50 ms (``CompiledModel.benchmark``: CUDA-graph replays on a GPU); the median is
    over the chunks. ``show_progress``: True, False, or None for "only on a terminal"."""
    from tqdm import tqdm
    bar = tqdm(total=round(seconds, 1), desc="benchmarking", unit="s", file=sys.stderr, dynamic_ncols=True,
               disable=None if show_progress is None else not show_progress,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s{postfix}")
    per_chunk, count, number = [], 0, 1
    start = time.perf_counter()
    try:
        while True:
            t = model.benchmark(number=number, repeat=1, warmup=0).median
            per_chunk.append(t)
            count += number
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{count} inferences, {t * 1e3:.3f} ms each", refresh=False)
            bar.update(min(elapsed, bar.total) - bar.n)
            if elapsed >= seconds:
                break
            number = max(1, min(int(_CHUNK_SECONDS / max(t, 1e-9)), int((seconds - elapsed) / max(t, 1e-9)) or 1))
    finally:
        bar.close()
    return float(np.median(per_chunk)), count
