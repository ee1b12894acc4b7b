"""Callbacks for :meth:`Tuner.tune`: each is called as ``cb(tuner, inputs, results)`` after a batch."""
from __future__ import annotations

import sys
import time

from .record import append_lines, check_writable, encode

__all__ = ["log_to_file", "progress_bar"]


class log_to_file:
    """Append every measured trial to the JSON-lines log at ``path`` (see ``record.py``)."""

    def __init__(self, path):
        check_writable(path)      # refused now, not after the first batch of trials
        self.path = path

    def __call__(self, tuner, inputs, results):
        """Append the batch's records."""
        append_lines(self.path, [encode(i, r) for i, r in zip(inputs, results)])


class progress_bar:
    """A progress bar (tqdm) over ``total`` trials showing errors and the best GFLOP/s so far.

    ``prefix`` labels the bar (default: the task name); ``file`` defaults to stderr. Without
    tqdm a plain status line is printed instead. ``worker_rates``: a function answering
    ``{worker: trials/s}`` (``DaskRunner.worker_rates``), shown after the best.
    """

    def __init__(self, total: int, prefix: str | None = None, file=None, si_prefix: str = "G", worker_rates=None):
        self.total = int(total)
        self.prefix = prefix
        self.worker_rates = worker_rates
        self.file = file if file is not None else sys.stderr
        self.scale = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[si_prefix]
        self.unit = f"{si_prefix}FLOP/s"
        self._bar = None
        self._done = 0
        self._t0 = None

    def start(self, tuner):
        """Open the bar (called by ``tune`` before the first batch)."""
        self._start(tuner)

    def _start(self, tuner):
        self.close()
        self._t0 = time.perf_counter()
        desc = self.prefix if self.prefix is not None else tuner.task.name
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=self.total, desc=desc, file=self.file, unit="trial", leave=True,
                             dynamic_ncols=True)
        self._desc = desc

    def __call__(self, tuner, inputs, results):
        """Advance by the batch and refresh the status."""
        if self._t0 is None:
            self._start(tuner)
        self._done += len(results)
        best = tuner.best_flops / self.scale
        status = {"errors": tuner.n_errors, "best": f"{best:.2f} {self.unit}"}
        rates = self.worker_rates() if self.worker_rates is not None else {}
        if rates:
            status["trials/s"] = " ".join(f"{w} {r:.1f}" for w, r in rates.items())
        if self._bar is not None:
            self._bar.set_postfix(status, refresh=False)
            self._bar.update(len(results))
        else:
            rate = self._done / max(1e-9, time.perf_counter() - self._t0)
            per_worker = f" ({status['trials/s']})" if rates else ""
            self.file.write(f"\r{self._desc}: {self._done}/{self.total} trials, {tuner.n_errors} errors, "
                            f"best {best:.2f} {self.unit}, {rate:.1f} trials/s{per_worker}")
            self.file.flush()

    def close(self):
        """Finish the bar (called by ``tune`` at the end)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._t0 is not None:
            self.file.write("\n")
            self.file.flush()
        self._t0 = None
        self._done = 0
