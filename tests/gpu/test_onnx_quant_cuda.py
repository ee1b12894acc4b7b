"""Pre-quantized ONNX models with asymmetric / uint8 activations on the GPU: the CPU's bits."""
import os
import sys

import numpy as np
import pytest

from minitvm.runtime import cuda

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

pytest.importorskip("onnxruntime")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "frontend"))
import test_onnx_quant as Q  # noqa: E402

from minitvm.frontend import from_onnx  # noqa: E402
from minitvm.graph.build import build  # noqa: E402
from minitvm.graph.passes.alter_layout import alter_layout  # noqa: E402


@pytest.mark.parametrize("packed", [False, True], ids=["nchw", "nchw4c"])
@pytest.mark.parametrize("fmt,mode", [("QDQ", "default"), ("QDQ", "uint8"), ("QOperator", "uint8")])
def test_asymmetric_cnn_gpu_equals_cpu(tmp_path, fmt, mode, packed):
    model, shape = Q._quantize(tmp_path, Q._cnn, fmt, True, mode, seed=23)
    graph, _ = from_onnx(model)
    if packed:
        graph = alter_layout(graph)
    gpu, cpu = build(graph, "cuda"), build(graph, "llvm")
    if packed:
        assert "__dp4a" in gpu.module.get_source()
    for x in Q._inputs(shape, 33, n=2):
        np.testing.assert_array_equal(gpu.run({"x": x})[0], cpu.run({"x": x})[0])
