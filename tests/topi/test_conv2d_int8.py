"""int8 conv2d in packed layouts: computes on the CPU bit-exact, CUDA templates compile."""
import re

import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import DtypeError, ShapeError
from minitvm.topi import testing
from minitvm.topi.cuda.conv2d_int8 import schedule_conv2d_NCHWc_int8
from minitvm.topi.generic.tensor_intrin import dp4a
from minitvm.topi.nn.conv2d import conv2d_NCHWc_int8
from minitvm.topi.nn.elemwise import quantize_multiplier, relu, requantize
from minitvm.topi.nn.layout import layout_transform
from minitvm.topi.workloads import Conv, resnet50_convs, seed_model_convs, unique

rng = np.random.default_rng(11)

ODD = [
    Conv("rgb", 3, 3, 11, 11, 8, 7, 2, 3),            # C=3 padded to 4, 7x7, batch 3
    Conv("c6", 1, 6, 9, 9, 8, 3, 1, 1),               # C=6 padded to 8
    Conv("s2d2", 2, 16, 13, 13, 16, 3, 2, 2, 2),      # stride 2 with dilation 2
    Conv("1x1", 1, 32, 7, 7, 16, 1),
    Conv("grouped", 1, 32, 8, 8, 32, 3, 1, 1, 1, 2),
]


