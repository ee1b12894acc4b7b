"""ONNX importer: ``from_onnx(model) -> (Graph, params)``.

Covers what ``torch.onnx.export`` emits for torchvision classification models at opsets 13-20
(and the older spellings of the same ops): Conv, Gemm, MatMul, Add/Sub/Mul, Div by a constant,
Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, BatchNormalization, MaxPool, AveragePool,
GlobalAveragePool, GlobalMaxPool, ReduceMean/ReduceMax over the spatial axes, Flatten, Reshape,
Transpose, Concat, Softmax, Pad, Identity, Dropout, Constant, plus the shape-computation ops
(Shape, Gather, Unsqueeze, Squeeze, Concat, ConstantOfShape, Slice, Cast, Range, Expand,
arithmetic and comparisons ...) which are folded to constants at import: every tensor has a
static shape here, so ``Shape`` of anything is a constant.

Initializers become graph constants (named as in the model). Graph nodes are named after the
ONNX node (``node.name``, or its output when it has none; graph outputs keep their ONNX name).
An op, attribute or input this importer cannot express raises ``GraphError`` naming the ONNX
node, its op type and the attribute.
"""
from .load import from_onnx, supported_ops

__all__ = ["from_onnx", "supported_ops"]
