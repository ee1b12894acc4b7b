"""The x86 int8 dot product (``dot_u8s8``) and the conv2d template over it: bit-exact against
numpy on every lowering (VNNI zmm, VNNI ymm, AVX2 vpmaddubsw, generic), with the extremes
-128 / 127 / 255 that make a plain vpmaddubsw saturate. A lowering the host CPU lacks is
skipped."""
import re

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.codegen.llvm_x86 import path_for
from minitvm.errors import DtypeError, ShapeError
from minitvm.runtime.cpu_features import cpu_features
from minitvm.target import Target
from minitvm.topi import testing
from minitvm.topi.cpu.conv2d_int8 import conv2d_NCHWc_int8_x86, schedule_conv2d_NCHWc_int8_x86, x86_lanes
from minitvm.topi.cpu.tensor_intrin import dot_i16, dot_u8s8
from minitvm.topi.nn.elemwise import quantize_multiplier, relu, requantize
from minitvm.topi.nn.layout import layout_transform

HOST = cpu_features()
# path -> (-mattr switching the others off, host feature it needs, lanes, instruction in the asm)
PATHS = {
    "vnni512": ("", "avx512vnni", 16, "vpdpbusd"),
    "vnni256": ("-avx512vnni", "avxvnni", 8, "vpdpbusd"),
    "avx2": ("-avxvnni,-avx512vnni", "avx2", 8, "vpmaddubsw"),
    "generic": ("-avx2,-avx512f,-avxvnni,-avx512vnni", None, 8, None),
}
rng = np.random.default_rng()


def _target(path):
    mattr, need, lanes, _ = PATHS[path]
    if need is not None and need not in HOST:
        pytest.skip(f"the host CPU has no {need}, which the {path} lowering needs")
    target = Target(f"llvm -mattr={mattr}" if mattr else "llvm")
    assert path_for(target.features, lanes) == path
    return target, lanes


def _int8(shape, dtype="int8"):
    lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
    x = rng.integers(lo, hi, shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.random(flat.size) < 0.3] = lo          # extremes, often adjacent (saturating pairs)
    flat[rng.random(flat.size) < 0.3] = hi - 1
    return x


def test_avx2_split_cannot_saturate():
    """The rule the AVX2 lowering relies on: pair sums of (x & 127) * w and (x >> 7) * w fit int16,
    while pair sums of x * w do not."""
    x = np.arange(256)
    w = np.arange(-128, 128)
    prod = lambda a: np.outer(a, w)   # noqa: E731
    lo, hi, full = prod(x & 127), prod(x >> 7), prod(x)
    assert 2 * lo.max() <= 32767 and 2 * lo.min() >= -32768
    assert 2 * hi.max() <= 32767 and 2 * hi.min() >= -32768
    assert 2 * full.max() > 32767 and 2 * full.min() < -32768


