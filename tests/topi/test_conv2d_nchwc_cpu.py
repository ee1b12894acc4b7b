"""The CPU's packed float convolutions (``conv2d_NCHWc``, ``depthwise_conv2d_NCHWc``) and their
templates: against numpy for 16-float (AVX-512) and 8-float (AVX2) blocks, every knob value of a
small space; int8 depthwise bit-exact. A vector width the host cannot run is skipped."""
import numpy as np
import pytest

import minitvm
from minitvm import autotune, te
from minitvm.errors import ScheduleError, ShapeError
from minitvm.runtime.cpu_features import cpu_features
from minitvm.target import Target
from minitvm.topi import testing
from minitvm.topi.cpu.conv2d_nchwc import (conv2d_NCHWc_x86, default_config, depthwise_conv2d_NCHWc_x86,
                                           register_tile, schedule_conv2d_NCHWc, vector_registers)
from minitvm.topi.nn.conv2d_nchwc import conv2d_NCHWc, depthwise_conv2d_NCHWc

HOST = cpu_features()
rng = np.random.default_rng()
BLOCKS = {16: ("avx512f", "llvm"), 8: ("avx2", "llvm -mattr=-avx512f")}


def _target(block):
    need, target = BLOCKS[block]
    if need not in HOST:
        pytest.skip(f"the host CPU has no {need} for {block}-float vectors")
    return Target(target)


