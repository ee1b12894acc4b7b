"""Getting a model ready to compile, shared by :func:`minitvm.compile` and the ``minitvm``
command: the target ``auto`` stands for, loading a zoo model, an ONNX model or a Graph at the
input shapes asked for (a dynamic batch, ``input_shapes``, a zoo model's image size), and int8
quantization for a target's int8 templates.

Errors name the options the way the caller spells them (:class:`OptionNames`: ``input_shapes=``
from Python, ``--input-shapes`` from the command line)."""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["OptionNames", "PYTHON_NAMES", "pick_target", "load_graph", "onnx_input_dims",
           "resolve_input_shapes", "quantize_for_target", "is_quantized", "is_artifact", "is_model_file",
           "load_onnx"]


@dataclass(frozen=True)
class OptionNames:
    """How a caller spells its options, for error messages."""
    input_shapes: str = "input_shapes"
    batch: str = "batch"
    image_size: str = "image_size"
    calibration: str = "calibration"
    calibrate_random: str = "calibration='random'"
    tuning_log: str = "tuning_log"
    cli: bool = False

    def shape_example(self, name: str, shape) -> str:
        """How to give input ``name`` the shape ``shape``, in the caller's spelling."""
        if self.cli:
            return f'{self.input_shapes} "{name}:[{",".join(map(str, shape))}]"'
        return f"{self.input_shapes}={{{name!r}: {tuple(shape)}}}"


PYTHON_NAMES = OptionNames()


def pick_target(target="auto"):
    """The :class:`~minitvm.target.Target` of ``target``: ``"auto"`` is CUDA where a GPU is
    present, else LLVM for this CPU; any target string or Target otherwise."""
    from .target import Target
    if not isinstance(target, str):
        return Target(target)
    if target != "auto":
        return Target(target)
    from .runtime import cuda
    return Target("cuda" if cuda.device_count() > 0 else "llvm")


def is_artifact(path) -> bool:
    """Whether ``path`` is a file saved by ``CompiledModel.save`` (a zip holding ``meta.json``)."""
    path = os.fspath(path)
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return "meta.json" in zf.namelist()


def is_model_file(model: str) -> bool:
    """Whether ``model`` names a file (an ONNX model or an artifact) rather than a zoo model."""
    return model.endswith((".onnx", ".mtvm")) or os.path.exists(model)


