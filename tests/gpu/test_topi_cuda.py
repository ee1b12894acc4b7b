"""CUDA operator templates on the GPU: GEMM schedules and int8 conv2d with dp4a, vs numpy."""
import numpy as np
import pytest

import minitvm
from minitvm import nd, te
from minitvm.runtime import cuda
from minitvm.topi import testing
from minitvm.topi.cuda.conv2d_int8 import schedule_conv2d_NCHWc_int8
from minitvm.topi.cuda.matmul import schedule_matmul, schedule_matmul_naive, schedule_matmul_vthread
from minitvm.topi.nn import matmul
from minitvm.topi.nn.conv2d import conv2d_NCHWc_int8
from minitvm.topi.nn.elemwise import quantize_multiplier, relu, requantize
from minitvm.topi.workloads import Conv, seed_model_convs, unique

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

rng = np.random.default_rng(5)


@pytest.mark.parametrize("sched", [
    schedule_matmul_naive,
    lambda C: schedule_matmul(C, block=32, thread_tile=4),
    lambda C: schedule_matmul(C, block=64, thread_tile=4, double_buffer=True),
    lambda C: schedule_matmul_vthread(C, double_buffer=False),
    lambda C: schedule_matmul_vthread(C, double_buffer=True),
], ids=["naive", "shared", "shared_db", "vthread", "vthread_db"])
@pytest.mark.parametrize("n", [256, 512])
def test_gemm_schedules(sched, n):
    A = te.placeholder((n, n), "float32", "A")
    B = te.placeholder((n, n), "float32", "B")
    C = matmul(A, B)
    mod = minitvm.build(sched(C), [A, B, C], "cuda")
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    tc = nd.array(np.full((n, n), np.nan, np.float32), nd.cuda())
    mod(nd.array(a, nd.cuda()), nd.array(b, nd.cuda()), tc)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    assert np.linalg.norm(tc.numpy() - ref) / np.linalg.norm(ref) < 1e-5


WORKLOADS = [
    Conv("rgb_b3", 3, 3, 23, 23, 16, 7, 2, 3),
    Conv("s2d2", 2, 16, 13, 13, 16, 3, 2, 2, 2),
    Conv("grouped32", 1, 128, 14, 14, 128, 3, 1, 1, 1, 32),
    Conv("b16_1x1", 16, 64, 14, 14, 64, 1),
]


SEED = [w for w, _ in unique(seed_model_convs(1) + seed_model_convs(16))]


