"""Guarded reads on the CPU: an unrolled row of ``select(index in range, clamp(X[index]), 0)``
whose indices may be negative (the width fold of a strided first conv, fused with the quantize
of the image) keeps every guard. LLVM 20's SLP vectorizer merged such rows into vector compares
that lost some of them, so minitvm builds with it off."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.graph.ops.layout import fold_kernel_width_np
from minitvm.topi.nn.conv2d_gemm import fold_kernel_width
from minitvm.topi.nn.layout import layout_transform
from minitvm.topi.nn.qnn import quantize
from minitvm.topi.cpu.injective import schedule_injective


@pytest.mark.parametrize("stride", [1, 2])
def test_quantized_image_folded_over_a_strided_kernel_width_keeps_its_zero_padding(stride):
    rng = np.random.default_rng(0)
    X = te.placeholder((2, 3, 6, 10), "float32", "X")
    F = fold_kernel_width(layout_transform(quantize(X, 0.05), "NCHW", "NHWC"), 7, stride, 1, 3, 3)
    f = minitvm.build(schedule_injective(F), [X, F], "llvm")
    x = rng.standard_normal((2, 3, 6, 10)).astype("float32")
    out = np.full(tuple(int(d.value) for d in F.shape), 99, np.int8)
    f(x, out)
    q = np.clip(np.rint(x / np.float32(0.05)), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(out, fold_kernel_width_np(q.transpose(0, 2, 3, 1), 7, stride, 1, 3, 3))
