"""Generic CUDA operator schedules on the GPU vs numpy: injective ops (broadcast, layout, pad,
concat, ...), pooling, global pooling, softmax and deformable convolution."""
import numpy as np
import pytest

import minitvm
from minitvm import nd, te
from minitvm.runtime import cuda
from minitvm.topi import testing
from minitvm.topi.cuda.deformable_conv2d import schedule_deformable_conv2d_nchw
from minitvm.topi.cuda.injective import schedule_injective
from minitvm.topi.cuda.reduction import schedule_global_pool, schedule_pool, schedule_softmax
from minitvm.topi.nn import injective as inj
from minitvm.topi.nn.conv2d import pad
from minitvm.topi.nn.deformable_conv2d import deformable_conv2d_nchw
from minitvm.topi.nn.elemwise import quantize_multiplier, relu, requantize
from minitvm.topi.nn.layout import layout_transform
from minitvm.topi.nn.pooling import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d
from minitvm.topi.nn.softmax import log_softmax, softmax

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(cuda.device_count() == 0, reason="no CUDA device")]

rng = np.random.default_rng(17)


def _shape(t):
    return tuple(int(d.value) for d in t.shape)


def _rand(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 3).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape, dtype=dtype)


def _run(s, inputs, outs, arrays):
    """Build for the GPU, run on poisoned outputs, return them as numpy arrays."""
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    mod = minitvm.build(s, list(inputs) + list(outs), "cuda")
    dev = nd.cuda()
    res = [nd.array(np.full(_shape(o), np.nan if np.dtype(o.dtype).kind == "f" else 77, o.dtype), dev)
           for o in outs]
    mod(*[nd.array(a, dev) for a in arrays], *res)
    got = [r.numpy() for r in res]
    return got[0] if len(got) == 1 else got


def _check(got, ref):
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, ref)


# ------------------------------------------------------------------------------------------
# injective
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb,dtype", [((16, 64, 56, 56), (64, 1, 1), "float32"),
                                         ((2, 3, 4, 5), (3, 1, 5), "float32"), ((7, 1), (1, 9), "int8"),
                                         ((1000,), (3, 1000), "int8"), ((2, 8, 7, 7, 4), (8, 1, 1, 4), "int32")])
def test_broadcast_binary(sa, sb, dtype):
    A = te.placeholder(sa, dtype, "A")
    B = te.placeholder(sb, dtype, "B")
    a, b = _rand(sa, dtype), _rand(sb, dtype)
    outs = [inj.add(A, B), inj.subtract(A, B), inj.multiply(A, B), inj.maximum(A, B), inj.minimum(A, B)]
    got = _run(schedule_injective(outs), [A, B], outs, [a, b])
    with np.errstate(over="ignore"):
        refs = [a + b, a - b, a * b, np.maximum(a, b), np.minimum(a, b)]
    for g, r in zip(got, refs):
        _check(g, r.astype(dtype))


def test_elementwise_chain_is_one_kernel():
    X = te.placeholder((4, 33, 17), "float32", "X")
    x = _rand((4, 33, 17), "float32")
    Y = inj.cast(inj.clip(inj.multiply(relu(X), 3.0), -2, 20), "int8")
    s = schedule_injective(Y)
    assert minitvm.build(s, [X, Y], "cuda").get_source().count("__global__") == 1
    _check(_run(s, [X], Y, [x]), np.trunc(np.clip(np.maximum(x, 0) * 3, -2, 20)).astype(np.int8))


@pytest.mark.parametrize("C,factor", [(3, 4), (64, 4), (30, 16)])
def test_layout_transform_and_pad(C, factor):
    X = te.placeholder((2, C, 19, 21), "int8", "X")
    P = layout_transform(X, "NCHW", f"NCHW{factor}c")
    Q = pad(P, (0, 0, 3, 2, 0), (0, 0, 1, 3, 0))
    U = layout_transform(P, f"NCHW{factor}c", "NCHW", {"C": C})
    x = _rand((2, C, 19, 21), "int8")
    p, q, u = _run(schedule_injective([P, Q, U]), [X], [P, Q, U], [x])
    _check(p, testing.pack_nchwc(x, factor))
    _check(q, np.pad(testing.pack_nchwc(x, factor), ((0, 0), (0, 0), (3, 1), (2, 3), (0, 0))))
    _check(u, x)


