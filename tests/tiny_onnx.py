"""A small ONNX CNN for the command-line and compile tests: two 3x3 convs (the second one is
quantized in int8: the first stays float), global pooling and a classifier, built with
``onnx.helper`` at any (possibly symbolic) input shape."""
import numpy as np


def tiny_cnn(path, dims=("N", 3, 8, 8), seed=0, input_name="x"):
    """Write the CNN to ``path`` with input ``input_name`` of ``dims`` (ints, or strings for
    dynamic dimensions); its output is ``y`` [N, 5]. Returns ``path``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(seed)
    weights = {"w1": rng.standard_normal((4, 3, 3, 3)) * 0.3, "b1": rng.standard_normal(4) * 0.1,
               "w2": rng.standard_normal((4, 4, 3, 3)) * 0.3, "b2": rng.standard_normal(4) * 0.1,
               "fc": rng.standard_normal((5, 4)), "fcb": rng.standard_normal(5) * 0.1}
    nodes = [helper.make_node("Conv", [input_name, "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    batch = dims[0]
    graph = helper.make_graph(
        nodes, "tiny_cnn", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 13)]), path)
    return str(path)


def onnxruntime_outputs(path, feed: dict) -> list:
    """The model's outputs from onnxruntime (the reference)."""
    import onnxruntime as ort
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
