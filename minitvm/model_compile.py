"""``minitvm.compile`` (a model in, a runnable compiled model out) and ``minitvm.load``.

``compile`` takes a zoo name, an ONNX file or ``ModelProto``, or a :class:`~minitvm.graph.Graph`,
quantizes it to int8 on request (calibrating on the data given), compiles it for the target and
returns a :class:`~minitvm.graph.build.CompiledModel`; ``model.save(path)`` writes the artifact
that ``load`` reads back without compiling. The ``minitvm compile`` and ``minitvm run`` commands
call :func:`compile` too, with their flags' names for the error messages.
"""
from __future__ import annotations

import os
import warnings

from .calibration import check_calibration_source, load_calibration
from .errors import UsageError
from .models import PYTHON_NAMES, OptionNames, is_quantized, load_graph, pick_target, quantize_for_target

__all__ = ["compile", "load", "check_compile_options"]

DTYPES = ("float32", "int8")


def _is_zoo_name(model) -> bool:
    from .graph import zoo
    return isinstance(model, str) and model in zoo.list_models()


def check_compile_options(dtype: str = "float32", calibration=None, tuning_log=None,
                          calibration_samples=None, names: OptionNames = PYTHON_NAMES, model=None) -> None:
    """Refuse options that cannot work, before any model is loaded or compiled: a dtype that is
    not float32 or int8, a missing tuning log, calibration data that cannot be read, calibration
    without int8, and int8 of a zoo model (always float) without calibration data."""
    if dtype not in DTYPES:
        raise UsageError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if tuning_log is not None and not os.path.isfile(os.fspath(tuning_log)):
        raise UsageError(f"{names.tuning_log} {os.fspath(tuning_log)}: no such file")
    if calibration_samples is not None and (isinstance(calibration_samples, bool) or
                                            not isinstance(calibration_samples, int) or calibration_samples < 1):
        raise UsageError(f"calibration_samples must be a positive integer, got {calibration_samples!r}")
    if calibration is not None and dtype != "int8":
        raise UsageError(f"{names.calibration} is for int8 (this model compiles in {dtype})")
    check_calibration_source(calibration, names.calibration)
    if dtype == "int8" and calibration is None and _is_zoo_name(model):
        raise UsageError(_needs_calibration(names))


def _needs_calibration(names: OptionNames) -> str:
    return (f"int8 needs calibration data to choose its scales: give {names.calibration} (a folder of images or "
            f"an .npz of input arrays"
            + ("" if names.cli else ", or a list of input dicts")
            + f"), or {names.calibrate_random} for timing only (the accuracy then means nothing)")


def compile(model, target="auto", dtype: str = "float32", input_shapes=None, calibration=None,
            tuning_log=None, *, batch=None, image_size=None, calibration_samples=None,
            quantize_first_conv=None, tactics: int = 0, progress=None,
            option_names: OptionNames | None = None):
    """Compile ``model`` into a runnable :class:`~minitvm.graph.build.CompiledModel`.

    ``model``: a zoo name (``"resnet18"``), an ONNX path or ``onnx.ModelProto``, or a
    :class:`~minitvm.graph.Graph`. ``target``: ``"auto"`` (CUDA where a GPU is present, else the
    CPU), or a target string or :class:`~minitvm.target.Target` (``"llvm -mcpu=znver3"``,
    ``"cuda -arch=sm_90"``). ``dtype``: ``"float32"``, or ``"int8"`` to quantize a float model
    (pre-quantized ONNX models run in int8 either way).

    Shapes: ``input_shapes`` (``{input name: shape}``, or one shape) and ``batch`` fix an ONNX
    model's dynamic dimensions (a static batch cannot change); for a zoo model they, and
    ``image_size`` (``224`` or ``(h, w)``), pick the batch and image size.

    int8 needs ``calibration``: a folder of images (ImageNet preprocessing; needs Pillow), an
    ``.npz`` of input arrays, an iterable of input dicts, or ``"random"`` (random inputs, for
    timing only: it warns that the accuracy then means nothing); see
    :func:`minitvm.calibration.load_calibration`. ``calibration_samples`` caps the samples
    used. ``quantize_first_conv`` True / False quantizes the first conv or keeps it float; None: the
    target's recipe (:func:`minitvm.models.int8_recipe`).

    ``tuning_log``: a tuning log whose best configs the kernels use. ``tactics=K`` times up to K
    configs of each kernel nothing tuned answers (on the GPU). ``progress=True`` shows progress
    bars (reading images, calibrating, compiling); a callable ``progress(phase, done, total)``
    gets the same events. ``option_names`` spells the options in error messages (the command
    line passes its flags).
    """
    from .graph.build import build
    from .progress import as_progress
    names = option_names or PYTHON_NAMES
    check_compile_options(dtype, calibration, tuning_log, calibration_samples, names, model)
    report = as_progress(progress)
    target = pick_target(target)
    graph = load_graph(model, input_shapes, batch, image_size, names=names)
    if is_quantized(graph):
        from .graph.passes.alter_layout import alter_layout
        if calibration is not None:
            warnings.warn("the model is pre-quantized: its int8 layers run as imported, and the calibration data "
                          "is not used", UserWarning, stacklevel=2)
        graph = alter_layout(graph, target=target)
    elif dtype == "int8":
        if calibration is None:
            raise UsageError(_needs_calibration(names))
        inputs = {n: graph.node(n).type for n in graph.topo_order() if graph.node(n).is_input}
        data = load_calibration(calibration, inputs, calibration_samples, report)
        graph = quantize_for_target(graph, first_conv=quantize_first_conv, target=target, data=data,
                                    progress=report)
    compile_progress = (lambda done, total: report("compiling", done, total)) if report else None
    if tuning_log is None:
        return build(graph, target=target, progress=compile_progress, tactics=tactics)
    from .autotune import ApplyHistoryBest
    with ApplyHistoryBest(os.fspath(tuning_log)):
        return build(graph, target=target, progress=compile_progress, tactics=tactics)


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
