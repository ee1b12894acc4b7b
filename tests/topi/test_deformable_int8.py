"""The int8 deformable convolution: fixed-point sampling with the same bits in numpy, on the CPU
and in CUDA (through the SIMT interpreter), close to the float convolution, and its samples laid
out as NHWC channels (``deformable_sample_nhwc``) for a 1 x 1 conv on the tensor cores."""
import os
import sys

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.graph.ops.deformable import deformable_sample_int8_np
from minitvm.graph.ops.nn import deformable_conv2d_np
from minitvm.topi.nn.deformable_conv2d import deformable_conv2d_nchw, deformable_sample_nhwc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402

CASES = [  # (N, C, H, W, O, K, stride, pad, dilation, deformable_groups, groups)
    (1, 4, 7, 8, 8, 3, 1, 1, 1, 1, 1),
    (2, 8, 9, 9, 8, 3, 2, 1, 1, 2, 1),
    (1, 8, 8, 7, 4, 3, 1, 2, 2, 1, 2),
]


def _offsets(rng, shape):
    """Random offsets with the fixed point's edge cases: halves of a 1/128 step (rint ties to
    even), fractions that round up to a whole pixel, positions at -1 and on the far edge."""
    off = (rng.standard_normal(shape) * 2.5).astype(np.float32)
    flat = off.reshape(-1)
    flat[:6] = [0.5 / 128, 1.5 / 128, 0.998, -0.998, -1.0, 100.0]
    return off


def _case(case, seed=31):
    """Built from its own generator, so that a test's data does not depend on which tests ran
    before it in the same process."""
    rng = np.random.default_rng(seed)
    N, C, H, W, O, K, s, p, d, dg, g = case
    OH, OW = (H + 2 * p - d * (K - 1) - 1) // s + 1, (W + 2 * p - d * (K - 1) - 1) // s + 1
    x = rng.integers(-128, 128, (N, C, H, W), dtype=np.int8)
    off = _offsets(rng, (N, 2 * dg * K * K, OH, OW))
    w = rng.integers(-128, 128, (O, C // g, K, K), dtype=np.int8)
    X = te.placeholder(x.shape, "int8", "X")
    Off = te.placeholder(off.shape, "float32", "Off")
    Wt = te.placeholder(w.shape, "int8", "Wt")
    Y = deformable_conv2d_nchw(X, Off, Wt, s, p, d, dg, g)
    cols = deformable_sample_int8_np(x, off, (K, K), (s, s), (p, p, p, p), (d, d), dg)
    want = np.einsum("ngckpq,gock->ngopq", cols.astype(np.int64).reshape(N, g, C // g, K * K, OH, OW),
                     w.astype(np.int64).reshape(g, O // g, C // g, K * K)).reshape(N, O, OH, OW)
    return (X, Off, Wt, Y), (x, off, w), want


@pytest.mark.parametrize("case", CASES)
def test_int8_deformable_conv_is_bit_exact_on_the_cpu(case):
    from minitvm.topi.cpu.conv2d import schedule_deformable_conv2d_nchw as cpu_schedule
    (X, Off, Wt, Y), arrays, want = _case(case)
    assert Y.dtype == "int32"
    y = np.full(want.shape, -7, np.int32)
    minitvm.build(cpu_schedule(Y), [X, Off, Wt, Y], "llvm")(*arrays, y)
    np.testing.assert_array_equal(y, want)


def test_int8_deformable_conv_is_bit_exact_in_cuda():
    """A small case (the interpreter runs the sampling kernel's arithmetic thread by thread)."""
    from minitvm.topi.cuda.deformable_conv2d import schedule_deformable_conv2d_nchw as cuda_schedule
    (X, Off, Wt, Y), arrays, want = _case((1, 2, 4, 3, 4, 3, 1, 1, 1, 1, 1))
    y = np.full(want.shape, -7, np.int32)
    kernel_interp.run_func(minitvm.lower(cuda_schedule(Y), [X, Off, Wt, Y], name="dcn"), list(arrays) + [y])
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_int8_samples_stay_close_to_the_float_convolution(seed):
    """Each int8 sample is the float bilinear sample rounded to an integer, at positions on a
    1/128-pixel grid: an output is off by at most half a step per tap, weighted by the tap's
    weight (over 60 seeds the worst was 0.28)."""
    (_, _, _, _), (x, off, w), want = _case(CASES[0], seed)
    ref = deformable_conv2d_np(x.astype(np.float64), off, w.astype(np.float64), (1, 1), (1, 1, 1, 1))
    weight_sum = np.abs(w.astype(np.int64)).sum(axis=(1, 2, 3))[None, :, None, None]
    assert (np.abs(want - ref) <= 0.5 * weight_sum).all()


def test_fixed_point_weights_are_exact_at_whole_and_half_positions():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 2, 5, 5), dtype=np.int8)
    off = np.zeros((1, 2, 5, 5), np.float32)
    np.testing.assert_array_equal(deformable_sample_int8_np(x, off, (1, 1))[:, :, 0, 0], x)   # no offset: x
    off[:, 1] = 0.5                                                                            # halfway in x
    got = deformable_sample_int8_np(x, off, (1, 1))[0, :, 0, 0, :, :4].astype(np.int64)
    pair = x[0, :, :, :4].astype(np.int64) + x[0, :, :, 1:5]
    np.testing.assert_array_equal(got, (pair * 8192 + 8192) >> 14)


def _samples(K, s, p, d):
    N, C, H, W = 1, 4, 5, 4
    rng = np.random.default_rng(K * 100 + s * 10 + p + d)
    OH, OW = (H + 2 * p - d * (K - 1) - 1) // s + 1, (W + 2 * p - d * (K - 1) - 1) // s + 1
    x = rng.integers(-128, 128, (N, H, W, C), dtype=np.int8)
    off = _offsets(rng, (N, 2 * K * K, OH, OW))
    X = te.placeholder(x.shape, "int8", "X")
    Off = te.placeholder(off.shape, "float32", "Off")
    S = deformable_sample_nhwc(X, Off, K, s, p, d)
    assert tuple(int(v.value) for v in S.shape) == (N, OH, OW, 64)          # 36 taps x channels, padded
    cols = deformable_sample_int8_np(x.transpose(0, 3, 1, 2), off, (K, K), (s, s), (p, p, p, p), (d, d))
    want = np.zeros((N, OH, OW, 64), np.int8)
    want[..., :K * K * C] = cols.transpose(0, 4, 5, 2, 3, 1).reshape(N, OH, OW, -1)
    return (X, Off, S), (x, off), want


@pytest.mark.parametrize("K,s,p,d", [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 2)])
def test_nhwc_samples_equal_the_reference_tap_by_tap(K, s, p, d):
    from minitvm.topi.cpu.injective import schedule_injective
    (X, Off, S), arrays, want = _samples(K, s, p, d)
    got = np.full(want.shape, 99, np.int8)
    minitvm.build(schedule_injective(S), [X, Off, S], "llvm")(*arrays, got)
    np.testing.assert_array_equal(got, want)


def test_nhwc_samples_in_cuda_equal_the_reference():
    from minitvm.topi.cuda.injective import schedule_injective
    (X, Off, S), arrays, want = _samples(3, 2, 1, 1)
    got = np.full(want.shape, 99, np.int8)
    kernel_interp.run_func(minitvm.lower(schedule_injective(S), [X, Off, S], name="samples"), list(arrays) + [got])
    np.testing.assert_array_equal(got, want)