def test_shape_ops():
    X = te.placeholder((2, 6, 5, 8), "float32", "X")
    Y = te.placeholder((2, 3, 5, 8), "float32", "Y")
    x, y = _rand((2, 6, 5, 8), "float32"), _rand((2, 3, 5, 8), "float32")
    outs = [inj.concatenate([X, Y, X], 1), inj.concatenate([X, X], -1), inj.transpose(X, (0, 2, 3, 1)),
            inj.reshape(X, (12, -1)), inj.flatten(Y), inj.strided_slice(X, (1, -1), (5, 0), (2, -3), (1, 3))]
    got = _run(schedule_injective(outs), [X, Y], outs, [x, y])
    refs = [np.concatenate([x, y, x], 1), np.concatenate([x, x], -1), x.transpose(0, 2, 3, 1), x.reshape(12, -1),
            y.reshape(2, -1), x[:, 1:5:2, :, -1:0:-3]]
    for g, r in zip(got, refs):
        _check(g, r)


def test_per_channel_affine():
    X = te.placeholder((2, 16, 9, 9), "float32", "X")
    P = [te.placeholder((16,), "float32", n) for n in ("g", "b", "m", "v")]
    x = _rand((2, 16, 9, 9), "float32")
    g, b, m = (_rand((16,), "float32") for _ in range(3))
    v = rng.random(16).astype("float32") + 0.5
    outs = [inj.batch_norm_inference(X, *P, eps=1e-5), inj.bias_add(X, P[1]), inj.scale_shift(X, P[0], P[1])]
    got = _run(schedule_injective(outs), [X] + P, outs, [x, g, b, m, v])
    c = (slice(None), None, None)
    np.testing.assert_allclose(got[0], (x - m[c]) / np.sqrt(v[c] + 1e-5) * g[c] + b[c], rtol=1e-5, atol=1e-5)
    _check(got[1], x + b[c])
    np.testing.assert_allclose(got[2], x * g[c] + b[c], rtol=1e-6, atol=1e-5)


# ------------------------------------------------------------------------------------------
# pooling
# ------------------------------------------------------------------------------------------
POOLS = [  # (N, C, H, W, pool, stride, padding, ceil_mode, count_include_pad)
    (16, 64, 112, 112, 3, 2, 1, False, True),     # ResNet stem at batch 16
    (1, 64, 147, 147, 3, 2, 0, False, True),      # Inception V3
    (2, 32, 35, 35, 3, 1, 1, False, False),       # Inception avg pool branch
    (2, 16, 14, 14, 2, 2, 0, False, True),        # VGG
    (3, 8, 13, 11, (3, 2), (2, 3), (1, 0, 2, 1), True, True),
    (1, 4, 7, 7, 3, 2, 1, True, False),
]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("case", POOLS, ids=lambda c: "x".join(map(str, c[:4])) + ("_ceil" if c[7] else ""))
def test_pools(case, dtype):
    N, C, H, W, k, st, p, ceil, cip = case
    X = te.placeholder((N, C, H, W), dtype, "X")
    x = _rand((N, C, H, W), dtype)
    for kind in ("max", "avg"):
        Y = max_pool2d(X, k, st, p, ceil) if kind == "max" else avg_pool2d(X, k, st, p, ceil, cip)
        _check(_run(schedule_pool(Y), [X], Y, [x]), testing.pool2d_nchw(x, kind, k, st, p, ceil, cip))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_pools_nchwc_with_epilogue(dtype):
    X = te.placeholder((2, 16, 28, 28, 4), dtype, "X")
    x = _rand((2, 64, 28, 28), dtype)
    Y = relu(max_pool2d(X, 3, 2, 1, layout="NCHW4c"))
    _check(testing.unpack_nchwc(_run(schedule_pool(Y), [X], Y, [testing.pack_nchwc(x)])),
           np.maximum(testing.pool2d_nchw(x, "max", 3, 2, 1), 0).astype(dtype))
    Y = avg_pool2d(X, 3, 1, 1, False, False, layout="NCHW4c")
    _check(testing.unpack_nchwc(_run(schedule_pool(Y), [X], Y, [testing.pack_nchwc(x)])),
           testing.pool2d_nchw(x, "avg", 3, 1, 1, False, False))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("layout", ["NCHW", "NCHW4c"])
