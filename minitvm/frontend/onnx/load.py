"""``from_onnx``: load a model, import it with every converter table merged."""
from __future__ import annotations

import os

from ...errors import GraphError
from . import float_ops, math_ops, nn_ops, quant, resize, shape_ops
from .fold import MAX_FOLD_BYTES
from .importer import Importer
from .registry import ConverterTable
from .validate import check_model

__all__ = ["from_onnx", "supported_ops", "CONVERTERS"]

#: every converter; the quantized ones replace (and wrap) the float Conv, Gemm, MatMul and pass-through ops
CONVERTERS = ConverterTable.merged(float_ops.CONVERTERS, math_ops.CONVERTERS, nn_ops.CONVERTERS, resize.CONVERTERS,
                                   shape_ops.CONVERTERS, quant.CONVERTERS)


def supported_ops() -> list[str]:
    """ONNX op types the importer understands (some only on constant inputs)."""
    return CONVERTERS.supported_ops()


def _load(model_or_path):
    import onnx
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    from google.protobuf.message import DecodeError
    if isinstance(model_or_path, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(model_or_path))
        except DecodeError as exc:
            raise GraphError(f"from_onnx: the bytes given are not an ONNX model ({exc})") from None
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not os.path.exists(path):
            raise GraphError(f"from_onnx: no such file {path!r}")
        if os.path.isdir(path):
            raise GraphError(f"from_onnx: {path!r} is a directory, not an ONNX model file")
        try:
            return onnx.load(path)
        except DecodeError as exc:
            raise GraphError(f"from_onnx: {path!r} is not an ONNX model (truncated or another format: {exc})") \
                from None
    raise GraphError(f"from_onnx: expected an onnx.ModelProto, bytes or a path, got {type(model_or_path).__name__}")


def from_onnx(model_or_path, shape=None, constants=None, max_fold_bytes=MAX_FOLD_BYTES):
    """Import an ONNX model; returns ``(graph, params)``.

    ``model_or_path`` is an ``onnx.ModelProto``, serialized bytes or a file path. ``shape``
    fixes input shapes: a dict ``{input name: shape}`` or, for a one-input model, a shape;
    it is required when the model has dynamic dimensions (e.g. a symbolic batch).
    ``constants`` fixes model inputs to values (``{input name: array}``): they become
    constants and fold, e.g. a shape or a scale given as an input. ``max_fold_bytes`` bounds
    each tensor folded at import. ``params`` maps the graph's constant names to their arrays
    (the graph holds the same arrays). The model is checked first (``onnx.checker``'s full
    check, the opset range, one writer per value): an invalid one is a ``GraphError``.
    """
    try:
        import onnx  # noqa: F401
    except ImportError:  # pragma: no cover
        raise GraphError("from_onnx needs the onnx package: pip install 'minitvm[onnx]'") from None
    model = _load(model_or_path)
    opset = None
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = imp.version
    if opset is None:
        raise GraphError("from_onnx: the model imports no default-domain (ai.onnx) opset")
    check_model(model, opset)
    g = Importer(model, shape, opset, CONVERTERS, constants, max_fold_bytes).run()
    return g, g.params()