def _cpu_conv(w, epilogue=False):
    """Unpacked int8 in, unpacked result out; the conv tensorized with dp4a on the CPU."""
    X = te.placeholder((w.N, w.C, w.H, w.W), "int8", "X")
    K = te.placeholder((w.O, w.C // w.groups, w.K, w.kw), "int8", "K")
    Xp = layout_transform(X, "NCHW", "NCHW4c")
    Kp = layout_transform(K, "OIHW", "OIHW4o4i")
    Y = conv2d_NCHWc_int8(Xp, Kp, w.stride, w.padding, w.dilation, w.groups)
    out = Y
    if epilogue:
        m, sh = quantize_multiplier(0.0021)
        out = relu(requantize(Y, m, sh))
    U = layout_transform(out, "NCHW4c", "NCHW", {"C": w.O})
    s = te.create_schedule(U.op)
    s[Y].tensorize(s[Y].op.reduce_axis[-1], dp4a())
    return minitvm.build(s, [X, K, U], "llvm"), U


def _check_cpu(w, epilogue=False):
    mod, U = _cpu_conv(w, epilogue)
    x = rng.integers(-128, 128, (w.N, w.C, w.H, w.W), dtype=np.int8)
    k = rng.integers(-128, 128, (w.O, w.C // w.groups, w.K, w.kw), dtype=np.int8)
    y = np.full([int(d.value) for d in U.shape], -99, U.dtype)
    mod(x, k, y)
    ref = testing.conv2d_nchw(x, k, w.stride, w.padding, w.dilation, w.groups)
    if epilogue:
        m, sh = quantize_multiplier(0.0021)
        ref = np.maximum(testing.requantize(ref, m, sh), 0)
    np.testing.assert_array_equal(y, ref.astype(y.dtype))


@pytest.mark.parametrize("w", ODD, ids=lambda w: w.name)
def test_odd_shapes_bit_exact_on_cpu(w):
    _check_cpu(w)


def test_requantize_relu_epilogue_bit_exact_on_cpu():
    _check_cpu(Conv("epi", 2, 16, 6, 6, 8, 3, 1, 1), epilogue=True)


def _model_workloads(batch):
    """Distinct conv shapes of the seed models, shrunk spatially so the CPU run stays fast."""
    seen, out = set(), []
    for w, _ in unique(seed_model_convs(batch)):
        side = max(9, (w.K - 1) * w.dilation + 1, (w.kw - 1) * w.dilation + 1)
        small = Conv(w.name, w.N, w.C, min(w.H, side), min(w.W, side), w.O, w.K, w.stride, w.pad, w.dilation,
                     w.groups, w.KW, w.pad_w)
        key = small.key()
        if key not in seen:
            seen.add(key)
            out.append(small)
    return out


@pytest.mark.parametrize("w", _model_workloads(1), ids=lambda w: w.name)
def test_seed_model_workloads_bit_exact_on_cpu(w):
    """Every distinct conv of ResNet-50, VGG-19, Inception V3, ResNeXt-50 and DRN-C-26 (batch 1)."""
    _check_cpu(w)


@pytest.mark.parametrize("w", _model_workloads(16)[::12], ids=lambda w: w.name)
def test_seed_model_workloads_batch16_on_cpu(w):
    _check_cpu(Conv(w.name, w.N, w.C, min(w.H, 5), min(w.W, 5), w.O, w.K, w.stride, min(w.pad, 2), w.dilation,
                    w.groups, w.KW, min(w.pw, 2) if w.pad_w >= 0 else -1))


def test_bad_shapes_are_rejected():
    X = te.placeholder((1, 4, 8, 8, 4), "int8", "X")
    K = te.placeholder((4, 3, 3, 3, 4, 4), "int8", "K")
    with pytest.raises(ShapeError, match="input channel blocks"):
        conv2d_NCHWc_int8(X, K, 1, 1)
    Kf = te.placeholder((4, 4, 3, 3, 4, 4), "float32", "Kf")
    with pytest.raises(DtypeError, match="int8"):   # a dtype mismatch is a DtypeError, not a ShapeError
        conv2d_NCHWc_int8(X, Kf, 1, 1)
    with pytest.raises(ShapeError, match="groups"):
        conv2d_NCHWc_int8(X, te.placeholder((4, 4, 3, 3, 4, 4), "int8"), 1, 1, groups=3)


def _cuda_source(w, epilogue):
    data_shape, kernel_shape = w.packed_shapes()
    X = te.placeholder(data_shape, "int8", "X")
    K = te.placeholder(kernel_shape, "int8", "K")
    Y = conv2d_NCHWc_int8(X, K, w.stride, w.padding, w.dilation, w.groups)
    out = relu(requantize(Y, *quantize_multiplier(0.01))) if epilogue else Y
    s = schedule_conv2d_NCHWc_int8(out)
    return minitvm.build(s, [X, K, out], "cuda -arch=sm_80"), minitvm.build(s, [X, K, out], "cuda -arch=sm_90")


@pytest.mark.slow  # NVRTC builds of full-size ResNet-50 layers
@pytest.mark.parametrize("w", [c for c, _ in unique(resnet50_convs(16))][::4] + ODD[2:], ids=lambda w: w.name)
def test_cuda_template_compiles_with_dp4a(w):
    m80, m90 = _cuda_source(w, epilogue=w.name.endswith("conv3"))
    assert "__dp4a" in m90.get_source()
    assert m80.cubin and m90.cubin


def _interpret_cuda_conv(w, knobs, seed=0):
    """Lower the CUDA template under ``knobs`` and run it in the SIMT interpreter on the CPU."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
    import kernel_interp
    from minitvm.topi.cuda.conv2d_int8 import _conv_args, reference
    args = _conv_args(*w.packed_shapes(), w.stride, w.padding, w.dilation, w.groups)
    X = te.placeholder(args[0], "int8", "X")
    K = te.placeholder(args[1], "int8", "K")
    Y = conv2d_NCHWc_int8(X, K, w.stride, w.padding, w.dilation, w.groups)
    s = schedule_conv2d_NCHWc_int8(Y, cfg=knobs)
    f = minitvm.lower(s, [X, K, Y], name="conv")
    x = rng.integers(-128, 128, args[0], dtype=np.int8)
    k = rng.integers(-128, 128, args[1], dtype=np.int8)
    y = np.full([int(d.value) for d in Y.shape], -7, np.int32)
    kernel_interp.run_func(f, [x, k, y], seed=seed)
    np.testing.assert_array_equal(y, reference([x, k], *args)[0])


@pytest.mark.slow  # the SIMT interpreter
def test_cuda_template_per_channel_requantize_epilogue_exact_in_interpreter():
    """The epilogue is vector code (lets, int64 lanes, per-lane shifts, one char4 store)."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "codegen"))
    import kernel_interp
    from minitvm.graph.quantize import multiplier_shift, requantize_per_channel_np
    from minitvm.topi.nn.qnn import requantize_per_channel
    N, C, H, W, O = 2, 8, 4, 6, 16
    X = te.placeholder((N, C // 4, H, W, 4), "int8", "X")
    K = te.placeholder((O // 4, C // 4, 3, 3, 4, 4), "int8", "K")
    M = te.placeholder((O,), "int32", "M")
    S = te.placeholder((O,), "int32", "S")
    out = relu(requantize_per_channel(conv2d_NCHWc_int8(X, K, 1, 1), M, S, packed=True))
    s = schedule_conv2d_NCHWc_int8(out, cfg={"tile_f": [1, 1, 2, 2], "tile_n": [1, 1, 2, 1]})
    f = minitvm.lower(s, [X, K, M, S, out], name="conv")
    assert "int64x4" in str(f) and "relu[ramp(" in str(f)
    x = rng.integers(-128, 128, (N, C, H, W), dtype=np.int8)
    k = rng.integers(-128, 128, (O, C, 3, 3), dtype=np.int8)
    ms = np.array([multiplier_shift(float(v)) for v in rng.uniform(1e-4, 0.01, O)], np.int32)
    y = np.full([int(d.value) for d in out.shape], 99, np.int8)
    kernel_interp.run_func(f, [testing.pack_nchwc(x), testing.pack_oihw(k), ms[:, 0].copy(), ms[:, 1].copy(), y])
    ref = np.maximum(requantize_per_channel_np(testing.conv2d_nchw(x, k, 1, 1), ms[:, 0], ms[:, 1]), 0)
    np.testing.assert_array_equal(testing.unpack_nchwc(y), ref)


_SMALL = Conv("small", 2, 8, 4, 6, 8, 3, 1, 1)
_SMALL_1x1 = Conv("small_1x1", 2, 8, 4, 6, 8, 1)


def test_unstaged_padded_data_is_refused():
    with pytest.raises(minitvm.errors.ScheduleError, match="cache_data"):
        _interpret_cuda_conv(_SMALL, {"cache_data": False})


@pytest.mark.slow  # the SIMT interpreter, per knob set
@pytest.mark.parametrize("knobs", [
    {"fuse_yx": False},
    {"double_buffer": True},
    {"double_buffer": True, "fuse_yx": False, "tile_rc": [2, 1], "tile_ry": [3, 1], "tile_rx": [1, 3]},
    {"double_buffer": True, "cache_weight": False},
    {"cache_data": False, "cache_weight": False},
    {"cache_data": False, "double_buffer": True, "fuse_yx": False},
    {"vector_weight": 16},
    {"vector_weight": 16, "double_buffer": True, "fuse_yx": False},
], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_cuda_template_knobs_race_free_and_exact_in_interpreter(knobs):
    """Each knob's kernel, run under random thread orders, equals numpy: no missing barrier."""
    w = _SMALL_1x1 if not knobs.get("cache_data", True) else _SMALL
    for seed in (0, 1):
        _interpret_cuda_conv(w, dict(knobs, tile_n=[1, 1, 2, 1], tile_f=[1, 1, 2, 1],
                                          tile_y=[2, 1, 2, 1], tile_x=[1, 2, 3, 1]), seed)


@pytest.mark.slow  # every knob value through NVRTC: minutes on 2 cores
def test_cuda_template_every_knob_value_compiles():
    """Configs drawn from the whole space (every knob value shows up) NVRTC-compile for sm_90."""
    from minitvm import autotune
    w = next(c for c, _ in unique(resnet50_convs(16)) if c.K == 1 and c.stride == 1 and c.H == 28)
    task = autotune.Task("conv2d_NCHWc_int8.cuda", (*w.packed_shapes(), w.stride, w.padding), target="cuda")
    space = task.config_space
    r = np.random.default_rng(3)
    seen = set()
    picked = 0
    for idx in r.integers(0, len(space), 60000):
        cfg = space.get(int(idx))
        if not space.is_valid(cfg):
            continue
        key = tuple(cfg[k].val for k in ("fuse_yx", "double_buffer", "cache_data", "cache_weight", "vector_weight",
                                         "vector_data"))
        if key in seen:
            continue
        seen.add(key)
        s, tensors = task.instantiate(cfg)
        m = minitvm.build(s, tensors, "cuda -arch=sm_90")
        assert "__dp4a" in m.get_source() and m.cubin
        picked += 1
    # filtered out: double buffering with nothing staged, a fetch width for unstaged weights (22 of
    # the 32 combinations with 4-byte data fetches are left), wide fetches of unstaged data (12 of 32)
    assert picked == 22 + 12


def test_register_tile_loops_unroll_whatever_the_unroll_knobs():
    # the accumulators stay in registers only if indexed by constants
    X = te.placeholder((2, 2, 4, 6, 4), "int8", "X")
    K = te.placeholder((2, 2, 3, 3, 4, 4), "int8", "K")
    Y = conv2d_NCHWc_int8(X, K, 1, 1, 1, 1)
    s = schedule_conv2d_NCHWc_int8(Y, cfg={"auto_unroll_max_step": 0, "unroll_explicit": False,
                                           "tile_n": [1, 1, 1, 2], "tile_f": [1, 1, 1, 2]})
    text = str(minitvm.lower(s, [X, K, Y]))
    assert "unrolled for (n.c" in text and "unrolled for (obk.c" in text     # accumulate
    assert "unrolled for (n.inner" in text and "unrolled for (oc.inner" in text  # write back,
    assert "conv2d_NCHWc_int8[ramp(" in text                                  # a vector per block
    assert "unrolled for (ic_chunk" not in text                             # the reduction is a knob's


def test_search_space_leaves_out_slow_to_compile_explicit_unrolls():
    from minitvm import autotune
    task = autotune.Task("conv2d_NCHWc_int8.cuda", ((16, 16, 28, 28, 4), (32, 16, 1, 1, 4, 4), 1, 0), target="cuda")
    space = task.config_space
    r = np.random.default_rng(5)
    valid = [space.get(int(i)) for i in r.integers(0, len(space), 20000) if space.is_valid(int(i))]
    pairs = {(c["auto_unroll_max_step"].val, c["unroll_explicit"].val) for c in valid}
    assert pairs == {(0, False), (0, True), (512, False), (1500, False)}


_SMALL_1x1_W8 = Conv("small_1x1_w8", 2, 8, 4, 8, 8, 1)


@pytest.mark.parametrize("knobs", [
    {},
    {"double_buffer": True},
    {"fuse_yx": False, "vector_weight": 16},
    {"double_buffer": True, "fuse_yx": False, "tile_rc": [2, 1]},
], ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "plain")
def test_wide_data_fetch_race_free_and_exact_in_interpreter(knobs):
    """vector_data=16: each thread stages 4 neighbouring pixels (one 128-bit load and store)."""
    for seed in (0, 1):
        _interpret_cuda_conv(_SMALL_1x1_W8, dict(knobs, vector_data=16, tile_n=[1, 1, 2, 1], tile_f=[1, 1, 2, 1],
                                                   tile_y=[2, 1, 2, 1], tile_x=[2, 1, 2, 2]), seed)


def test_wide_data_fetch_is_one_128_bit_copy():
    X = te.placeholder((2, 2, 4, 8, 4), "int8", "X")
    K = te.placeholder((2, 2, 1, 1, 4, 4), "int8", "K")
    Y = conv2d_NCHWc_int8(X, K, 1, 0, 1, 1)
    s = schedule_conv2d_NCHWc_int8(Y, cfg={"vector_data": 16, "tile_x": [2, 1, 2, 2]})
    src = minitvm.build(s, [X, K, Y], "cuda -arch=sm_90").get_source()
    assert re.search(r"\*\(int4\*\)\(X_shared \+ .*\) = \*\(int4\*\)\(X \+ ", src)


@pytest.mark.parametrize("w,knobs,why", [
    (_SMALL, {"vector_data": 16, "tile_x": [1, 2, 3, 1]}, "no padding"),                # padded
    (_SMALL_1x1_W8, {"vector_data": 16, "tile_x": [4, 1, 2, 1]}, r"tile_x \[4, 1, 2, 1\]"),  # 2 columns
    (_SMALL_1x1_W8, {"vector_data": 16, "cache_data": False}, "cache_data"),
    (_SMALL_1x1_W8, {"vector_data": 8}, "vector_data.*4 or 16"),
    (_SMALL_1x1_W8, {"vector_weight": 32}, "vector_weight.*4 or 16"),
])
def test_fetch_width_refused_where_unsupported_or_unaligned(w, knobs, why):
    with pytest.raises(minitvm.errors.ScheduleError, match=why):
        _interpret_cuda_conv(w, knobs)


def test_workload_packed_shapes_pad_the_input_channels():
    rgb, grouped = ODD[0], Conv("g", 2, 64, 14, 14, 128, 3, 1, 1, groups=4)
    assert rgb.packed_shapes() == ((3, 1, 11, 11, 4), (2, 1, 7, 7, 4, 4))
    assert grouped.packed_shapes() == ((2, 16, 14, 14, 4), (32, 4, 3, 3, 4, 4))