def _pack_kernel(w, ib, ob):
    """OIHW -> OIHW[ib]i[ob]o."""
    O, I, KH, KW = w.shape
    return np.ascontiguousarray(w.reshape(O // ob, ob, I // ib, ib, KH, KW).transpose(0, 2, 4, 5, 3, 1))


def _run(template, args, cfg, target, x, k):
    s, tensors = template(*args, cfg=cfg)
    mod = minitvm.build(s, tensors, target)
    y = np.full([int(d.value) for d in tensors[2].shape], np.nan, tensors[2].dtype) \
        if tensors[2].dtype == "float32" else np.full([int(d.value) for d in tensors[2].shape], -7, tensors[2].dtype)
    mod(x, k, y)
    return y


CONVS = [  # C, H, W, O, K, stride, pad, dilation
    (16, 9, 9, 32, 3, 1, 1, 1),
    (3, 15, 15, 16, 7, 2, 3, 1),        # an image: 3 channels in one block
    (32, 7, 7, 64, 1, 1, 0, 1),
    (16, 10, 12, 16, 3, 2, 1, 2),
]


@pytest.mark.parametrize("block", [16, 8])
@pytest.mark.parametrize("shape", CONVS, ids=lambda c: "x".join(map(str, c)))
def test_conv2d_NCHWc_matches_numpy(block, shape):
    target = _target(block)
    C, H, W, O, K, st, pd, dl = shape
    ib, ob = min(block, C), min(block, O)
    x, w = rng.standard_normal((1, C, H, W)).astype("float32"), rng.standard_normal((O, C, K, K)).astype("float32")
    args = ((1, C // ib, H, W, ib), (O // ob, C // ib, K, K, ib, ob), st, pd, dl, 1, "float32", "float32")
    y = _run(conv2d_NCHWc_x86, args, {}, target, testing.pack_nchwc(x, ib), _pack_kernel(w, ib, ob))
    ref = testing.conv2d_nchw(x, w, st, pd, dl, 1, np.float64)
    np.testing.assert_allclose(testing.unpack_nchwc(y), ref, rtol=1e-4, atol=1e-4)


def test_every_config_of_a_small_space_computes_the_same():
    target = _target(16) if "avx512f" in HOST else _target(8)
    b = 16 if "avx512f" in HOST else 8
    args = ((1, 2, 6, 6, b), (2, 2, 3, 3, b, b), 1, 1, 1, 1, "float32", "float32")
    task = autotune.Task("conv2d_NCHWc.x86", args, target="llvm")
    x, k = rng.standard_normal(args[0]).astype("float32"), rng.standard_normal(args[1]).astype("float32")
    ref = task.template.reference([x, k], *task.args)[0]
    space = task.config_space
    assert {k for k in space.space_map} == {"ow_block", "oc_block", "unroll_kw"}
    for i in range(len(space)):
        cfg = space.get(i)
        if space.is_valid(cfg):
            np.testing.assert_allclose(_run(conv2d_NCHWc_x86, args, cfg, target, x, k), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_depthwise_matches_numpy(dtype, stride, dilation):
    target = _target(16) if "avx512f" in HOST else _target(8)
    C, H, b = 48, 11, 16
    if dtype == "int8":
        x = rng.integers(-128, 128, (1, C, H, H)).astype("int8")
        w = rng.integers(-128, 128, (C, 1, 3, 3)).astype("int8")
        x.reshape(-1)[::4], w.reshape(-1)[::3] = -128, -128
    else:
        x, w = rng.standard_normal((1, C, H, H)).astype("float32"), rng.standard_normal((C, 1, 3, 3)).astype("float32")
    out = "int32" if dtype == "int8" else "float32"
    wp = np.ascontiguousarray(w.reshape(C // b, b, 1, 3, 3).transpose(0, 2, 3, 4, 1))
    args = ((1, C // b, H, H, b), wp.shape, stride, 1, dilation, C, dtype, out)
    y = _run(depthwise_conv2d_NCHWc_x86, args, {}, target, testing.pack_nchwc(x, b), wp)
    acc = np.int64 if dtype == "int8" else np.float64
    ref = testing.conv2d_nchw(x, w, stride, 1, dilation, C, acc)
    if dtype == "int8":
        np.testing.assert_array_equal(testing.unpack_nchwc(y), ref)
    else:
        np.testing.assert_allclose(testing.unpack_nchwc(y), ref, rtol=1e-4, atol=1e-4)


def test_default_tile_fits_the_registers():
    assert register_tile(56, 4, 32) == {"ow_block": 8, "oc_block": 2}     # 16 zmm accumulators
    assert register_tile(7, 32, 32) == {"ow_block": 7, "oc_block": 2}
    assert register_tile(56, 3, 32) == {"ow_block": 4, "oc_block": 3}     # 24 channels in blocks of 8
    assert register_tile(56, 8, 16) == {"ow_block": 4, "oc_block": 2}     # AVX2: 8 of 16 ymm
    assert register_tile(13, 3, 32) == {"ow_block": 1, "oc_block": 3}     # a prime width
    with Target("llvm -mattr=-avx512f"):
        assert vector_registers() == 16
    with Target("llvm -mattr=+avx512f"):
        assert vector_registers() == 32


def test_bad_knobs_and_layouts_are_rejected():
    X = te.placeholder((1, 2, 8, 8, 16), "float32", "X")
    K = te.placeholder((3, 2, 3, 3, 16, 16), "float32", "K")
    Y = conv2d_NCHWc(X, K, 1, 1)
    assert default_config(Y)["oc_block"] in (1, 3)
    with pytest.raises(ScheduleError, match="knob oc_block=2 must be a positive divisor of the 3 output channel"):
        schedule_conv2d_NCHWc(Y, cfg={"oc_block": 2})
    with pytest.raises(ScheduleError, match="unknown knob"):
        schedule_conv2d_NCHWc(Y, cfg={"tile_k": 2})
    with pytest.raises(ShapeError, match="kernel K has 2 x 8 input channels, data X 2 x 16"):
        conv2d_NCHWc(X, te.placeholder((3, 2, 3, 3, 8, 16), "float32", "K"))
    with pytest.raises(ShapeError, match=r"must be \(2, 1, KH, KW, 16\)"):
        depthwise_conv2d_NCHWc(X, te.placeholder((2, 2, 3, 3, 16), "float32", "K"))
