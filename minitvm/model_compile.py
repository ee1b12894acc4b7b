"""``minitvm.compile`` (a model in, a runnable compiled model out) and ``minitvm.load``.

``compile`` takes a zoo name, an ONNX file or ``ModelProto``, or a :class:`~minitvm.graph.Graph`,
quantizes it to int8 on request (calibrating on the data given), compiles it for the target and
returns a :class:`~minitvm.graph.build.CompiledModel`; ``model.save(path)`` writes the artifact
that ``load`` reads back without compiling.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .errors import DtypeError, ShapeError, UsageError

__all__ = ["compile", "load"]

_DTYPES = ("float32", "int8")


def _zoo_args(name: str, input_shapes) -> tuple:
    """``(batch, image_size)`` of a zoo model from ``input_shapes`` (``{"data": (N, 3, H, W)}`` or the shape)."""
    if input_shapes is None:
        return 1, None
    shape = input_shapes
    if isinstance(input_shapes, dict):
        unknown = set(input_shapes) - {"data"}
        if unknown:
            raise UsageError(f"minitvm.compile: zoo model {name!r} has one input, 'data'; input_shapes names "
                             f"{sorted(unknown)}")
        shape = input_shapes["data"]
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise UsageError(f"minitvm.compile: input_shapes for {name!r}: expected (N, 3, H, W), got {shape!r}") from None
    if len(shape) != 4 or shape[1] != 3:
        raise UsageError(f"minitvm.compile: zoo model {name!r} takes images (N, 3, H, W), got input shape {shape}")
    return shape[0], (shape[2], shape[3])


def _load_graph(model, input_shapes):
    """The Graph of ``model`` (a Graph, an ONNX ModelProto or path, or a zoo name)."""
    from .graph import Graph
    if isinstance(model, Graph):
        if input_shapes:
            have = {n: tuple(model.node(n).type.shape) for n in model.topo_order() if model.node(n).is_input}
            want = input_shapes if isinstance(input_shapes, dict) else {next(iter(have)): input_shapes}
            for n, s in want.items():
                if n not in have or tuple(s) != have[n]:
                    raise UsageError(f"minitvm.compile: a Graph's input shapes are fixed ({have}); input_shapes "
                                     f"asks for {n}: {tuple(s)}")
        return model
    if type(model).__name__ == "ModelProto" or isinstance(model, bytes):
        from .frontend import from_onnx
        return from_onnx(model, shape=input_shapes)[0]
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str):
        raise UsageError(f"minitvm.compile: model must be a zoo name, an ONNX path or ModelProto, or a "
                         f"minitvm.graph.Graph; got a {type(model).__module__}.{type(model).__name__}")
    if model.endswith(".onnx") or os.path.exists(model):
        if not os.path.isfile(model):
            raise UsageError(f"minitvm.compile: {model}: no such file")
        from .frontend import from_onnx
        return from_onnx(model, shape=input_shapes)[0]
    from .models import _load_model
    batch, size = _zoo_args(model, input_shapes)
    return _load_model(model, batch, size)


def _samples_of(name: str, arr: np.ndarray, shape: tuple) -> list:
    """Split one input's calibration array into samples of ``shape``."""
    if arr.shape == shape:
        return [arr]
    if arr.shape[1:] == shape:
        return list(arr)
    if shape and arr.ndim == len(shape) and arr.shape[1:] == shape[1:] and arr.shape[0] % shape[0] == 0:
        return [arr[k:k + shape[0]] for k in range(0, arr.shape[0], shape[0])]
    raise ShapeError(f"calibration data for input {name!r} has shape {list(arr.shape)}; expected {list(shape)}, "
                     f"K samples of it [K, {', '.join(map(str, shape))}], or a multiple of the batch {shape[:1]} "
                     "of single items")


