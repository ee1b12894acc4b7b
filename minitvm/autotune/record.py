"""Tuning logs: one JSON object per line and per trial.

A line holds the target, the task name and arguments, the workload key, the config (index and
knob values), the measured costs in seconds, the error code (:class:`MeasureErrorNo`) and a
short error message, the time of the measurement and the minitvm version::

    {"target": "llvm", "task": "matmul.cpu", "args": [256, 256, 256, "float32"],
     "workload": "[\\"matmul.cpu\\",256,256,256,\\"float32\\"]", "config": {"index": 42,
     "knobs": {"tile_y": [32, 8], ...}}, "costs": [0.00123, 0.00121], "error_no": 0,
     "error": "NO_ERROR", "error_msg": "", "all_cost": 0.21, "timestamp": 1700000000.0,
     "version": "0.1.0"}

Lines are appended with one ``write`` of a whole line to a file opened in append mode and
flushed at once, so several processes can log to one file. Malformed lines (bad JSON, not UTF-8,
nested too deeply) are skipped with a warning naming ``file:line``; a log is read as gzip when
its bytes are gzip, and a truncated gzip log keeps its lines before the damage.
"""
from __future__ import annotations

import gzip
import json
import math
import os
import warnings
import zlib

from ..errors import ArgumentError, MiniTVMError
from .result import MeasureErrorNo, MeasureInput, MeasureResult
from .task import Task, workload_key

__all__ = ["encode", "decode", "load_records", "save_records", "append_record", "pick_best", "LoggedConfig",
           "TuningLogError", "check_writable"]

_MAX_MSG = 512


def _version() -> str:
    from ..version import __version__
    return __version__


class LoggedConfig:
    """A config read back from a log: its ``index`` and knob ``values`` (plain dict).

    ``resolve()`` turns it into a :class:`~minitvm.autotune.space.ConfigEntity` of the task's
    space (by values, so an index made stale by a template change is not trusted).
    """

    def __init__(self, task: Task, index: int, values: dict):
        self.task = task
        self.index = index
        self.values = values

    def resolve(self):
        """The ConfigEntity of the task's current space with these knob values."""
        space = self.task.config_space
        return space.get(space.index_of(self.values, fill_missing=True))

    def to_dict(self) -> dict:
        """``{"index": ..., "knobs": {...}}``."""
        return {"index": self.index, "knobs": self.values}

    def __eq__(self, other):
        return getattr(other, "values", None) == self.values and getattr(other, "index", None) == self.index

    def __hash__(self):
        return hash(self.index)

    def __repr__(self):
        return f"LoggedConfig(index={self.index}, {self.values})"


def _json_args(x):
    return [_json_args(v) for v in x] if isinstance(x, (list, tuple)) else x


def _finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def encode(inp: MeasureInput, res: MeasureResult) -> str:
    """One log line (no trailing newline) for a measured trial."""
    cfg = inp.config
    err = MeasureErrorNo(int(res.error_no))
    msg = res.error_msg or ""
    if len(msg) > _MAX_MSG:
        msg = msg[:_MAX_MSG - 3] + "..."
    obj = {
        "target": str(inp.target),
        "task": inp.task.name,
        "args": _json_args(inp.task.args),
        "workload": inp.task.workload_key,
        "config": {"index": int(cfg.index) if cfg.index is not None else -1, "knobs": cfg.values},
        "costs": [_finite(float(c)) for c in res.costs],
        "error_no": int(err),
        "error": err.name,
        "error_msg": msg,
        "all_cost": _finite(float(res.all_cost)),
        "timestamp": float(res.timestamp),
        "version": _version(),
    }
    return json.dumps(obj, separators=(", ", ": "), allow_nan=False)


def decode(line: str):
    """``(MeasureInput, MeasureResult)`` of one log line; raises ValueError when malformed."""
    return _decode_object(json.loads(line))


def _decode_object(obj):
    """:func:`decode` of a line already parsed from JSON."""
    if not isinstance(obj, dict):
        raise ArgumentError("a record must be a JSON object")
    try:
        name, args, target = obj["task"], obj["args"], obj["target"]
        cfg = obj["config"]
        index, knobs = cfg["index"], cfg["knobs"]
        costs = obj["costs"]
        error_no = int(obj["error_no"])
    except (KeyError, TypeError) as exc:
        raise ArgumentError(f"missing or malformed field {exc}") from None
    if not isinstance(name, str) or not isinstance(args, list) or not isinstance(knobs, dict) \
            or not isinstance(costs, list):
        raise ArgumentError("malformed task, args, config or costs")
    task = Task(name, args, target)
    wkey = obj.get("workload")
    if wkey is not None and wkey != task.workload_key:
        raise ArgumentError(f"the workload key {wkey} does not match the task and args ({task.workload_key})")
    config = LoggedConfig(task, int(index), knobs)
    try:
        err = MeasureErrorNo(error_no)
    except ValueError:
        err = MeasureErrorNo.UNKNOWN_ERROR
    res = MeasureResult(tuple(float(c) if c is not None else math.inf for c in costs), err,
                        str(obj.get("error_msg", "")), float(obj.get("all_cost") or 0.0),
                        float(obj.get("timestamp", 0.0)))
    return MeasureInput(str(target), task, config), res


