"""Model importers: ``from_onnx`` turns an ONNX model into a :class:`minitvm.graph.Graph`."""
from .onnx import from_onnx  # noqa: F401

__all__ = ["from_onnx"]