def calibration_data(calibration, graph) -> list:
    """Input dicts for calibrating ``graph`` from ``calibration``: an iterable of dicts by input
    name, or an ``.npz`` holding each input's samples (key = input name; a one-input model may
    use any single key), each an array of the input's shape or stacked samples of it."""
    inputs = {n: graph.node(n).type for n in graph.topo_order() if graph.node(n).is_input}
    if isinstance(calibration, (str, os.PathLike)):
        path = os.fspath(calibration)
        if os.path.isdir(path) or not path.endswith(".npz"):
            raise UsageError(f"calibration {path!r}: give an .npz of input arrays (or an iterable of input dicts)")
        if not os.path.isfile(path):
            raise UsageError(f"calibration {path}: no such file")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if len(inputs) == 1 and len(arrays) == 1:
            arrays = {next(iter(inputs)): next(iter(arrays.values()))}
        missing = [n for n in inputs if n not in arrays]
        if missing:
            raise UsageError(f"calibration {path}: no array for model input(s) {missing}; it has {sorted(arrays)}")
        per = {n: _samples_of(n, arrays[n], tuple(inputs[n].shape)) for n in inputs}
        counts = {n: len(v) for n, v in per.items()}
        if len(set(counts.values())) > 1:
            raise ShapeError(f"calibration {path}: the inputs have different numbers of samples {counts}")
        calibration = [{n: per[n][k] for n in inputs} for k in range(next(iter(counts.values())))]
    try:
        items = list(calibration)
    except TypeError:
        raise UsageError(f"calibration must be an iterable of input dicts or an .npz path, got a "
                         f"{type(calibration).__name__}") from None
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise UsageError(f"calibration sample {k} is a {type(item).__name__}, not a dict by input name "
                             f"({list(inputs)})")
        missing = [n for n in inputs if n not in item]
        if missing:
            raise UsageError(f"calibration sample {k} has no {missing}; the model's inputs are {list(inputs)}")
        sample = {}
        for n, t in inputs.items():
            from .runtime.ndarray import from_dlpack
            a = np.asarray(from_dlpack(item[n]).numpy() if hasattr(item[n], "__dlpack__") else item[n])
            if tuple(a.shape) != tuple(t.shape):
                raise ShapeError(f"calibration sample {k}: input {n!r} has shape {list(a.shape)}, the model "
                                 f"takes {list(t.shape)}")
            if a.dtype.kind not in "fiub":
                raise DtypeError(f"calibration sample {k}: input {n!r} has dtype {a.dtype}, not a number")
            sample[n] = a.astype(t.dtype, copy=False)
        out.append(sample)
    if not out:
        raise UsageError("calibration holds no samples")
    return out


def compile(model, target="auto", dtype: str = "float32", input_shapes=None, calibration=None,
            tuning_log=None):
    """Compile ``model`` into a runnable :class:`~minitvm.graph.build.CompiledModel`.

    ``model``: a zoo name (``"resnet18"``), an ONNX path or ``onnx.ModelProto``, or a
    :class:`~minitvm.graph.Graph`. ``target``: ``"auto"`` (CUDA where a GPU is present, else the
    CPU), or a target string or :class:`~minitvm.target.Target` (``"llvm -mcpu=znver3"``,
    ``"cuda -arch=sm_90"``). ``dtype``: ``"float32"``, or ``"int8"`` to quantize a float model
    (pre-quantized ONNX models run in int8 either way). ``input_shapes``: ``{input name:
    shape}`` (or one shape) for ONNX models with dynamic dimensions; for zoo models
    ``{"data": (N, 3, H, W)}`` picks the batch and image size. ``calibration`` (int8): an
    iterable of input dicts or an ``.npz`` of input arrays (see :func:`calibration_data`); with
    ``None`` the model is calibrated on random inputs, with a warning that its accuracy then
    means nothing. ``tuning_log``: a tuning log whose best configs the kernels use.
    """
    from .graph.build import build
    from .models import _is_quantized, _pick_target, quantize_for_target
    if dtype not in _DTYPES:
        raise UsageError(f"minitvm.compile: dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    if tuning_log is not None and not os.path.isfile(os.fspath(tuning_log)):
        raise UsageError(f"minitvm.compile: tuning_log {os.fspath(tuning_log)}: no such file")
    target = _pick_target(target if isinstance(target, str) else str(target))
    graph = _load_graph(model, input_shapes)
    if _is_quantized(graph):
        from .graph.passes.alter_layout import alter_layout
        graph = alter_layout(graph, target=target)
    elif dtype == "int8":
        if calibration is None:
            warnings.warn("minitvm.compile: int8 without calibration data: calibrating on random inputs, so the "
                          "model's accuracy means nothing; pass calibration= (input dicts or an .npz)",
                          UserWarning, stacklevel=2)
            graph = quantize_for_target(graph, np.random.default_rng(0), 4, target=target)
        else:
            graph = quantize_for_target(graph, None, target=target, data=calibration_data(calibration, graph))
    elif calibration is not None:
        raise UsageError("minitvm.compile: calibration is for dtype='int8' (this model compiles in float32)")
    if tuning_log is None:
        return build(graph, target=target)
    from .autotune import ApplyHistoryBest
    with ApplyHistoryBest(os.fspath(tuning_log)):
        return build(graph, target=target)


def load(path, device_index: int = 0):
    """The compiled model saved at ``path`` by ``model.save(path)``, loaded without compiling.

    Raises :class:`~minitvm.errors.ArtifactError` for a file that is not an artifact or has
    another format version, :class:`~minitvm.errors.DeviceError` when its code is for another
    device, CUDA arch or CPU than this machine's."""
    from .graph.artifact import read_artifact
    from .graph.build import CompiledModel, Step
    from .graph.types import TensorType
    from .target import Target
    parts = read_artifact(path, device_index)
    meta, plan = parts["meta"], parts["plan"]
    types = {n: TensorType(tuple(v["shape"]), v["dtype"], v.get("layout", "")) for n, v in plan["values"].items()}
    steps = [Step.from_json(d) for d in plan["steps"]]
    return CompiledModel.from_plan(parts["module"], steps, Target(meta["target"]), types, parts["consts"],
                                   plan["inputs"], plan["outputs"], plan.get("memory"), device_index)
