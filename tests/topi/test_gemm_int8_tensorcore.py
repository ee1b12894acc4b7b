"""The int8 tensor-core GEMM (``conv2d_NHWC_int8_gemm`` / ``dense_int8_gemm`` scheduled by
``schedule_int8_gemm``) on the CPU: every conv and dense shape class of the seed models, bit-exact
against numpy through the SIMT interpreter (which runs ``mma.sync`` / ``ldmatrix`` / ``cp.async``
exactly), NVRTC compilation for sm_80 and sm_90, the knob and shape errors, and the autotune
templates. Shapes are the seed models' with fewer channels and pixels, so the interpreter stays fast."""
import os
import random
import sys

import numpy as np
import pytest

import minitvm
from minitvm import autotune, te
from minitvm.codegen.cuda import codegen_cuda
from minitvm.errors import DtypeError, ScheduleError, ShapeError
from minitvm.graph.quantize import multiplier_shift, requantize_per_channel_np
from minitvm.topi import testing
from minitvm.topi.cuda.gemm_int8_tensorcore import default_config, schedule_int8_gemm
from minitvm.topi.nn.conv2d_gemm import conv2d_NHWC_int8_gemm, dense_int8_gemm
from minitvm.topi.nn.elemwise import quantize_multiplier, relu, requantize
from minitvm.topi.nn.qnn import requantize_per_channel
from minitvm.topi.workloads import Conv, resnet_bottleneck_convs, seed_model_convs

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
import kernel_interp  # noqa: E402

rng = np.random.default_rng(14)