def _fmt(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _as_shape(shape, what: str) -> tuple:
    try:
        out = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise UsageError(f"{what}: expected a shape (a sequence of positive integers), got {shape!r}") from None
    if any(d < 1 for d in out):
        raise UsageError(f"{what}: dimensions must be positive, got {list(out)}")
    return out


def _given_shapes(input_shapes, names: OptionNames) -> dict:
    """``{input name: shape}`` from a dict or, for a one-input model, one shape (key None)."""
    if input_shapes is None:
        return {}
    if isinstance(input_shapes, dict):
        return {n: _as_shape(s, f"{names.input_shapes} for input {n!r}") for n, s in input_shapes.items()}
    return {None: _as_shape(input_shapes, names.input_shapes)}


def load_onnx(model):
    """The ``onnx.ModelProto`` of an ONNX path, serialized bytes or ModelProto (the importer's
    loader and its errors), or a clear error where the onnx package is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UsageError("ONNX models need the onnx package: pip install 'minitvm[onnx]'") from None
    from .frontend.onnx.load import _load
    return _load(model)


def onnx_input_dims(proto) -> dict:
    """``{input name: dims}`` of an ONNX ``ModelProto``'s graph inputs (initializers excluded):
    an int per static dimension, the symbol (or ``"?"``) per dynamic one; None for an input
    whose rank is unknown."""
    initializers = {i.name for i in proto.graph.initializer}
    dims = {}
    for vi in proto.graph.input:
        if vi.name in initializers:
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            dims[vi.name] = None
            continue
        dims[vi.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or "?")
                         for d in tt.shape.dim]
    return dims


def resolve_input_shapes(source: str, dims: dict, input_shapes=None, batch=None,
                         names: OptionNames = PYTHON_NAMES) -> dict:
    """The concrete shape of every input of a model whose inputs have ``dims`` (see
    :func:`onnx_input_dims`): ``input_shapes`` fixes whole shapes, ``batch`` the dynamic first
    dimension of every input that has one. Refuses a name that is no input, a shape that does not
    fit the model, a ``batch`` where the model's batch is static (and differs), and any dynamic
    dimension left, saying what to pass. ``source`` names the model in messages."""
    given = _given_shapes(input_shapes, names)
    if None in given:
        if len(dims) != 1:
            raise UsageError(f"{source}: a shape without an input name fits a one-input model; this one has "
                             f"inputs {list(dims)}: name each ({names.shape_example('NAME', given[None])})")
        given = {next(iter(dims)): given[None]}
    unknown = [n for n in given if n not in dims]
    if unknown:
        have = ", ".join(f"{n!r} {_fmt(d) if d is not None else '(rank unknown)'}" for n, d in dims.items())
        raise UsageError(f"{source}: {names.input_shapes} names {unknown[0]!r}, which is not a model input; "
                         f"the inputs are {have}")
    shapes = {}
    for n, d in dims.items():
        shape = list(given[n]) if n in given else (list(d) if d is not None else None)
        if n in given and d is not None and (len(d) != len(shape) or any(
                isinstance(a, int) and a != b for a, b in zip(d, shape))):
            raise UsageError(f"{source}: {names.input_shapes} gives input {n!r} the shape {_fmt(shape)}, which "
                             f"does not fit the model's {_fmt(d)}")
        shapes[n] = shape
    if batch is not None:
        dynamic = [n for n, d in dims.items() if d and not isinstance(d[0], int)]
        static = [(n, d) for n, d in dims.items() if d]
        if not dynamic and not static:
            raise UsageError(f"{names.batch} {batch}: {source} has no input with a batch dimension")
        if not dynamic:
            n, d = static[0]
            if d[0] != batch:
                raise UsageError(f"{names.batch} {batch}: {source} has a static batch (input {n!r} is {_fmt(d)}), "
                                 f"so its batch cannot change; export the model with a dynamic batch")
        for n in dynamic:
            if n in given and given[n][0] != batch:
                raise UsageError(f"{names.batch} {batch} and {names.input_shapes} {n}:{_fmt(given[n])} disagree on "
                                 f"the batch of input {n!r}")
            shapes[n][0] = batch
    for n, shape in shapes.items():
        if shape is None or any(not isinstance(x, int) for x in shape):
            d = dims[n]
            example = [x if isinstance(x, int) else 1 for x in (shape or [1, 3, 224, 224])]
            batch_hint = (f" (or {names.batch} N for its batch)"
                          if d and not isinstance(d[0], int) and all(isinstance(x, int) for x in d[1:]) else "")
            what = f"dynamic dimensions {_fmt(d)}" if d is not None else "an unknown rank"
            raise UsageError(f"{source}: input {n!r} has {what}; give its shape: "
                             f"{names.shape_example(n, example)}{batch_hint}")
    return {n: tuple(s) for n, s in shapes.items()}


def _image_size(size, names: OptionNames):
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2:
        raise UsageError(f"{names.image_size}: expected a size or (height, width), got {size!r}")
    return _as_shape(hw, names.image_size)


def _zoo_shape(name: str, input_shapes, batch, image_size, names: OptionNames) -> tuple:
    """``(batch, image size)`` of zoo model ``name`` from the options given."""
    given = _given_shapes(input_shapes, names)
    unknown = set(given) - {None, "data"}
    if unknown:
        raise UsageError(f"zoo model {name!r} has one input, 'data'; {names.input_shapes} names {sorted(unknown)}")
    size = _image_size(image_size, names)
    if not given:
        return batch or 1, size
    shape = next(iter(given.values()))
    if len(shape) != 4 or shape[1] != 3:
        raise UsageError(f"zoo model {name!r} takes images (N, 3, H, W), got input shape {shape}")
    if batch is not None and batch != shape[0]:
        raise UsageError(f"{names.batch} {batch} and {names.input_shapes} {list(shape)} disagree on the batch")
    if size is not None and size != shape[2:]:
        raise UsageError(f"{names.image_size} {size[0]}x{size[1]} and {names.input_shapes} {list(shape)} disagree "
                         "on the image size")
    return shape[0], shape[2:]


def load_graph(model, input_shapes=None, batch=None, image_size=None, init: bool = True,
               names: OptionNames = PYTHON_NAMES, source: str | None = None):
    """The Graph of ``model`` -- a zoo name, an ONNX path, ``ModelProto`` or serialized bytes, or a
    :class:`~minitvm.graph.Graph` -- at the shapes asked for.

    ``input_shapes`` (``{input name: shape}``, or one shape for a one-input model) and ``batch``
    fix an ONNX model's dynamic dimensions (see :func:`resolve_input_shapes`); for a zoo model
    ``{"data": (N, 3, H, W)}``, ``batch`` and ``image_size`` (``224`` or ``(224, 224)``) pick the
    batch and image size. A Graph's shapes are fixed. ``init=False`` gives a zoo model without
    weights (shapes only: for summaries). ``source`` names the model in messages (default: its
    path, or "the ONNX model")."""
    from .graph import Graph
    if isinstance(model, Graph):
        have = {n: tuple(model.node(n).type.shape) for n in model.topo_order() if model.node(n).is_input}
        want = _given_shapes(input_shapes, names)
        if None in want:
            want = {next(iter(have)): want.pop(None)}
        if batch is not None:
            want.update({n: (batch,) + s[1:] for n, s in have.items() if s and n not in want})
        for n, s in want.items():
            if n not in have or s != have[n]:
                raise UsageError(f"a Graph's input shapes are fixed ({have}); {names.input_shapes}/{names.batch} "
                                 f"ask for {n}: {s}")
        if image_size is not None:
            raise UsageError(f"{names.image_size} is for zoo models; a Graph's input shapes are fixed ({have})")
        return model
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if isinstance(model, str) and not is_model_file(model):
        from .graph import zoo
        if model not in zoo.list_models():
            zoo.get_model(model)        # the zoo's own error: unknown name, closest match, the list
        b, size = _zoo_shape(model, input_shapes, batch, image_size, names)
        return zoo.get_model(model, batch=b, image_size=size, init=init)[0]
    if isinstance(model, str):
        if not os.path.isfile(model):
            raise UsageError(f"{model}: no such file")
        if is_artifact(model):
            raise UsageError(f"{model} is a compiled artifact, not a model to compile: load it with "
                             "minitvm.load (minitvm run ARTIFACT)")
        source = source or model
    elif type(model).__name__ == "ModelProto" or isinstance(model, bytes):
        source = source or "the ONNX model"
    else:
        raise UsageError(f"model must be a zoo name, an ONNX path or ModelProto, or a minitvm.graph.Graph; "
                         f"got a {type(model).__module__}.{type(model).__name__}")
    if image_size is not None:
        raise UsageError(f"{names.image_size} is for zoo models; give an ONNX model's shapes with "
                         f"{names.input_shapes}")
    from .frontend import from_onnx
    proto = load_onnx(model)
    shapes = resolve_input_shapes(source, onnx_input_dims(proto), input_shapes, batch, names)
    return from_onnx(proto, shape=shapes)[0]


def quantize_for_target(graph, rng=None, n_images: int = 4, first_conv=None, target=None, data=None,
                        progress=None, dense=None):
    """int8 graph in the layouts ``target``'s int8 templates read (NHWC for the tensor cores
    on sm_80+, else NCHW4c for dp4a): max calibration on ``data`` (a list of input dicts) or,
    without it, on ``n_images`` random inputs drawn from ``rng`` (default: seed 0; ``n_images=0``: a global
    scale, no calibration run -- for timing only). ``progress(phase, done, total)`` follows the
    calibration runs.

    ``first_conv`` / ``dense``: quantize the first conv / the dense layers too (True) or keep
    them float (False); ``None`` takes :func:`int8_recipe`'s choice for the target."""
    from .graph.passes.alter_layout import alter_layout
    from .graph.quantize import qconfig, quantize_graph
    from .target import Target
    if data is None and n_images:
        if rng is None:
            import numpy as np
            rng = np.random.default_rng(0)
        inputs = [n for n in graph.topo_order() if graph.node(n).is_input]
        data = [{n: rng.standard_normal(tuple(graph.node(n).type.shape)).astype(graph.node(n).type.dtype)
                 for n in inputs} for _ in range(n_images)]
    target = Target(target) if target is not None else Target.current()
    recipe = int8_recipe(target)
    if first_conv is not None:
        recipe["skip_conv_layers"] = [] if first_conv else [0]
    if dense is not None:
        recipe["skip_dense_layer"] = not dense
    with qconfig(calibrate_mode="max" if data else "global_scale", **recipe):
        return alter_layout(quantize_graph(graph, data or None, progress=progress), target=target)


def int8_recipe(target) -> dict:
    """Which layers stay float, as ``qconfig`` settings, for ``target``.

    With int8 tensor cores, every conv and dense layer is int8: the first conv runs there with its
    kernel width folded into its channels, and a float first conv or classifier would cost more
    than all the int8 layers of a small model (a float 7x7 conv over 224 x 224 RGB images took a
    quarter of int8 ResNet-50's time at batch 16; VGG-19's float classifier, 40%). Elsewhere the
    usual recipe: the first conv (the most sensitive layer) and the dense layers stay float."""
    tensor_cores = target is not None and "mma_s8_m16n8k32" in target.features
    if tensor_cores:
        return {"skip_conv_layers": [], "skip_dense_layer": False}
    return {"skip_conv_layers": [0], "skip_dense_layer": True}


def is_quantized(graph) -> bool:
    """Whether ``graph`` already computes convs or dense layers in int8 (a pre-quantized model)."""
    return any(graph.node(n).is_op and graph.node(n).op in ("conv2d", "dense")
               and graph.input_types(n)[0].dtype in ("int8", "uint8") for n in graph.topo_order())