def test_global_pools(dtype, layout):
    x = _rand((16, 2048, 7, 7), dtype)
    xin = x if layout == "NCHW" else testing.pack_nchwc(x)
    X = te.placeholder(xin.shape, dtype, "X")
    for kind, Y in (("max", global_max_pool2d(X, layout)), ("avg", global_avg_pool2d(X, layout))):
        y = _run(schedule_global_pool(Y), [X], Y, [xin])
        y = y if layout == "NCHW" else testing.unpack_nchwc(y)
        ref = testing.global_pool2d_nchw(x, kind)
        if dtype == "float32":
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(y, ref)


def test_global_avg_pool_int8_requantized_epilogue():
    X = te.placeholder((4, 512, 7, 7), "int8", "X")
    x = _rand((4, 512, 7, 7), "int8")
    m, sh = quantize_multiplier(0.5)
    Y = requantize(inj.cast(global_avg_pool2d(X), "int32"), m, sh)
    ref = testing.requantize(testing.global_pool2d_nchw(x, "avg").astype(np.int32), m, sh)
    _check(_run(schedule_global_pool(Y), [X], Y, [x]), ref)


# ------------------------------------------------------------------------------------------
# softmax
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,axis", [((16, 1000), -1), ((1, 1000), -1), ((4, 21, 9, 9), 1), ((300,), 0)])
def test_softmax(shape, axis):
    X = te.placeholder(shape, "float32", "X")
    x = _rand(shape, "float32") * 4
    for fn, ref in ((softmax, testing.softmax), (log_softmax, testing.log_softmax)):
        Y = fn(X, axis)
        np.testing.assert_allclose(_run(schedule_softmax(Y), [X], Y, [x]), ref(x, axis), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# deformable convolution
# ------------------------------------------------------------------------------------------
DCN = [  # (N, C, H, W, O, K, stride, pad, dilation, deformable_groups, groups)
    (1, 512, 7, 7, 512, 3, 1, 1, 1, 1, 1),         # DCN-ResNet-101 res5 3x3
    (2, 256, 14, 14, 256, 3, 1, 1, 1, 4, 1),
    (2, 64, 28, 28, 128, 3, 2, 1, 1, 1, 1),
    (1, 32, 17, 15, 16, 3, 1, 2, 2, 2, 2),
]


def _torchvision(x, off, w, st, p, d):
    try:
        import torch
        from torchvision.ops import deform_conv2d
    except ImportError:
        return None
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return deform_conv2d(torch.from_numpy(x).to(dev).double(), torch.from_numpy(off).to(dev).double(),
                         torch.from_numpy(w).to(dev).double(), stride=st, padding=p, dilation=d).cpu().numpy()


@pytest.mark.parametrize("case", DCN, ids=lambda c: "_".join(map(str, c)))
def test_deformable_conv2d(case):
    N, C, H, W, O, K, st, p, d, dg, g = case
    OH = (H + 2 * p - d * (K - 1) - 1) // st + 1
    OW = (W + 2 * p - d * (K - 1) - 1) // st + 1
    X = te.placeholder((N, C, H, W), "float32", "X")
    Off = te.placeholder((N, 2 * dg * K * K, OH, OW), "float32", "Off")
    Wt = te.placeholder((O, C // g, K, K), "float32", "Wt")
    B = te.placeholder((O,), "float32", "B")
    Y = relu(inj.bias_add(deformable_conv2d_nchw(X, Off, Wt, st, p, d, dg, g), B))
    x = rng.standard_normal((N, C, H, W)).astype("float32")
    off = (rng.standard_normal((N, 2 * dg * K * K, OH, OW)) * 2).astype("float32")
    w = (rng.standard_normal((O, C // g, K, K)) / np.sqrt(C * K * K)).astype("float32")
    b = rng.standard_normal(O).astype("float32")
    y = _run(schedule_deformable_conv2d_nchw(Y), [X, Off, Wt, B], Y, [x, off, w, b])
    conv = _torchvision(x, off, w, st, p, d) if g == 1 else None
    if conv is None:
        conv = testing.deformable_conv2d_nchw(x, off, w, st, p, d, dg, g)
    else:   # torchvision is there: the numpy reference must agree with it too
        np.testing.assert_allclose(testing.deformable_conv2d_nchw(x, off, w, st, p, d, dg, g), conv,
                                   rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(y, np.maximum(conv + b[:, None, None], 0), rtol=1e-4, atol=1e-4)
