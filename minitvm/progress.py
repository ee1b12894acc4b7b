"""Progress bars (tqdm, on stderr) for the long phases of getting a model ready: reading
calibration images, calibrating, compiling. :func:`minitvm.compile` takes ``progress=True`` (or
any callable ``progress(phase, done, total)``); the ``minitvm`` command shows them on a
terminal (``--progress`` forces them, ``--no-progress`` hides them)."""
from __future__ import annotations

import sys

__all__ = ["ProgressBars", "as_progress"]

_UNITS = {"reading images": "image", "calibrating": "run", "compiling": "kernel"}


class ProgressBars:
    """A callable ``progress(phase, done, total)`` that draws one tqdm bar per phase.

    ``enabled``: True draws them, False draws nothing, None draws them only where stderr is a
    terminal. ``label`` is added to each bar's description (``"compiling resnet50"``)."""

    def __init__(self, enabled: bool | None = None, label: str = ""):
        self.disable = None if enabled is None else not enabled
        self.label = label
        self._phase = None
        self._bar = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase or self._bar is None:
            self.close()
            from tqdm import tqdm
            desc = f"{phase} {self.label}".strip()
            self._bar = tqdm(total=total, desc=desc, unit=_UNITS.get(phase, "step"), file=sys.stderr,
                             disable=self.disable, dynamic_ncols=True, leave=True)
            self._phase = phase
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        """Finish the bar being drawn, if any."""
        if self._bar is not None:
            self._bar.close()
        self._bar, self._phase = None, None


def as_progress(progress):
    """``progress`` as a callable ``(phase, done, total)`` or None: True gives :class:`ProgressBars`."""
    if progress is True:
        return ProgressBars(True)
    if progress is None or progress is False:
        return None
    if not callable(progress):
        from .errors import UsageError
        raise UsageError(f"progress must be True, False, None or a callable (phase, done, total); "
                         f"got a {type(progress).__name__}")
    return progress