def _int8(shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


def _poison(shape, dtype):
    a = np.empty(shape, dtype)
    a.view(np.uint8).fill(0xA5)
    return a


def _shape(t):
    return tuple(int(d.value) for d in t.shape)


# --- the workloads -------------------------------------------------------------------------------

def _shape_classes():
    """One conv of each distinct (kernel, stride, padding, dilation) of the seed models' groups=1
    convolutions (ResNeXt's grouped 3x3 stay on dp4a; DCN-ResNet-101's plain convs are ResNet-101's)."""
    convs = seed_model_convs(1) + resnet_bottleneck_convs(1, layers=(3, 4, 23, 3), name="dcn_resnet101")
    seen = {}
    for w in convs:
        if w.groups == 1:
            seen.setdefault((w.K, w.kw, w.stride, w.pad, w.pw, w.dilation), w)
    return list(seen.values())


def _shrunk(w, batch, out_hw):
    """``w`` at ``batch`` with an ``out_hw`` output, 32 input channels (64 for 1 x 1 kernels: two
    32-wide k-slices per step) and 8 output channels (16 for kernels of at most 9 taps; 24, an
    odd number of 8-column tiles, for the 1 x n ones)."""
    def side(out, k, pad):
        return (out - 1) * w.stride + (k - 1) * w.dilation + 1 - 2 * pad
    c = 64 if w.K * w.kw == 1 else 32
    o = 24 if w.K == 1 and w.kw > 1 else 16 if w.K * w.kw <= 9 else 8
    return Conv(w.name, batch, c, side(out_hw[0], w.K, w.pad), side(out_hw[1], w.kw, w.pw), o, w.K, w.stride,
                w.pad, w.dilation, 1, w.KW, w.pad_w)


CONV_CLASSES = _shape_classes()
# batch 1: a 2 x 3 output (6 rows, padded to 16); batch 16: one pixel an image (16 rows)
CONVS = [_shrunk(w, 1, (2, 3)) for w in CONV_CLASSES] + [_shrunk(w, 16, (1, 1)) for w in CONV_CLASSES]
# the classifiers: 2048 -> 1000 (ResNet, ResNeXt, Inception, DCN), VGG's 25088 -> 4096 -> 4096 -> 1000,
# with fewer features and units; 200 units are 25 8-column tiles (odd, like 1000's 125)
DENSES = [(m, k, n) for m in (1, 16) for k, n in ((64, 200), (96, 64))]


def _conv_tensors(w, dtype="int8"):
    X = te.placeholder((w.N, w.H, w.W, w.C), dtype, "X")
    K = te.placeholder((w.O, w.K, w.kw, w.C), dtype, "K")
    return X, K, conv2d_NHWC_int8_gemm(X, K, w.stride, w.padding, w.dilation)


def _conv_reference(w, x, k):
    out = testing.conv2d_nchw(x.transpose(0, 3, 1, 2), k.transpose(0, 3, 1, 2), w.stride, w.padding, w.dilation)
    return out.transpose(0, 2, 3, 1)


def _cuda_source(s, tensors):
    """The CUDA C of ``s`` (no NVRTC)."""
    return codegen_cuda(minitvm.lower(s, tensors, target="cuda"))[0]


def _interpret(s, tensors, inputs, seed=0):
    """Lower ``s`` and run its kernels in the SIMT interpreter on poisoned outputs."""
    f = minitvm.lower(s, tensors, name="gemm")
    out = _poison(_shape(tensors[-1]), tensors[-1].dtype)
    kernel_interp.run_func(f, list(inputs) + [out], seed=seed)
    return out


def _check_conv(w, cfg=None, seed=0):
    X, K, Y = _conv_tensors(w)
    x, k = _int8(_shape(X)), _int8(_shape(K))
    y = _interpret(schedule_int8_gemm(Y, cfg=cfg or {}), [X, K, Y], [x, k], seed)
    np.testing.assert_array_equal(y, _conv_reference(w, x, k))


def _dense_tensors(m, k, n):
    A = te.placeholder((m, k), "int8", "A")
    B = te.placeholder((n, k), "int8", "B")
    return A, B, dense_int8_gemm(A, B)


def _check_dense(m, k, n, cfg=None):
    A, B, Y = _dense_tensors(m, k, n)
    a, b = _int8((m, k)), _int8((n, k))
    y = _interpret(schedule_int8_gemm(Y, cfg=cfg or {}), [A, B, Y], [a, b])
    np.testing.assert_array_equal(y, testing.dense(a, b))


def _conv_id(w):
    return f"{w.name.split('.')[0]}-b{w.N}-{w.K}x{w.kw}s{w.stride}p{w.pad}{'' if w.pw == w.pad else f',{w.pw}'}" \
           f"d{w.dilation}"


# --- bit-exact in the interpreter ---------------------------------------------------------------

def test_the_shape_classes_cover_the_seed_models():
    keys = {(w.K, w.kw, w.stride, w.dilation) for w in CONV_CLASSES}
    assert {(7, 7, 2, 1), (7, 7, 1, 1), (1, 1, 2, 1), (3, 3, 2, 1), (5, 5, 1, 1), (1, 7, 1, 1), (7, 1, 1, 1),
            (3, 3, 1, 2), (3, 3, 1, 4)} <= keys


@pytest.mark.parametrize("w", CONVS, ids=_conv_id)
def test_seed_model_conv_shape_classes_bit_exact_in_interpreter(w):
    _check_conv(w)


@pytest.mark.parametrize("m,k,n", DENSES, ids=lambda v: str(v))
def test_classifier_dense_bit_exact_in_interpreter(m, k, n):
    _check_dense(m, k, n)


# 1 x 3 kernels, 64 channels: 6 k-steps of one 32-wide slice, 3 of two
_ODD_ROWS = Conv("odd_rows", 1, 64, 6, 6, 24, 1, 1, 0, 1, 1, 3, 1)  # 36 rows (48 padded), 3 column tiles
_EVEN_COLS = Conv("even_cols", 2, 64, 4, 4, 32, 1, 1, 0, 1, 1, 3, 1)   # 32 rows, 4 column tiles

CONFIGS = [
    # (workload, knobs, what it exercises)
    (_ODD_ROWS, {"tile_m": [1, 3, 16], "tile_n": [1, 1, 3], "stages": 1, "k_chunk": 1}, "3x1 warps, ldmatrix_b"),
    (_ODD_ROWS, {"tile_m": [3, 1, 16], "tile_n": [1, 3, 1], "stages": 2, "k_chunk": 2}, "1x3 warps, 3 blocks"),
    (_ODD_ROWS, {"tile_m": [1, 1, 48], "tile_n": [3, 1, 1], "stages": 3, "k_chunk": 1}, "3 row tiles a warp"),
    (_ODD_ROWS, {"tile_m": [1, 3, 16], "tile_n": [1, 3, 1], "stages": 4, "k_chunk": 2}, "3x3 warps, 4 stages"),
    (_EVEN_COLS, {"tile_m": [1, 2, 16], "tile_n": [1, 1, 4], "stages": 4, "k_chunk": 1}, "ldmatrix_b16 x2"),
    (_EVEN_COLS, {"tile_m": [2, 1, 16], "tile_n": [2, 1, 2], "stages": 2, "k_chunk": 2}, "ldmatrix_b16, 4 blocks"),
    (_EVEN_COLS, {"tile_m": [1, 1, 32], "tile_n": [1, 2, 2], "stages": 3, "k_chunk": 2, "vector": 2}, "vector 2"),
    (_EVEN_COLS, {"tile_m": [1, 2, 16], "tile_n": [1, 2, 2], "stages": 1, "k_chunk": 2, "vector": 1}, "scalar"),
]


@pytest.mark.slow  # the SIMT interpreter, per config
@pytest.mark.parametrize("w,knobs,what", CONFIGS, ids=[c[2] for c in CONFIGS])
def test_explicit_configs_race_free_and_bit_exact_in_interpreter(w, knobs, what):
    """Each config, under two random thread orders: a missing barrier or wait reads poison."""
    for seed in (0, 1):
        _check_conv(w, knobs, seed)


def test_dense_odd_block_rows_bit_exact_in_interpreter():
    """40 rows in 3 blocks of 16: the last block's 8 padded rows are never stored."""
    _check_dense(40, 64, 24, {"tile_m": [3, 1, 16], "tile_n": [1, 1, 3], "k_chunk": 2, "stages": 2})


@pytest.mark.parametrize("vector", [4, 8, 16])
def test_bias_requantize_relu_epilogue_fused_bit_exact_in_interpreter(vector):
    """int8 out through a per-channel requantize (qnn) after a bias add, then relu: the epilogue
    is inlined into the output stage, stored ``vector`` int8 at a time."""
    w = Conv("epilogue", 2, 32, 5, 5, 16, 3, 1, 1)
    X, K, Y = _conv_tensors(w)
    bias = te.placeholder((w.O,), "int32", "bias")
    mult = te.placeholder((w.O,), "int32", "mult")
    shift = te.placeholder((w.O,), "int32", "shift")
    biased = te.compute(Y.shape, lambda n, h, x, o: Y[n, h, x, o] + bias[o], name="bias_add", tag="injective")
    out = relu(requantize_per_channel(biased, mult, shift, axis=3))
    s = schedule_int8_gemm(out, cfg={"tile_m": [2, 1, 32], "tile_n": [1, 1, 2], "vector": vector})
    assert _cuda_source(s, [X, K, bias, mult, shift, out]).count("__global__") == 1
    x, k = _int8(_shape(X)), _int8(_shape(K))
    b = rng.integers(-5000, 5000, w.O, dtype=np.int32)
    ms = np.array([multiplier_shift(float(v)) for v in rng.uniform(1e-4, 3e-3, w.O)], np.int32)
    y = _interpret(s, [X, K, bias, mult, shift, out], [x, k, b, ms[:, 0].copy(), ms[:, 1].copy()])
    ref = requantize_per_channel_np(_conv_reference(w, x, k) + b, ms[:, 0], ms[:, 1], axis=3)
    assert (ref > 0).any() and (ref < 127).any()
    np.testing.assert_array_equal(y, np.maximum(ref, 0))


def test_dense_requantize_epilogue_bit_exact_in_interpreter():
    A, B, Y = _dense_tensors(16, 64, 32)
    m, sh = quantize_multiplier(0.0017)
    out = relu(requantize(Y, m, sh))
    s = schedule_int8_gemm(out, cfg={"tile_n": [1, 1, 4], "vector": 16})
    a, b = _int8((16, 64)), _int8((32, 64))
    y = _interpret(s, [A, B, out], [a, b])
    np.testing.assert_array_equal(y, np.maximum(testing.requantize(testing.dense(a, b), m, sh), 0))


# --- CUDA C and NVRTC ----------------------------------------------------------------------------

NVRTC = [CONVS[0], next(w for w in CONVS if w.N == 16 and w.K == 3 and w.dilation == 2),
         next(w for w in CONVS if w.K == 1 and w.kw == 7)]


@pytest.mark.parametrize("w", NVRTC, ids=_conv_id)
def test_cuda_source_has_mma_ldmatrix_cp_async_and_compiles_with_nvrtc(w):
    pytest.importorskip("cuda.bindings")
    X, K, Y = _conv_tensors(w)
    s = schedule_int8_gemm(Y, cfg={})
    for arch in ("sm_80", "sm_90"):
        mod = minitvm.build(s, [X, K, Y], f"cuda -arch={arch}")
        src = mod.get_source()
        for needle in ("mma.sync.aligned.m16n8k32", "ldmatrix.sync.aligned", "cp.async.cg.shared.global",
                       "cp.async.wait_group"):
            assert needle in src, (arch, needle)
        assert mod.cubin, arch


def test_unpipelined_kernel_has_no_cp_async():
    X, K, Y = _conv_tensors(CONVS[0])
    src = _cuda_source(schedule_int8_gemm(Y, cfg={"stages": 1}), [X, K, Y])
    assert "mma.sync" in src and "cp.async.cg" not in src and "mt_cp_async" not in src


# --- errors --------------------------------------------------------------------------------------

_BIG = (256, 128, 256)  # dense rows, features, units: 256 rows, 32 column tiles, 4 k-slices


@pytest.mark.parametrize("knobs,match", [
    ({"tile_m": [3, 1, 16]}, r"knob tile_m: \[3, 1, 16\] must be 3 positive factors of 256"),
    ({"tile_m": [1, 32, 8]}, r"knob tile_m: rows per warp \(8\) must be a multiple of 16"),
    ({"tile_n": [1, 1, 31]}, r"knob tile_n"),
    ({"k_chunk": 3}, r"knob k_chunk: 3 x 32 must divide the 128 input channels"),
    ({"k_chunk": 0}, r"knob k_chunk"),
    ({"stages": 0}, r"knob stages: 0"),
    ({"stages": 5}, r"knob stages: 5"),
    ({"vector": 3}, r"knob vector: 3"),
    ({"vector": 8}, r"knob vector: 8 must .* fit 16 bytes of int32"),
    ({"tile_m": [1, 8, 32], "tile_n": [1, 8, 4]}, r"knobs tile_m/tile_n: 2048 threads per block"),
    ({"tile_m": [1, 2, 128], "tile_n": [1, 1, 32], "k_chunk": 4, "stages": 4},
     r"knobs tile_m/tile_n/k_chunk: \d+ bytes of shared memory"),
    ({"tile_k": [1, 4]}, r"unknown knob\(s\) \['tile_k'\]"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_bad_knob_is_named(knobs, match):
    _, _, Y = _dense_tensors(*_BIG)
    with pytest.raises(ScheduleError, match=match):
        schedule_int8_gemm(Y, cfg=knobs)


def test_vector_not_dividing_the_block_columns_is_named():
    _, _, Y = _dense_tensors(16, 32, 8)
    out = requantize(Y, *quantize_multiplier(0.01))
    with pytest.raises(ScheduleError, match="knob vector: 16 must divide the block's 8 columns"):
        schedule_int8_gemm(out, cfg={"vector": 16})


def test_vector_that_does_not_split_over_the_threads_is_named():
    _, _, Y = _dense_tensors(16, 32, 8)
    out = requantize(Y, *quantize_multiplier(0.01))
    with pytest.raises(ScheduleError, match="knob vector: the 16 x 8 output tile does not split into 32 threads"):
        schedule_int8_gemm(out, cfg={"vector": 8})


@pytest.mark.parametrize("c,o,match", [(16, 16, "16 input channels"), (48, 16, "48 input channels"),
                                       (32, 12, "12 output channels")])
def test_conv_channels_off_the_mma_tile_are_refused(c, o, match):
    with pytest.raises(ShapeError, match=f"conv2d_nhwc_int8: {match}"):
        conv2d_NHWC_int8_gemm(te.placeholder((1, 4, 4, c), "int8", "X"), te.placeholder((o, 1, 1, c), "int8", "K"))


def test_dense_features_off_the_mma_tile_are_refused():
    with pytest.raises(ShapeError, match="dense_int8_gemm: 40 input channels"):
        dense_int8_gemm(te.placeholder((2, 40), "int8", "A"), te.placeholder((8, 40), "int8", "B"))
    with pytest.raises(ShapeError, match="dense_int8_gemm: 20 output channels"):
        dense_int8_gemm(te.placeholder((2, 32), "int8", "A"), te.placeholder((20, 32), "int8", "B"))
    with pytest.raises(ShapeError, match="data A has 32 features, weight B 64"):
        dense_int8_gemm(te.placeholder((2, 32), "int8", "A"), te.placeholder((8, 64), "int8", "B"))


@pytest.mark.parametrize("dx,dk", [("uint8", "int8"), ("int8", "float32"), ("int32", "int32")])
def test_non_int8_operands_are_refused(dx, dk):
    with pytest.raises(DtypeError, match=f"must be int8, got {dx} and {dk}"):
        conv2d_NHWC_int8_gemm(te.placeholder((1, 4, 4, 32), dx, "X"), te.placeholder((8, 1, 1, 32), dk, "K"))
    with pytest.raises(DtypeError, match=f"must be int8, got {dx} and {dk}"):
        dense_int8_gemm(te.placeholder((2, 32), dx, "A"), te.placeholder((8, 32), dk, "B"))


def test_weight_channels_must_match_the_data():
    with pytest.raises(ShapeError, match="weight K has 64 input channels, data X has 32"):
        conv2d_NHWC_int8_gemm(te.placeholder((1, 4, 4, 32), "int8", "X"), te.placeholder((8, 1, 1, 64), "int8", "K"))


def test_grouped_conv_template_is_refused():
    with pytest.raises(ScheduleError, match="groups=2"):
        autotune.Task("conv2d_NHWC_int8_tensorcore.cuda", ((1, 4, 4, 64), (8, 1, 1, 32), 1, 0, 1, 2)).instantiate(
            autotune.FallbackConfig())


# --- the autotune templates ----------------------------------------------------------------------

TASKS = [
    ("conv2d_NHWC_int8_tensorcore.cuda", ((16, 14, 14, 64), (64, 3, 3, 64), 1, 1, 1)),
    ("conv2d_NHWC_int8_tensorcore.cuda", ((1, 9, 9, 96), (40, 1, 7, 96), 1, (0, 3, 0, 3), 1)),
    ("dense_int8_tensorcore.cuda", ((16, 2048), (1000, 2048))),
    ("dense_int8_tensorcore.cuda", ((1, 512), (64, 512))),
]


@pytest.mark.parametrize("name,args", TASKS, ids=lambda v: v if isinstance(v, str) else None)
def test_sampled_configs_of_the_space_lower_and_generate_cuda(name, args):
    task = autotune.Task(name, args)
    space = task.config_space
    assert len(space) > 0 and task.flop > 0
    pick = random.Random(len(space))
    valid = []
    for _ in range(20000):
        i = pick.randrange(len(space))
        if space.is_valid(i) and i not in valid:
            valid.append(i)
            if len(valid) == 4:
                break
    assert len(valid) == 4, "the filter rejects (nearly) every config"
    for i in valid:
        s, tensors = task.instantiate(space.get(i))
        src = _cuda_source(s, tensors)
        assert "mma.sync" in src, space.get(i)


@pytest.mark.parametrize("name,args", TASKS, ids=lambda v: v if isinstance(v, str) else None)
def test_fallback_is_the_default_config_and_in_the_space(name, args):
    task = autotune.Task(name, args)
    fb = autotune.FallbackConfig()
    _, tensors = task.template.func(fb, *task.args)
    out = tensors[-1]
    gemm = next(t for t in out.op.input_tensors if t.op.tag == "int8_gemm")
    want = default_config(gemm, out)
    assert {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in want.items()} == fb.values
    assert fb.index >= 0 and task.config_space.is_valid(task.config_space.get(fb.index))


def test_footprint_counts_a_warps_accumulators_over_its_32_lanes():
    from minitvm.topi.cuda.gemm_int8_tensorcore import footprint
    d = te.placeholder((64, 256), "int8", "d")
    w = te.placeholder((128, 256), "int8", "w")
    gemm = dense_int8_gemm(d, w).op.input_tensors[0]
    # a 64 x 32 warp tile of int32: 2048 accumulators, 64 per lane
    f = footprint(gemm, {"tile_m": [1, 1, 64], "tile_n": [4, 1, 4], "k_chunk": 2, "stages": 3, "vector": 4})
    assert f["acc_regs"] == 64 and f["threads"] == 32


def test_the_accumulator_tile_reuses_the_cp_async_ring_bytes():
    # dynamic shared memory (over 48 KB as separate buffers): the accumulator staging tile, written
    # after the k-loop and its closing barrier, starts where the operand ring starts
    d = te.placeholder((256, 512), "int8", "d")
    w = te.placeholder((256, 512), "int8", "w")
    out = dense_int8_gemm(d, w)
    cfg = {"tile_m": [2, 2, 64], "tile_n": [2, 2, 8], "k_chunk": 2, "stages": 3, "vector": 4}
    (kernel,) = minitvm.lower(schedule_int8_gemm(out, cfg), [d, w, out], target="cuda -arch=sm_90").kernels
    plan = kernel.shared
    by_name = {a.buffer.name: off for a, off in plan.offsets.items()}
    sizes = {a.buffer.name: int(a.buffer.shape[0].value) * (4 if a.buffer.dtype == "int32" else 1)
             for a in plan.offsets}
    acc = next(n for n in by_name if n.endswith("gemm.shared"))
    ring_a, ring_b = (n for n in by_name if n != acc)
    assert sum(sizes.values()) > 48 * 1024 and plan.dynamic_bytes < sum(sizes.values())
    assert by_name[acc] == 0 and 0 in (by_name[ring_a], by_name[ring_b])
    assert plan.dynamic_bytes == max(sizes[acc], sizes[ring_a] + sizes[ring_b])


@pytest.mark.parametrize("K,s,p,d", [(7, 2, 3, 1), (3, 1, 1, 1), (3, 2, 0, 1), (3, 1, 2, 2)])
def test_first_conv_folded_over_its_kernel_width_bit_exact_in_interpreter(K, s, p, d):
    """``fold_kernel_width`` (its CUDA kernel) then a K x 1 conv over 32 folded channels on the
    tensor cores equals the K x K conv over the 3 RGB channels."""
    from minitvm.topi.cuda.injective import schedule_injective
    from minitvm.topi.nn.conv2d_gemm import fold_kernel_width
    X = te.placeholder((2, 9, 11, 3), "int8", "X")
    F = fold_kernel_width(X, K, s, d, p, p)
    x = _int8(_shape(X))
    f = _interpret(schedule_injective(F), [X, F], [x])
    ow = _shape(F)[2]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (0, 0)))
    for kw in range(K):
        np.testing.assert_array_equal(f[..., kw * 3:kw * 3 + 3], xp[:, :, kw * d:kw * d + (ow - 1) * s + 1:s])
    assert not f[..., 3 * K:].any()
    k = _int8((16, K, K, 3))
    folded = np.zeros((16, K, 1, 32), np.int8)
    folded[..., :3 * K] = k.reshape(16, K, 1, 3 * K)
    FX = te.placeholder(_shape(F), "int8", "FX")
    W = te.placeholder(folded.shape, "int8", "W")
    Y = conv2d_NHWC_int8_gemm(FX, W, (s, 1), (p, 0, p, 0), (d, 1))
    y = _interpret(schedule_int8_gemm(Y, cfg={}), [FX, W, Y], [f, folded])
    w = Conv("rgb", 2, 3, 9, 11, 16, K, s, p, d)
    np.testing.assert_array_equal(y, _conv_reference(w, x, k))
