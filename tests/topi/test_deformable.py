"""Deformable convolution (DCN v1) vs the numpy reference (torchvision's semantics), its CPU
schedule, and the CUDA schedule compiling with NVRTC."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import DtypeError, ShapeError
from minitvm.topi import testing
from minitvm.topi.cpu.conv2d import schedule_deformable_conv2d_nchw as cpu_schedule
from minitvm.topi.nn.deformable_conv2d import deformable_conv2d_nchw
from minitvm.topi.nn.elemwise import relu
from minitvm.topi.nn.injective import bias_add

rng = np.random.default_rng(7)

CASES = [  # (N, C, H, W, O, K, stride, pad, dilation, deformable_groups, groups)
    (1, 4, 7, 8, 6, 3, 1, 1, 1, 1, 1),
    (2, 8, 9, 9, 8, 3, 2, 1, 1, 2, 1),
    (1, 8, 8, 7, 4, 3, 1, 2, 2, 1, 2),
    (1, 6, 6, 6, 6, 1, 1, 0, 1, 3, 3),
    (1, 4, 5, 9, 8, (3, 2), (2, 1), (1, 0), 1, 4, 1),
]


def _ints(v):
    return (v, v) if isinstance(v, int) else v


def _make(case):
    N, C, H, W, O, K, st, p, d, dg, g = case
    kh, kw = _ints(K)
    sh, sw = _ints(st)
    ph, pw = _ints(p)
    OH = (H + 2 * ph - d * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - d * (kw - 1) - 1) // sw + 1
    X = te.placeholder((N, C, H, W), "float32", "X")
    Off = te.placeholder((N, 2 * dg * kh * kw, OH, OW), "float32", "Off")
    Wt = te.placeholder((O, C // g, kh, kw), "float32", "Wt")
    Y = deformable_conv2d_nchw(X, Off, Wt, st, p, d, dg, g)
    return (X, Off, Wt), Y, (N, C, H, W), (N, 2 * dg * kh * kw, OH, OW), (O, C // g, kh, kw)


def _run(s, args, arrays, out):
    f = minitvm.build(s, args, "llvm")
    y = np.full([int(v.value) for v in out.shape], np.nan, "float32")
    f(*arrays, y)
    return y


def _torchvision_reference(x, off, w, st, p, d):
    try:
        import torch
        from torchvision.ops import deform_conv2d
    except ImportError:
        return None
    return deform_conv2d(torch.from_numpy(x).double(), torch.from_numpy(off).double(), torch.from_numpy(w).double(),
                         stride=st, padding=p, dilation=d).numpy()


@pytest.mark.parametrize("case", CASES, ids=lambda c: "_".join(str(v) for v in c))
def test_deformable_conv2d_matches_reference(case):
    (X, Off, Wt), Y, xs, offs, ws = _make(case)
    _, _, _, _, _, _, st, p, d, dg, g = case
    x = rng.standard_normal(xs).astype("float32")
    off = (rng.standard_normal(offs) * 2.5).astype("float32")     # many samples land outside the image
    w = rng.standard_normal(ws).astype("float32")
    ref = testing.deformable_conv2d_nchw(x, off, w, st, p, d, dg, g)
    tv = _torchvision_reference(x, off, w, st, p, d) if g == 1 else None
    if tv is not None:
        np.testing.assert_allclose(ref, tv, rtol=1e-9, atol=1e-9)
    y = _run(te.create_schedule(Y.op), [X, Off, Wt, Y], [x, off, w], Y)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    y = _run(cpu_schedule(Y), [X, Off, Wt, Y], [x, off, w], Y)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_zero_offsets_is_a_plain_convolution():
    (X, Off, Wt), Y, xs, offs, ws = _make((1, 4, 7, 7, 8, 3, 2, 1, 1, 1, 1))
    x = rng.standard_normal(xs).astype("float32")
    w = rng.standard_normal(ws).astype("float32")
    y = _run(cpu_schedule(Y), [X, Off, Wt, Y], [x, np.zeros(offs, "float32"), w], Y)
    np.testing.assert_allclose(y, testing.conv2d_nchw(x, w, 2, 1, acc_dtype=np.float64), rtol=1e-4, atol=1e-4)


def test_bilinear_sampling_rules():
    """1x1 kernel, one channel: each output samples the image at (y + dy, x + dx)."""
    X = te.placeholder((1, 1, 2, 3), "float32", "X")
    Off = te.placeholder((1, 2, 2, 3), "float32", "Off")
    Wt = te.placeholder((1, 1, 1, 1), "float32", "Wt")
    Y = deformable_conv2d_nchw(X, Off, Wt)
    x = np.arange(1, 7, dtype="float32").reshape(1, 1, 2, 3)          # [[1 2 3] [4 5 6]]
    off = np.zeros((1, 2, 2, 3), "float32")
    off[0, :, 0, 0] = (0.5, 0.5)     # centre of 1 2 4 5 -> 3
    off[0, :, 0, 1] = (-0.5, 0.0)    # half outside above 2 -> 1
    off[0, :, 0, 2] = (0.0, 1.0)     # x = 3 == W: outside -> 0
    off[0, :, 1, 0] = (-1.0, 0.0)    # y = 0 exactly -> 1
    off[0, :, 1, 1] = (0.99, 0.0)    # y = 1.99: 0.01 * 5 -> 0.05
    off[0, :, 1, 2] = (-2.0, 0.0)    # y = -1: outside -> 0
    y = _run(te.create_schedule(Y.op), [X, Off, Wt, Y], [x, off, np.ones((1, 1, 1, 1), "float32")], Y)
    np.testing.assert_allclose(y[0, 0], [[3.0, 1.0, 0.0], [1.0, 0.05, 0.0]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(testing.deformable_conv2d_nchw(x, off, np.ones((1, 1, 1, 1), "float32"))[0, 0],
                               y[0, 0], rtol=1e-5, atol=1e-6)


def test_epilogue_is_fused_by_the_cpu_schedule():
    (X, Off, Wt), Y, xs, offs, ws = _make((1, 4, 6, 6, 8, 3, 1, 1, 1, 2, 1))
    B = te.placeholder((8,), "float32", "B")
    Z = relu(bias_add(Y, B))
    x = rng.standard_normal(xs).astype("float32")
    off = rng.standard_normal(offs).astype("float32")
    w = rng.standard_normal(ws).astype("float32")
    b = rng.standard_normal(8).astype("float32")
    z = _run(cpu_schedule(Z), [X, Off, Wt, B, Z], [x, off, w, b], Z)
    ref = np.maximum(testing.deformable_conv2d_nchw(x, off, w, 1, 1, 1, 2) + b[:, None, None], 0)
    np.testing.assert_allclose(z, ref, rtol=1e-4, atol=1e-4)


def test_errors_name_the_tensor():
    X = te.placeholder((1, 4, 6, 6), "float32", "feat")
    Wt = te.placeholder((8, 4, 3, 3), "float32", "weight")
    with pytest.raises(ShapeError, match=r"offset off1 must have shape .*\(1, 18, 6, 6\)"):
        deformable_conv2d_nchw(X, te.placeholder((1, 9, 6, 6), "float32", "off1"), Wt, 1, 1)
    with pytest.raises(ShapeError, match="deformable_groups=3"):
        deformable_conv2d_nchw(X, te.placeholder((1, 54, 6, 6), "float32", "off"), Wt, 1, 1, 1, 3)
    with pytest.raises(ShapeError, match="weight has 4 input channels per group"):
        deformable_conv2d_nchw(X, te.placeholder((1, 18, 6, 6), "float32", "off"), Wt, 1, 1, 1, 1, 2)
    with pytest.raises(DtypeError, match="int8 data needs an int8 kernel"):
        deformable_conv2d_nchw(te.placeholder((1, 4, 6, 6), "int8", "featq"),
                               te.placeholder((1, 18, 6, 6), "float32", "off"), Wt, 1, 1)
    with pytest.raises(DtypeError, match="data featu must be a float"):
        deformable_conv2d_nchw(te.placeholder((1, 4, 6, 6), "uint8", "featu"),
                               te.placeholder((1, 18, 6, 6), "float32", "off"), Wt, 1, 1)


def _nvrtc_available() -> bool:
    try:
        from minitvm.runtime.cuda import nvrtc_version
        nvrtc_version()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _nvrtc_available(), reason="NVRTC is not available")
def test_cuda_schedule_compiles():
    from minitvm.topi.cuda.deformable_conv2d import schedule_deformable_conv2d_nchw
    (X, Off, Wt), Y, *_ = _make((2, 64, 14, 14, 64, 3, 1, 1, 1, 2, 1))
    B = te.placeholder((64,), "float32", "B")
    Z = relu(bias_add(Y, B))
    mod = minitvm.build(schedule_deformable_conv2d_nchw(Z), [X, Off, Wt, B, Z], "cuda -arch=sm_90")
    src = mod.get_source()
    assert src.count("__global__") == 2 and "floorf" in src
    assert mod.cubin[:4] == b"\x7fELF"