@pytest.mark.parametrize("w", WORKLOADS + SEED, ids=lambda w: f"{w.name}.b{w.N}")
def test_conv2d_int8_dp4a_bit_exact(w):
    """Odd shapes, and every distinct conv of the seed models at batch 1 and 16."""
    data_shape, kernel_shape = w.packed_shapes()
    X = te.placeholder(data_shape, "int8", "X")
    K = te.placeholder(kernel_shape, "int8", "K")
    C = data_shape[1] * 4
    Y = conv2d_NCHWc_int8(X, K, w.stride, w.padding, w.dilation, w.groups)
    mod = minitvm.build(schedule_conv2d_NCHWc_int8(Y), [X, K, Y], "cuda")
    assert "__dp4a" in mod.get_source()
    x = rng.integers(-128, 128, (w.N, C, w.H, w.W), dtype=np.int8)
    k = rng.integers(-128, 128, (w.O, C // w.groups, w.K, w.kw), dtype=np.int8)
    ty = nd.array(np.full([int(d.value) for d in Y.shape], -7, np.int32), nd.cuda())
    mod(nd.array(testing.pack_nchwc(x), nd.cuda()), nd.array(testing.pack_oihw(k), nd.cuda()), ty)
    ref = _reference(x, k, w)
    np.testing.assert_array_equal(testing.unpack_nchwc(ty.numpy()), ref)


def _reference(x, k, w):
    """Exact reference: torch's float64 convolution on the GPU when available (fast), else numpy."""
    try:
        import torch
    except ImportError:
        return testing.conv2d_nchw(x, k, w.stride, w.padding, w.dilation, w.groups)
    out = torch.nn.functional.conv2d(torch.from_numpy(x).cuda().double(), torch.from_numpy(k).cuda().double(),
                                     stride=w.stride, padding=(w.pad, w.pw), dilation=w.dilation, groups=w.groups)
    return out.cpu().numpy().astype(np.int64)


def test_conv2d_int8_requantize_relu_epilogue_matches_cpu():
    w = Conv("epi", 2, 32, 14, 14, 32, 3, 1, 1)
    X = te.placeholder((w.N, w.C // 4, w.H, w.W, 4), "int8", "X")
    K = te.placeholder((w.O // 4, w.C // 4, 3, 3, 4, 4), "int8", "K")
    m, sh = quantize_multiplier(0.0017)
    out = relu(requantize(conv2d_NCHWc_int8(X, K, 1, 1), m, sh))
    mod = minitvm.build(schedule_conv2d_NCHWc_int8(out), [X, K, out], "cuda")
    x = rng.integers(-128, 128, (w.N, w.C, w.H, w.W), dtype=np.int8)
    k = rng.integers(-128, 128, (w.O, w.C, 3, 3), dtype=np.int8)
    to = nd.array(np.full([int(d.value) for d in out.shape], 99, np.int8), nd.cuda())
    mod(nd.array(testing.pack_nchwc(x), nd.cuda()), nd.array(testing.pack_oihw(k), nd.cuda()), to)
    ref = np.maximum(testing.requantize(testing.conv2d_nchw(x, k, 1, 1), m, sh), 0)
    np.testing.assert_array_equal(testing.unpack_nchwc(to.numpy()), ref)


def test_conv2d_int8_per_channel_requantize_epilogue_stores_char4_and_matches_numpy():
    from minitvm.graph.quantize import multiplier_shift, requantize_per_channel_np
    from minitvm.topi.nn.qnn import requantize_per_channel
    N, C, H, O = 2, 16, 14, 32
    X = te.placeholder((N, C // 4, H, H, 4), "int8", "X")
    K = te.placeholder((O // 4, C // 4, 1, 1, 4, 4), "int8", "K")
    M = te.placeholder((O,), "int32", "M")
    S = te.placeholder((O,), "int32", "S")
    out = relu(requantize_per_channel(conv2d_NCHWc_int8(X, K, 1, 0), M, S, packed=True))
    mod = minitvm.build(schedule_conv2d_NCHWc_int8(out), [X, K, M, S, out], "cuda")
    assert "*(char4*)(relu" in mod.get_source()          # one store per thread and channel block
    x = rng.integers(-128, 128, (N, C, H, H), dtype=np.int8)
    k = rng.integers(-128, 128, (O, C, 1, 1), dtype=np.int8)
    ms = np.array([multiplier_shift(float(v)) for v in rng.uniform(1e-4, 0.02, O)], np.int32)
    to = nd.array(np.full([int(d.value) for d in out.shape], 99, np.int8), nd.cuda())
    mod(nd.array(testing.pack_nchwc(x), nd.cuda()), nd.array(testing.pack_oihw(k), nd.cuda()),
        nd.array(ms[:, 0].copy(), nd.cuda()), nd.array(ms[:, 1].copy(), nd.cuda()), to)
    ref = np.maximum(requantize_per_channel_np(testing.conv2d_nchw(x, k), ms[:, 0], ms[:, 1]), 0)
    np.testing.assert_array_equal(testing.unpack_nchwc(to.numpy()), ref)


@pytest.mark.parametrize("M,N,K,dtype", [(16, 1000, 2048, "int8"), (1, 1000, 2048, "int8"), (3, 40, 12, "int8"),
                                         (16, 1000, 2048, "float32"), (5, 24, 40, "float32")])
def test_dense(M, N, K, dtype):
    from minitvm.topi.cuda.dense import schedule_dense
    from minitvm.topi.nn.dense import dense, dense_int8
    A = te.placeholder((M, K), dtype, "A")
    W = te.placeholder((N, K), dtype, "W")
    C = dense_int8(A, W) if dtype == "int8" else dense(A, W)
    mod = minitvm.build(schedule_dense(C), [A, W, C], "cuda")
    if dtype == "int8":
        a = rng.integers(-128, 128, (M, K), dtype=np.int8)
        w = rng.integers(-128, 128, (N, K), dtype=np.int8)
    else:
        a = rng.standard_normal((M, K)).astype(dtype)
        w = rng.standard_normal((N, K)).astype(dtype)
    tc = nd.array(np.full((M, N), -3, C.dtype), nd.cuda())
    mod(nd.array(a, nd.cuda()), nd.array(w, nd.cuda()), tc)
    ref = a.astype(np.int64 if dtype == "int8" else np.float64) @ w.astype(np.int64 if dtype == "int8" else np.float64).T
    if dtype == "int8":
        assert "__dp4a" in mod.get_source()
        np.testing.assert_array_equal(tc.numpy(), ref)
    else:
        np.testing.assert_allclose(tc.numpy(), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("w", [Conv("stem", 2, 3, 32, 32, 16, 7, 2, 3), Conv("3x3", 1, 32, 14, 14, 64, 3, 1, 1),
                               Conv("1x1s2", 4, 64, 14, 14, 32, 1, 2), Conv("dil", 1, 16, 17, 17, 16, 3, 1, 2, 2),
                               Conv("grp", 1, 32, 8, 8, 64, 3, 1, 1, 1, 4)], ids=lambda w: w.name)
def test_conv2d_nchw_float32_with_relu(w):
    from minitvm.topi.cuda.conv2d import schedule_conv2d_nchw
    from minitvm.topi.nn.conv2d import conv2d_nchw
    X = te.placeholder((w.N, w.C, w.H, w.W), "float32", "X")
    K = te.placeholder((w.O, w.C // w.groups, w.K, w.K), "float32", "K")
    out = relu(conv2d_nchw(X, K, w.stride, w.pad, w.dilation, w.groups))
    mod = minitvm.build(schedule_conv2d_nchw(out), [X, K, out], "cuda")
    x = rng.standard_normal((w.N, w.C, w.H, w.W)).astype("float32")
    k = rng.standard_normal((w.O, w.C // w.groups, w.K, w.K)).astype("float32")
    to = nd.array(np.full([int(d.value) for d in out.shape], np.nan, np.float32), nd.cuda())
    mod(nd.array(x, nd.cuda()), nd.array(k, nd.cuda()), to)
    ref = np.maximum(testing.conv2d_nchw(x, k, w.stride, w.pad, w.dilation, w.groups, acc_dtype=np.float64), 0)
    np.testing.assert_allclose(to.numpy(), ref, rtol=1e-4, atol=1e-3)
