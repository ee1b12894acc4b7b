"""The int8 tensor-core GEMM (``schedule_int8_gemm``, default configs) on the GPU at the seed
models' full layer sizes: bit-exact against numpy, and identical to the SIMT interpreter's
output on a small case. About a dozen layers of ResNet-50, VGG-19, Inception V3 and DRN-C-26 at
batch 1 and 16, and the 2048 -> 1000 classifier (the RGB stems' 3 channels padded to 32)."""
import os
import sys

import numpy as np
import pytest

import minitvm
from minitvm import nd, te
from minitvm.runtime import cuda
from minitvm.topi import testing
from minitvm.topi.cuda.gemm_int8_tensorcore import schedule_int8_gemm
from minitvm.topi.nn.conv2d_gemm import conv2d_NHWC_int8_gemm, dense_int8_gemm
from minitvm.topi.workloads import Conv, seed_model_convs

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

rng = np.random.default_rng(1414)

_LAYERS = {   # name -> batches
    "resnet50.conv1": (1,),
    "resnet50.layer1.0.conv2": (1,),
    "resnet50.layer2.0.downsample": (16,),
    "resnet50.layer3.0.conv2": (16,),
    "resnet50.layer4.0.conv3": (1, 16),
    "vgg19.conv2": (1,),
    "inception_v3.Conv2d_2a_3x3": (1,),
    "inception_v3.Mixed_6b.branch7x7_2": (1, 16),
    "inception_v3.Mixed_6b.branch7x7_3": (16,),
    "drn_c26.layer5.0.conv2": (1,),
    "drn_c26.layer6.0.conv1": (1,),
    "drn_c26.layer3.0.conv1": (16,),
}


def _layers():
    out = []
    for batch in (1, 16):
        for w in seed_model_convs(batch):
            if batch in _LAYERS.get(w.name, ()) and w.name not in {c.name for c in out if c.N == batch}:
                c = max(32, w.C)        # the stems' RGB channels, padded as the layout pads them
                out.append(Conv(w.name, w.N, c, w.H, w.W, w.O, w.K, w.stride, w.pad, w.dilation, 1, w.KW, w.pad_w))
    return out


LAYERS = _layers()


def _poison(shape, dtype):
    a = np.empty(shape, dtype)
    a.view(np.uint8).fill(0xA5)
    return a


def _conv_reference(w, x, k):
    """NHWC x OHWI as an im2col matrix product in float64 (exact: the sums stay far below 2**53)."""
    oh, ow = w.out_hw
    xp = np.pad(x.astype(np.float64), ((0, 0), (w.pad, w.pad), (w.pw, w.pw), (0, 0)))
    d, s = w.dilation, w.stride
    cols = [xp[:, i * d:i * d + s * (oh - 1) + 1:s, j * d:j * d + s * (ow - 1) + 1:s, :]
            for i in range(w.K) for j in range(w.kw)]
    a = np.concatenate(cols, axis=-1).reshape(w.N * oh * ow, -1)
    return (a @ k.reshape(w.O, -1).astype(np.float64).T).reshape(w.N, oh, ow, w.O).astype(np.int32)


def _conv(w, cfg=None):
    X = te.placeholder((w.N, w.H, w.W, w.C), "int8", "X")
    K = te.placeholder((w.O, w.K, w.kw, w.C), "int8", "K")
    Y = conv2d_NHWC_int8_gemm(X, K, w.stride, w.padding, w.dilation)
    return schedule_int8_gemm(Y, cfg=cfg or {}), [X, K, Y]


def _run_gpu(s, tensors, inputs):
    mod = minitvm.build(s, tensors, "cuda")
    assert "mma.sync" in mod.get_source()
    dev = nd.cuda(0)
    out = tensors[-1]
    got = nd.array(_poison([int(d.value) for d in out.shape], out.dtype), dev)
    mod(*[nd.array(a, dev) for a in inputs], got)
    cuda.synchronize(0)
    return got.numpy()


def test_the_reference_is_numpys_convolution():
    w = Conv("check", 2, 32, 9, 8, 16, 3, 2, 1, 2)
    x = rng.integers(-128, 128, (w.N, w.H, w.W, w.C), dtype=np.int8)
    k = rng.integers(-128, 128, (w.O, w.K, w.kw, w.C), dtype=np.int8)
    want = testing.conv2d_nchw(x.transpose(0, 3, 1, 2), k.transpose(0, 3, 1, 2), w.stride, w.padding, w.dilation)
    np.testing.assert_array_equal(_conv_reference(w, x, k), want.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("w", LAYERS, ids=lambda w: f"{w.name}-b{w.N}")
def test_full_size_layer_bit_exact_on_gpu(w):
    s, tensors = _conv(w)
    x = rng.integers(-128, 128, (w.N, w.H, w.W, w.C), dtype=np.int8)
    k = rng.integers(-128, 128, (w.O, w.K, w.kw, w.C), dtype=np.int8)
    np.testing.assert_array_equal(_run_gpu(s, tensors, [x, k]), _conv_reference(w, x, k))


@pytest.mark.parametrize("batch", [1, 16])
def test_classifier_2048_to_1000_bit_exact_on_gpu(batch):
    A = te.placeholder((batch, 2048), "int8", "A")
    B = te.placeholder((1000, 2048), "int8", "B")
    Y = dense_int8_gemm(A, B)
    a = rng.integers(-128, 128, (batch, 2048), dtype=np.int8)
    b = rng.integers(-128, 128, (1000, 2048), dtype=np.int8)
    np.testing.assert_array_equal(_run_gpu(schedule_int8_gemm(Y, cfg={}), [A, B, Y], [a, b]), testing.dense(a, b))


@pytest.mark.parametrize("knobs", [{}, {"tile_m": [1, 3, 16], "tile_n": [1, 1, 3], "stages": 4, "k_chunk": 1}],
                         ids=["default", "odd_warps_4_stages"])
def test_gpu_equals_the_interpreter(knobs):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
    import kernel_interp
    w = Conv("small", 1, 64, 6, 6, 24, 1)       # 36 rows (48 padded), 3 column tiles, two k-slices
    s, tensors = _conv(w, knobs)
    x = rng.integers(-128, 128, (w.N, w.H, w.W, w.C), dtype=np.int8)
    k = rng.integers(-128, 128, (w.O, w.K, w.kw, w.C), dtype=np.int8)
    interp = _poison((w.N, 6, 6, w.O), np.int32)
    kernel_interp.run_func(minitvm.lower(s, tensors), [x, k, interp])
    gpu = _run_gpu(s, tensors, [x, k])
    np.testing.assert_array_equal(gpu, interp)
    np.testing.assert_array_equal(gpu, _conv_reference(w, x, k))