@pytest.mark.parametrize("path", list(PATHS))
def test_intrinsic_alone_bit_exact(path):
    """``z[n, i] = sum_k x[n, k] * w[i, k]`` over every (x, w) byte pair, extremes included."""
    target, lanes = _target(path)
    M, K = 64, 16
    X = te.placeholder((M, K), "uint8", "X")
    Wt = te.placeholder((K // 4, lanes, 4), "int8", "W")
    ko, ki = te.reduce_axis((0, K // 4), "ko"), te.reduce_axis((0, 4), "ki")
    Z = te.compute((M, lanes), lambda m, i: te.sum(X[m, ko * 4 + ki].astype("int32")
                                                   * Wt[ko, i, ki].astype("int32"), axis=[ko, ki]), name="Z")
    s = te.create_schedule(Z.op)
    m, i = s[Z].op.axis
    s[Z].reorder(m, ko, i, ki)
    s[Z].tensorize(i, dot_u8s8(lanes))
    mod = minitvm.build(s, [X, Wt, Z], target)
    x = _int8((M, K), "uint8")
    x[0], x[1] = 255, 128
    w = _int8((K // 4, lanes, 4))
    w[:, : lanes // 2], w[:, lanes // 2:] = 127, -128
    z = np.full((M, lanes), -99, np.int32)
    mod(x, w, z)
    ref = x.astype(np.int64) @ w.transpose(0, 2, 1).reshape(K, lanes).astype(np.int64)
    np.testing.assert_array_equal(z, ref)
    instr = PATHS[path][3]
    if instr is not None:
        assert re.search(instr, mod.get_source("asm"))


@pytest.mark.parametrize("path", ["avx2", "generic"])
@pytest.mark.parametrize("lanes", [8, 16])
def test_dot_i16_alone_bit_exact(path, lanes):
    """``dot_i16``: int16 pairs times int16 weights (the whole range: pair sums wrap in int32 only for
    -32768 * -32768 twice), one vpmaddwd per 8 lanes."""
    target, _ = _target(path)
    M, K = 32, 8
    X = te.placeholder((M, K), "int16", "X")
    Wt = te.placeholder((K // 2, lanes, 2), "int16", "W")
    ko, ki = te.reduce_axis((0, K // 2), "ko"), te.reduce_axis((0, 2), "ki")
    Z = te.compute((M, lanes), lambda m, i: te.sum(X[m, ko * 2 + ki].astype("int32")
                                                   * Wt[ko, i, ki].astype("int32"), axis=[ko, ki]), name="Z")
    s = te.create_schedule(Z.op)
    m, i = s[Z].op.axis
    s[Z].reorder(m, ko, i, ki)
    s[Z].tensorize(i, dot_i16(lanes))
    mod = minitvm.build(s, [X, Wt, Z], target)
    x = rng.integers(-32768, 32768, (M, K)).astype(np.int16)
    x[0], x[1] = -32768, 32767
    w = rng.integers(-32768, 32768, (K // 2, lanes, 2)).astype(np.int16)
    w.reshape(-1)[::3], w.reshape(-1)[1::3] = -32768, 32767
    z = np.full((M, lanes), -99, np.int32)
    mod(x, w, z)
    ref = x.astype(np.int64) @ w.transpose(0, 2, 1).reshape(K, lanes).astype(np.int64)
    np.testing.assert_array_equal(z, ref.astype(np.int32))      # (int32 wrap-around, like the hardware)
    if path == "avx2":      # (LLVM may find pmaddwd in the generic lowering's multiplies too)
        assert re.search("vpmaddwd", mod.get_source("asm"))


@pytest.mark.parametrize("path", ["avx2", "generic"])
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_conv2d_with_int16_weights_bit_exact(path, dtype):
    """The CPUs without VNNI: OIHW8o2i int16 weights, no offset, NCHW8c data read in place."""
    target, _ = _target(path)
    N, C, H, W, O, K, st, pd = 1, 16, 7, 9, 16, 3, 1, 1
    X = te.placeholder((N, C, H, W), dtype, "X")
    Kw = te.placeholder((O, C, K, K), "int8", "K")
    Kp = layout_transform(te.compute(Kw.shape, lambda *i: Kw(*i).astype("int16"), name="K16"), "OIHW", "OIHW8o2i")
    Y = conv2d_NCHWc_int8_x86(layout_transform(X, "NCHW", "NCHW8c"), Kp, st, pd)
    mod = minitvm.build(schedule_conv2d_NCHWc_int8_x86(Y), [X, Kw, Y], target)
    x, k = _int8((N, C, H, W), dtype), _int8((O, C, K, K))
    y = np.full([int(d.value) for d in Y.shape], -99, np.int32)
    mod(x, k, y)
    ref = testing.conv2d_nchw(x.astype(np.int32), k, st, pd, 1, 1)
    np.testing.assert_array_equal(y.transpose(0, 1, 4, 2, 3).reshape(ref.shape), ref)


CONVS = [  # N, C, H, W, O, K, stride, pad
    (1, 16, 9, 9, 32, 3, 1, 1),
    (2, 8, 10, 10, 16, 1, 2, 0),
    (1, 4, 15, 15, 16, 7, 2, 3),      # first-layer-like, 8 columns do not divide the width
    (1, 32, 7, 7, 48, 3, 1, 1),       # 7 columns, odd number of channel blocks (with 16 lanes)
]


def _conv(target, lanes, shape, dtype, epilogue, block=4):
    N, C, H, W, O, K, st, pd = shape
    X = te.placeholder((N, C, H, W), dtype, "X")
    Kw = te.placeholder((O, C, K, K), "int8", "K")
    Xp = layout_transform(X, "NCHW", f"NCHW{block}c")
    Kp = layout_transform(Kw, "OIHW", f"OIHW{lanes}o4i")
    Y = conv2d_NCHWc_int8_x86(Xp, Kp, st, pd)
    out = relu(requantize(Y, *quantize_multiplier(0.0021))) if epilogue else Y
    s = schedule_conv2d_NCHWc_int8_x86(out)
    return minitvm.build(s, [X, Kw, out], target), out


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("shape", CONVS, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_conv2d_bit_exact(path, shape, dtype):
    target, lanes = _target(path)
    if O_pad := shape[4] % lanes:
        shape = shape[:4] + (shape[4] + lanes - O_pad,) + shape[5:]
    N, C, H, W, O, K, st, pd = shape
    mod, out = _conv(target, lanes, shape, dtype, epilogue=False)
    x, k = _int8((N, C, H, W), dtype), _int8((O, C, K, K))
    y = np.full([int(d.value) for d in out.shape], -99, np.int32)
    mod(x, k, y)
    ref = testing.conv2d_nchw(x.astype(np.int32), k, st, pd, 1, 1)
    got = y.transpose(0, 1, 4, 2, 3).reshape(ref.shape)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("path", ["vnni512", "avx2", "generic"])
@pytest.mark.parametrize("block", [8, 16])
def test_conv2d_reads_wider_data_blocks(path, block):
    """Data in NCHW8c / NCHW16c (as an x86 conv writes its output) is read in place, 4 channels a step."""
    target, lanes = _target(path)
    N, C, H, W, O, K, st, pd = shape = (1, 32, 7, 9, 16, 3, 2, 1)
    mod, out = _conv(target, lanes, shape, "int8", epilogue=False, block=block)
    x, k = _int8((N, C, H, W)), _int8((O, C, K, K))
    y = np.full([int(d.value) for d in out.shape], -99, np.int32)
    mod(x, k, y)
    ref = testing.conv2d_nchw(x.astype(np.int32), k, st, pd, 1, 1)
    np.testing.assert_array_equal(y.transpose(0, 1, 4, 2, 3).reshape(ref.shape), ref)


@pytest.mark.parametrize("path", ["vnni512", "avx2"])
def test_requantize_relu_epilogue_bit_exact(path):
    target, lanes = _target(path)
    shape = (1, 16, 6, 6, 16, 3, 1, 1)
    mod, out = _conv(target, lanes, shape, "int8", epilogue=True)
    x, k = _int8((1, 16, 6, 6)), _int8((16, 16, 3, 3))
    y = np.full([int(d.value) for d in out.shape], -99, out.dtype)
    mod(x, k, y)
    m, sh = quantize_multiplier(0.0021)
    ref = np.maximum(testing.requantize(testing.conv2d_nchw(x, k, 1, 1, 1, 1), m, sh), 0)
    np.testing.assert_array_equal(y.transpose(0, 1, 4, 2, 3).reshape(ref.shape), ref.astype(y.dtype))


def test_lanes_follow_the_target():
    assert x86_lanes(Target("llvm -mattr=-avx512vnni")) == 8
    assert x86_lanes(Target("llvm -mcpu=znver4")) == 16
    assert path_for(Target("llvm -mcpu=znver3").features, 8) == "avx2"
    assert path_for(Target("llvm -mcpu=alderlake").features, 8) == "vnni256"


def test_bad_layouts_are_rejected():
    X = te.placeholder((1, 2, 5, 5, 8), "int8", "X")
    Kw = te.placeholder((2, 2, 3, 3, 8, 8), "int8", "K")
    with pytest.raises(ShapeError, match="multiple of 4 input channels per block and the kernel 4"):
        conv2d_NCHWc_int8_x86(X, Kw)
    with pytest.raises(ShapeError, match="kernel has 2 blocks of 4 input channels, data 2 x 8"):
        conv2d_NCHWc_int8_x86(X, te.placeholder((2, 2, 3, 3, 8, 4), "int8", "K"))
    with pytest.raises(DtypeError, match="kernel int8"):
        conv2d_NCHWc_int8_x86(te.placeholder((1, 2, 5, 5, 4), "int8", "X"),
                              te.placeholder((2, 2, 3, 3, 8, 4), "uint8", "K"))