class TuningLogError(MiniTVMError, OSError):
    """A tuning log that cannot be read or written at all (missing, a directory, unwritable)."""


_GZIP_MAGIC = b"\x1f\x8b"


def _raw_lines(path):
    """The byte lines of the log at ``path``, gzip or plain text whatever its name says; a
    truncated or corrupt gzip stream ends with a warning after its last whole line."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise TuningLogError(f"tuning log {name}: is a directory, not a JSON-lines file")
    try:
        with open(name, "rb") as f:
            magic = f.read(2)
    except OSError as exc:
        raise TuningLogError(f"tuning log {name}: cannot be read ({exc.strerror or exc})") from None
    if magic != _GZIP_MAGIC:
        if name.endswith(".gz"):
            warnings.warn(f"{name}: not gzip data despite its name; reading it as plain text", stacklevel=3)
        with open(name, "rb") as f:
            yield from f
        return
    try:
        with gzip.open(name, "rb") as f:
            yield from f
    except (EOFError, OSError, zlib.error) as exc:
        warnings.warn(f"{name}: the gzip stream is truncated or corrupt ({exc}); the lines before it are kept",
                      stacklevel=3)


def _log_lines(path):
    """``(line number, text)`` of each non-empty line of a tuning log; a line that is not UTF-8 is
    skipped with a warning naming ``file:line``."""
    for lineno, raw in enumerate(_raw_lines(path), 1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            warnings.warn(f"{os.fspath(path)}:{lineno}: skipping a line that is not UTF-8 ({exc.reason})",
                          stacklevel=3)
            continue
        if text:
            yield lineno, text


def _parse(path, lineno, text):
    """``(MeasureInput, MeasureResult, JSON object)`` of a line, or None (warned) when malformed."""
    try:
        obj = json.loads(text)
        return (*_decode_object(obj), obj)
    except (ValueError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else exc
        warnings.warn(f"{os.fspath(path)}:{lineno}: skipping a malformed tuning record ({why})", stacklevel=3)
        return None


def load_records(path):
    """All records of the log at ``path`` as ``(MeasureInput, MeasureResult)`` pairs, in file
    order. A malformed line is skipped with a warning naming ``file:line``; a gzip log (any
    name) is read through gzip, and a truncated one keeps the lines before the damage. A
    missing path or a directory raises :class:`TuningLogError`."""
    out = []
    for lineno, text in _log_lines(path):
        parsed = _parse(path, lineno, text)
        if parsed is not None:
            out.append(parsed[:2])
    return out


def check_writable(path) -> None:
    """Raise :class:`TuningLogError` unless records can be appended to ``path`` (created if absent)."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise TuningLogError(f"tuning log {name}: is a directory, not a JSON-lines file")
    try:
        with open(name, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise TuningLogError(f"tuning log {name}: cannot be written ({exc.strerror or exc})") from None


def append_record(path, inp: MeasureInput, res: MeasureResult) -> None:
    """Append one record to ``path`` with a single write, flushed at once (append-safe)."""
    append_lines(path, [encode(inp, res)])


def append_lines(path, lines) -> None:
    """Append lines (without newlines) to ``path``, each with a single write, flushed."""
    with open(path, "a", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            f.flush()


def save_records(path, records) -> None:
    """Append ``(MeasureInput, MeasureResult)`` pairs to ``path``."""
    append_lines(path, [encode(i, r) for i, r in records])


def _line_cost(obj) -> float:
    if obj.get("error_no") != 0:
        return math.inf
    costs = [c for c in obj.get("costs") or [] if isinstance(c, (int, float))]
    return sum(costs) / len(costs) if costs else math.inf


def pick_best(in_log, out_log) -> int:
    """Write to ``out_log`` (replacing it) the best valid line of ``in_log`` per (target, workload),
    verbatim; returns how many lines were written."""
    best: dict = {}
    order: list = []
    for lineno, text in _log_lines(in_log):
        parsed = _parse(in_log, lineno, text)
        if parsed is None:
            continue
        inp, _, obj = parsed
        cost = _line_cost(obj)
        if not math.isfinite(cost):
            continue
        key = (inp.target, workload_key(inp.task.workload))
        if key not in best:
            order.append(key)
        if key not in best or cost < best[key][0]:
            best[key] = (cost, text)
    check_writable(out_log)
    with open(out_log, "w", encoding="utf-8") as f:
        for key in order:
            f.write(best[key][1] + "\n")
    return len(order)
