"""Model inputs and outputs on disk for ``minitvm run``: ``--inputs`` (an ``.npz`` by input name,
or an ``.npy`` for a one-input model), ``--outputs`` (an ``.npz`` by output name) and the
``--print-top`` summary."""
from __future__ import annotations

import numpy as np

from ..errors import DtypeError, ShapeError, UsageError


def read_inputs(path: str, types: dict) -> dict:
    """The model inputs in file ``path``, checked against ``types`` (input name -> TensorType).

    An ``.npz`` holds one array per input name (a one-input model may use any single key); an
    ``.npy`` is the input of a one-input model. Arrays of another dtype of the same kind (float64
    for float32) are converted; others are refused, as are missing or unknown names and shapes
    that differ."""
    try:
        if path.endswith(".npy"):
            if len(types) != 1:
                raise UsageError(f"--inputs {path}: an .npy holds one array, but the model has inputs {list(types)}; "
                                 "give an .npz with one array per input name")
            arrays = {next(iter(types)): np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"--inputs {path}: cannot read it as .npz or .npy ({exc})") from None
    if len(types) == 1 and len(arrays) == 1:
        arrays = {next(iter(types)): next(iter(arrays.values()))}
    missing = [n for n in types if n not in arrays]
    unknown = [k for k in arrays if k not in types]
    if missing or unknown:
        raise UsageError(f"--inputs {path}: holds {sorted(arrays)}, the model's inputs are {list(types)}"
                         + (f" (missing {missing})" if missing else "")
                         + (f" (not inputs: {unknown})" if unknown else ""))
    out = {}
    for name, t in types.items():
        a = arrays[name]
        if tuple(a.shape) != tuple(t.shape):
            raise ShapeError(f"--inputs {path}: array {name!r} has shape {list(a.shape)}, the model takes "
                             f"{list(t.shape)}")
        if a.dtype != np.dtype(t.dtype):
            if not np.can_cast(a.dtype, t.dtype, "same_kind"):
                raise DtypeError(f"--inputs {path}: array {name!r} is {a.dtype}, the model takes {t.dtype}, and "
                                 f"{a.dtype} does not convert to it without changing its kind")
            a = a.astype(t.dtype)
        out[name] = a
    return out


def random_inputs(types: dict, seed: int) -> dict:
    """Standard-normal inputs of ``types`` (name -> TensorType), seeded."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in types.items():
        if np.dtype(t.dtype).kind == "f":
            out[name] = rng.standard_normal(tuple(t.shape)).astype(t.dtype)
        else:
            info = np.iinfo(t.dtype)
            out[name] = rng.integers(max(info.min, -128), min(info.max, 127), tuple(t.shape), endpoint=True,
                                     dtype=t.dtype)
    return out


def write_outputs(path: str, names: list, arrays: list) -> None:
    """Save the outputs to ``path`` (an ``.npz``; key = output name)."""
    np.savez(path, **dict(zip(names, arrays)))


def describe_output(name: str, out: np.ndarray, top: int) -> str:
    """One line: the output's shape, mean and standard deviation, and with ``top`` its ``top``
    largest entries of item 0 (class index and value)."""
    line = f"output {name}: {out.dtype}{list(out.shape)}"
    if out.size and out.dtype.kind in "fiub":
        line += f", mean {out.mean():.4g}, std {out.std():.4g}"
        if top and out.ndim >= 1:
            first = (out.reshape(out.shape[0], -1)[0] if out.ndim >= 2 else out).astype(np.float64)
            idx = np.argsort(first, kind="stable")[::-1][:top]
            line += f"; top-{len(idx)} of item 0: " + ", ".join(f"{i} ({first[i]:.4g})" for i in idx)
    return line
