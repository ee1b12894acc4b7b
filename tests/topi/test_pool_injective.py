"""Pooling, injective ops and softmax computes vs numpy; their CPU schedules and the CPU conv /
dense schedules run; every CUDA schedule of these ops compiles with NVRTC (sm_90)."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import DtypeError, ScheduleError, ShapeError
from minitvm.topi import testing
from minitvm.topi.cpu import conv2d as cpu_conv
from minitvm.topi.cpu import dense as cpu_dense
from minitvm.topi.cpu import injective as cpu
from minitvm.topi.nn import injective as inj
from minitvm.topi.nn.conv2d import conv2d_nchw, conv2d_NCHWc_int8
from minitvm.topi.nn.dense import dense, dense_int8
from minitvm.topi.nn.elemwise import quantize_multiplier, relu, requantize
from minitvm.topi.nn.layout import layout_transform
from minitvm.topi.nn.pooling import avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d
from minitvm.topi.nn.softmax import log_softmax, softmax

rng = np.random.default_rng(2024)


def _shape(t):
    return tuple(int(d.value) for d in t.shape)


def _poison(t):
    if np.dtype(t.dtype).kind == "f":
        return np.full(_shape(t), np.nan, t.dtype)
    return np.full(_shape(t), 77, t.dtype)


def _build_run(s, inputs, outs, arrays, target="llvm"):
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    f = minitvm.build(s, list(inputs) + list(outs), target)
    res = [_poison(o) for o in outs]
    f(*arrays, *res)
    return res[0] if len(res) == 1 else res


def _rand(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 3).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape, dtype=dtype)


def _check(got, ref, dtype):
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, ref)


# ------------------------------------------------------------------------------------------
# pooling
# ------------------------------------------------------------------------------------------
POOLS = [  # (H, W, pool, stride, padding, ceil_mode, count_include_pad)
    (9, 9, 3, 2, 1, False, True),          # ResNet stem
    (9, 9, 3, 2, 1, True, False),
    (10, 7, 3, 2, 0, True, True),          # Inception: ceil, no padding
    (8, 8, 2, 2, 0, False, True),          # VGG
    (7, 7, 3, 1, 1, False, False),         # Inception avg 3x3 s1 p1, excluding padding
    (7, 7, 3, 1, 1, False, True),
    (11, 10, (3, 2), (2, 3), (1, 0, 2, 1), True, True),   # asymmetric everything
    (5, 5, 2, 3, 1, True, True),           # ceil mode drops a window starting in the padding
]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("case", POOLS, ids=lambda c: "x".join(str(v) for v in c[:2]) + f"_k{c[2]}s{c[3]}p{c[4]}"
                         + ("_ceil" if c[5] else "") + ("_cip" if c[6] else ""))
def test_pools_nchw_cpu_schedule(case, dtype):
    H, W, k, st, p, ceil, cip = case
    X = te.placeholder((2, 3, H, W), dtype, "X")
    x = _rand((2, 3, H, W), dtype)
    for kind in ("max", "avg"):
        Y = max_pool2d(X, k, st, p, ceil) if kind == "max" else avg_pool2d(X, k, st, p, ceil, cip)
        assert Y.dtype == dtype
        y = _build_run(cpu.schedule_pool(Y), [X], Y, [x])
        _check(y, testing.pool2d_nchw(x, kind, k, st, p, ceil, cip), dtype)


def test_pool_default_schedule_and_int8_rounding():
    """Default schedule; int8 averages of ties round half away from zero."""
    X = te.placeholder((1, 1, 2, 4), "int8", "X")
    x = np.array([[[[1, 2, -1, -2], [0, 0, 0, 0]]]], np.int8)        # window sums 3 and -3 over 2x2 -> 0.75
    Y = avg_pool2d(X, 2, 2)
    y = _build_run(te.create_schedule(Y.op), [X], Y, [x])
    np.testing.assert_array_equal(y, [[[[1, -1]]]])
    x = np.array([[[[1, 1, -1, -1], [0, 0, 0, 0]]]], np.int8)        # 0.5 and -0.5
    y = _build_run(te.create_schedule(Y.op), [X], Y, [x])
    np.testing.assert_array_equal(y, [[[[1, -1]]]])
    Xe = te.placeholder((1, 1, 3, 3), "int8", "Xe")
    Ye = max_pool2d(Xe, 3, 1, 1)                                      # padding is -128, never the max
    xe = np.full((1, 1, 3, 3), -128, np.int8)
    np.testing.assert_array_equal(_build_run(cpu.schedule_pool(Ye), [Xe], Ye, [xe]), xe)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_pools_nchwc(dtype):
    X = te.placeholder((2, 2, 9, 8, 4), dtype, "X")
    x = _rand((2, 8, 9, 8), dtype)
    xp = testing.pack_nchwc(x)
    for kind, Y in (("max", max_pool2d(X, 3, 2, 1, True, layout="NCHW4c")),
                    ("avg", avg_pool2d(X, 3, 2, 1, True, False, layout="NCHW4c"))):
        y = _build_run(cpu.schedule_pool(Y), [X], Y, [xp])
        _check(testing.unpack_nchwc(y), testing.pool2d_nchw(x, kind, 3, 2, 1, True, False), dtype)
    for kind, Y in (("max", global_max_pool2d(X, "NCHW4c")), ("avg", global_avg_pool2d(X, "NCHW4c"))):
        assert _shape(Y) == (2, 2, 1, 1, 4)
        y = _build_run(cpu.schedule_global_pool(Y), [X], Y, [xp])
        _check(testing.unpack_nchwc(y), testing.global_pool2d_nchw(x, kind), dtype)


@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8"])
def test_global_pools_nchw(dtype):
    X = te.placeholder((3, 5, 7, 6), dtype, "X")
    x = _rand((3, 5, 7, 6), dtype)
    for kind, Y in (("max", global_max_pool2d(X)), ("avg", global_avg_pool2d(X))):
        assert Y.dtype == dtype and _shape(Y) == (3, 5, 1, 1)
        _check(_build_run(cpu.schedule_global_pool(Y), [X], Y, [x]), testing.global_pool2d_nchw(x, kind), dtype)


def test_pool_with_epilogue_and_nhwc():
    X = te.placeholder((1, 6, 6, 3), "float32", "X")        # NHWC
    x = _rand((1, 6, 6, 3), "float32")
    Y = relu(avg_pool2d(X, 2, 2, layout="NHWC"))
    y = _build_run(cpu.schedule_pool(Y), [X], Y, [x])
    ref = testing.pool2d_nchw(x.transpose(0, 3, 1, 2), "avg", 2, 2).transpose(0, 2, 3, 1)
    _check(y, np.maximum(ref, 0), "float32")


def test_pool_reference_matches_onnxruntime():
    """The reference's ceil_mode / count_include_pad rules are PyTorch's (and ONNX Runtime's)."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper
    for H, k, st, p, ceil, cip in [(7, 3, 2, 1, True, False), (5, 2, 3, 1, True, True), (10, 3, 3, 1, True, True)]:
        x = _rand((1, 2, H, H), "float32")
        for kind in ("max", "avg"):
            attrs = dict(kernel_shape=[k, k], strides=[st, st], pads=[p] * 4, ceil_mode=int(ceil))
            if kind == "avg":
                attrs["count_include_pad"] = int(cip)
            node = helper.make_node("MaxPool" if kind == "max" else "AveragePool", ["x"], ["y"], **attrs)
            g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
            model = helper.make_model(g, ir_version=10, opset_imports=[helper.make_opsetid("", 19)])
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            got = ort.InferenceSession(model.SerializeToString(), opts).run(None, {"x": x})[0]
            ref = testing.pool2d_nchw(x, kind, k, st, p, ceil, cip)
            np.testing.assert_allclose(ref, got, rtol=1e-6, atol=1e-6)


def test_pool_errors_name_the_tensor():
    X = te.placeholder((1, 3, 8, 8), "float32", "feat")
    with pytest.raises(ShapeError, match="5 dimensions but feat"):
        max_pool2d(X, 3, layout="NCHW4c")
    with pytest.raises(ShapeError, match="padding"):
        max_pool2d(X, 2, 2, 2)
    with pytest.raises(ShapeError, match="pool_size"):
        avg_pool2d(X, 0)
    with pytest.raises(ShapeError, match="larger than the padded"):
        max_pool2d(X, 9)
    with pytest.raises(ShapeError, match="splits the H"):
        global_max_pool2d(te.placeholder((1, 3, 2, 8, 4), "float32", "Z"), "NCH4hW")
    with pytest.raises(DtypeError, match="feat_b.*bool"):
        max_pool2d(te.placeholder((1, 3, 8, 8), "bool", "feat_b"), 2)


# ------------------------------------------------------------------------------------------
# injective ops
# ------------------------------------------------------------------------------------------
BINARY = [(inj.add, np.add), (inj.subtract, np.subtract), (inj.multiply, np.multiply),
          (inj.maximum, np.maximum), (inj.minimum, np.minimum)]


@pytest.mark.parametrize("sa,sb", [((2, 3, 4, 5), (3, 1, 5)), ((4, 1), (1, 6)), ((5,), (2, 3, 5)),
                                   ((2, 1, 3, 1), (1, 4, 1, 7)), ((1,), (3, 2))])
def test_broadcast_binary_ops(sa, sb):
    A = te.placeholder(sa, "float32", "A")
    B = te.placeholder(sb, "float32", "B")
    a, b = _rand(sa, "float32"), _rand(sb, "float32")
    outs = [op(A, B) for op, _ in BINARY]
    got = _build_run(cpu.schedule_injective(outs), [A, B], outs, [a, b])
    for g, (_, ref) in zip(got, BINARY):
        _check(g, ref(a, b).astype("float32"), "float32")


def test_int8_binary_ops_wrap_and_scalars():
    A = te.placeholder((3, 8), "int8", "A")
    B = te.placeholder((8,), "int8", "B")
    a, b = _rand((3, 8), "int8"), _rand((8,), "int8")
    outs = [inj.add(A, B), inj.multiply(A, B), inj.subtract(5, A), inj.maximum(A, -3), inj.clip(A, -20, 30)]
    got = _build_run(cpu.schedule_injective(outs), [A, B], outs, [a, b])
    with np.errstate(over="ignore"):
        refs = [a + b, a * b, np.int8(5) - a, np.maximum(a, -3), np.clip(a, -20, 30)]
    for g, r in zip(got, refs):
        _check(g, r.astype(np.int8), "int8")


def test_binary_op_errors():
    A = te.placeholder((2, 3), "float32", "lhs")
    B = te.placeholder((4,), "float32", "rhs")
    with pytest.raises(ShapeError, match="lhs.*rhs.*axis 1"):
        inj.add(A, B)
    with pytest.raises(DtypeError, match="lhs is float32 but rhs8 is int8"):
        inj.multiply(A, te.placeholder((3,), "int8", "rhs8"))
    with pytest.raises(DtypeError, match="300"):
        inj.add(te.placeholder((3,), "int8", "q"), 300)
    with pytest.raises(DtypeError, match="bounds"):
        inj.clip(te.placeholder((3,), "int8", "q"), -1, 1000)


def test_cast_and_clip():
    X = te.placeholder((4, 9), "float32", "X")
    x = _rand((4, 9), "float32") * 20
    outs = [inj.cast(X, "int32"), inj.cast(inj.clip(X, -1.5, 2.5), "float32"), inj.cast(X, "int8")]
    got = _build_run(cpu.schedule_injective(outs), [X], outs, [x])
    _check(got[0], np.trunc(x).astype(np.int32), "int32")
    _check(got[1], np.clip(x, -1.5, 2.5), "float32")
    _check(got[2], np.trunc(x).astype(np.int32).astype(np.int8), "int8")


def test_reshape_flatten_transpose():
    X = te.placeholder((2, 3, 4, 5), "float32", "X")
    x = _rand((2, 3, 4, 5), "float32")
    outs = [inj.reshape(X, (6, -1)), inj.reshape(X, (2, 60)), inj.flatten(X), inj.transpose(X, (0, 2, 3, 1)),
            inj.transpose(X), inj.reshape(inj.transpose(X, (1, 0, 2, 3)), (3, 2, 20))]
    got = _build_run(cpu.schedule_injective(outs), [X], outs, [x])
    refs = [x.reshape(6, -1), x.reshape(2, 60), x.reshape(2, -1), x.transpose(0, 2, 3, 1), x.transpose(),
            x.transpose(1, 0, 2, 3).reshape(3, 2, 20)]
    for g, r in zip(got, refs):
        _check(g, r, "float32")
    with pytest.raises(ShapeError, match="X.*120 elements"):
        inj.reshape(X, (7, -1))
    with pytest.raises(ShapeError, match="permutation"):
        inj.transpose(X, (0, 0, 1, 2))


@pytest.mark.parametrize("axis", [0, 1, 3, -1, -3])
def test_concatenate(axis):
    shapes = [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)]
    shapes = [tuple((2 + k) if d == axis % 4 else s for d, s in enumerate(sh)) for k, sh in enumerate(shapes)]
    Ts = [te.placeholder(sh, "int8", f"T{k}") for k, sh in enumerate(shapes)]
    arrs = [_rand(sh, "int8") for sh in shapes]
    Y = inj.concatenate(Ts, axis)
    y = _build_run(cpu.schedule_injective(Y), Ts, Y, arrs)
    _check(y, np.concatenate(arrs, axis), "int8")


def test_concatenate_errors():
    A = te.placeholder((2, 3), "float32", "ca")
    with pytest.raises(ShapeError, match="cb.*axis 1"):
        inj.concatenate([A, te.placeholder((3, 4), "float32", "cb")], 0)
    with pytest.raises(DtypeError, match="cc is int8"):
        inj.concatenate([A, te.placeholder((2, 3), "int8", "cc")], 0)


@pytest.mark.parametrize("begin,end,strides,axes", [
    ((1, 0), (3, 4), None, None), ((0,), (10,), (2,), (3,)), ((-1,), (-100,), (-1,), (2,)),
    ((1, 2), (-1, 100), (2, 3), (1, 3)),
])
def test_strided_slice(begin, end, strides, axes):
    X = te.placeholder((4, 5, 6, 7), "float32", "X")
    x = _rand((4, 5, 6, 7), "float32")
    Y = inj.strided_slice(X, begin, end, strides, axes)
    y = _build_run(cpu.schedule_injective(Y), [X], Y, [x])
    sl = [slice(None)] * 4
    for k, a in enumerate(axes or range(len(begin))):
        sl[a] = slice(begin[k], end[k], strides[k] if strides else 1)
    _check(y, x[tuple(sl)], "float32")


def test_bias_scale_shift_batch_norm():
    X = te.placeholder((2, 6, 3, 4), "float32", "X")
    P = [te.placeholder((6,), "float32", n) for n in ("b", "g", "be", "m", "v")]
    x = _rand((2, 6, 3, 4), "float32")
    b, g, be, m = (_rand((6,), "float32") for _ in range(4))
    v = rng.random(6).astype("float32") + 0.1
    bn = inj.batch_norm_inference(X, P[1], P[2], P[3], P[4], 1e-3)
    outs = [inj.bias_add(X, P[0]), inj.scale_shift(X, P[1], P[2]), bn, inj.bias_add(X, P[0], axis=-3)]
    got = _build_run(cpu.schedule_injective(outs), [X] + P, outs, [x, b, g, be, m, v])
    c = (slice(None), None, None)
    _check(got[0], x + b[c], "float32")
    _check(got[1], x * g[c] + be[c], "float32")
    np.testing.assert_allclose(got[2], (x - m[c]) / np.sqrt(v[c] + 1e-3) * g[c] + be[c], rtol=1e-5, atol=1e-5)
    _check(got[3], x + b[c], "float32")


def test_bias_add_packed_and_errors():
    X = te.placeholder((1, 2, 3, 3, 4), "int32", "X")
    B = te.placeholder((2, 4), "int32", "B")
    x, b = _rand((1, 2, 3, 3, 4), "int32") // 4, _rand((2, 4), "int32") // 4
    Y = inj.bias_add(X, B, axis=(1, 4))
    _check(_build_run(cpu.schedule_injective(Y), [X, B], Y, [x, b]), x + b[None, :, None, None, :], "int32")
    with pytest.raises(ShapeError, match="bias badb"):
        inj.bias_add(X, te.placeholder((3,), "int32", "badb"))
    with pytest.raises(DtypeError, match="bias fb is float32"):
        inj.bias_add(X, te.placeholder((2,), "float32", "fb"))
    with pytest.raises(DtypeError, match="float"):
        inj.batch_norm_inference(X, *[te.placeholder((2,), "int32") for _ in range(4)])


def test_injective_schedule_inlines_layout_and_pad():
    """A pad-only and a layout-transform-only graph: one fused loop nest, no intermediate buffer."""
    X = te.placeholder((1, 6, 5, 5), "int8", "X")
    P = layout_transform(X, "NCHW", "NCHW4c")
    from minitvm.topi.nn.conv2d import pad
    Q = pad(P, (0, 0, 1, 1, 0), (0, 0, 1, 1, 0))
    x = _rand((1, 6, 5, 5), "int8")
    s = cpu.schedule_injective(Q)
    assert "allocate" not in str(minitvm.lower(s, [X, Q], simple_mode=True))
    q = _build_run(s, [X], Q, [x])
    _check(q, np.pad(testing.pack_nchwc(x), ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0))), "int8")


def test_injective_schedule_rejects_reductions():
    X = te.placeholder((1, 3, 4, 4), "float32", "X")
    with pytest.raises(ScheduleError, match="reduction"):
        cpu.schedule_injective(relu(max_pool2d(X, 2)))


# ------------------------------------------------------------------------------------------
# softmax
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,axis", [((4, 1000), -1), ((2, 5, 3, 3), 1), ((7,), 0), ((3, 4, 6), 2)])
def test_softmax_log_softmax(shape, axis):
    X = te.placeholder(shape, "float32", "X")
    x = _rand(shape, "float32") * 5
    for fn, ref in ((softmax, testing.softmax), (log_softmax, testing.log_softmax)):
        Y = fn(X, axis)
        y = _build_run(cpu.schedule_softmax(Y), [X], Y, [x])
        np.testing.assert_allclose(y, ref(x, axis), rtol=1e-5, atol=1e-6)
    big = np.full(shape, 1000.0, np.float32)                        # max-subtracted: no overflow
    Y = softmax(X, axis)
    y = _build_run(te.create_schedule(Y.op), [X], Y, [big])
    np.testing.assert_allclose(y, testing.softmax(big, axis), rtol=1e-6)


def test_softmax_errors():
    with pytest.raises(DtypeError, match="logits.*int8"):
        softmax(te.placeholder((2, 3), "int8", "logits"))
    with pytest.raises(ShapeError, match="axis 2"):
        softmax(te.placeholder((2, 3), "float32", "logits"), axis=2)


# ------------------------------------------------------------------------------------------
# CPU conv / dense schedules
# ------------------------------------------------------------------------------------------
CONVS = [  # (N, C, H, W, O, K, stride, pad, dilation, groups)
    (1, 3, 23, 23, 16, 7, 2, 3, 1, 1),
    (2, 16, 14, 14, 32, 3, 1, 1, 1, 1),
    (1, 16, 9, 11, 24, 3, 2, 1, 1, 1),
    (1, 32, 7, 7, 16, 1, 1, 0, 1, 1),
    (1, 16, 10, 10, 16, 3, 1, 2, 2, 1),
    (1, 32, 8, 8, 32, 3, 1, 1, 1, 8),      # grouped (ResNeXt)
    (1, 8, 8, 8, 8, 3, 1, 1, 1, 8),        # depthwise
    (1, 4, 13, 149, 8, 3, 1, 0, 1, 1),     # a width with no good divisor
]


@pytest.mark.parametrize("w", CONVS, ids=lambda w: "_".join(map(str, w)))
def test_cpu_conv2d_nchw(w):
    N, C, H, W, O, K, st, p, d, g = w
    X = te.placeholder((N, C, H, W), "float32", "X")
    Wt = te.placeholder((O, C // g, K, K), "float32", "W")
    B = te.placeholder((O,), "float32", "B")
    Y = relu(inj.bias_add(conv2d_nchw(X, Wt, st, p, d, g), B))
    x, wt, b = _rand((N, C, H, W), "float32"), _rand((O, C // g, K, K), "float32"), _rand((O,), "float32")
    y = _build_run(cpu_conv.schedule_conv2d_nchw(Y), [X, Wt, B], Y, [x, wt, b])
    ref = np.maximum(testing.conv2d_nchw(x, wt, st, p, d, g, acc_dtype=np.float64) + b[:, None, None], 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)


def test_cpu_conv2d_nchw_without_epilogue_and_knobs():
    X = te.placeholder((1, 8, 12, 12), "float32", "X")
    Wt = te.placeholder((12, 8, 3, 3), "float32", "W")
    Y = conv2d_nchw(X, Wt, 1, 1)
    x, wt = _rand((1, 8, 12, 12), "float32"), _rand((12, 8, 3, 3), "float32")
    ref = testing.conv2d_nchw(x, wt, 1, 1, acc_dtype=np.float64)
    for cfg in (None, {"oc_block": 4, "ow_block": 6}, {"oc_block": 3, "ow_block": 5}):
        y = _build_run(cpu_conv.schedule_conv2d_nchw(Y, cfg), [X, Wt], Y, [x, wt])
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)
    with pytest.raises(ScheduleError, match="oc_block"):
        cpu_conv.schedule_conv2d_nchw(Y, {"oc_block": 5})


@pytest.mark.parametrize("w", [(1, 16, 9, 9, 16, 3, 1, 1, 1), (2, 8, 7, 10, 8, 3, 2, 1, 1),
                               (1, 32, 6, 6, 16, 1, 1, 0, 1), (1, 16, 8, 8, 32, 3, 1, 1, 4)],
                         ids=lambda w: "_".join(map(str, w)))
def test_cpu_conv2d_NCHWc_int8_dp4a(w):
    """int8 packed conv on the CPU with dp4a, requantize + relu epilogue: bit-exact."""
    N, C, H, W, O, K, st, p, g = w
    X = te.placeholder((N, C // 4, H, W, 4), "int8", "X")
    Wt = te.placeholder((O // 4, C // 4 // g, K, K, 4, 4), "int8", "W")
    m, sh = quantize_multiplier(0.0023)
    Y = relu(requantize(conv2d_NCHWc_int8(X, Wt, st, p, 1, g), m, sh))
    s = cpu_conv.schedule_conv2d_NCHWc_int8(Y)
    x, wt = _rand((N, C, H, W), "int8"), _rand((O, C // g, K, K), "int8")
    y = _build_run(s, [X, Wt], Y, [testing.pack_nchwc(x), testing.pack_oihw(wt)])
    ref = np.maximum(testing.requantize(testing.conv2d_nchw(x, wt, st, p, 1, g), m, sh), 0)
    np.testing.assert_array_equal(testing.unpack_nchwc(y), ref)


def test_cpu_conv2d_NCHWc_int8_with_layout_transforms_in_graph():
    X = te.placeholder((1, 6, 7, 7), "int8", "X")
    K = te.placeholder((8, 6, 3, 3), "int8", "K")
    Y = conv2d_NCHWc_int8(layout_transform(X, "NCHW", "NCHW4c"), layout_transform(K, "OIHW", "OIHW4o4i"), 1, 1)
    assert "dp4a" in str(minitvm.lower(cpu_conv.schedule_conv2d_NCHWc_int8(Y), [X, K, Y], simple_mode=True))
    x, k = _rand((1, 6, 7, 7), "int8"), _rand((8, 6, 3, 3), "int8")
    y = _build_run(cpu_conv.schedule_conv2d_NCHWc_int8(Y), [X, K], Y, [x, k])
    np.testing.assert_array_equal(testing.unpack_nchwc(y), testing.conv2d_nchw(x, k, 1, 1))


@pytest.mark.parametrize("M,N,K,dtype", [(1, 10, 16, "float32"), (4, 24, 40, "float32"), (3, 7, 12, "int8"),
                                         (16, 20, 64, "int8")])
def test_cpu_dense(M, N, K, dtype):
    A = te.placeholder((M, K), dtype, "A")
    W = te.placeholder((N, K), dtype, "W")
    if dtype == "int8":
        B = te.placeholder((N,), "int32", "B")
        m, sh = quantize_multiplier(0.004)
        C = relu(requantize(dense_int8(A, W, B), m, sh))
    else:
        B = te.placeholder((N,), dtype, "B")
        C = relu(dense(A, W, B))
    s = cpu_dense.schedule_dense(C)
    a, w = _rand((M, K), dtype), _rand((N, K), dtype)
    b = _rand((N,), B.dtype) // (1 if dtype == "float32" else 1024)
    c = _build_run(s, [A, W, B], C, [a, w, b])
    if dtype == "int8":
        assert "dp4a" in str(minitvm.lower(s, [A, W, B, C], simple_mode=True))
        acc = a.astype(np.int64) @ w.astype(np.int64).T + b
        np.testing.assert_array_equal(c, np.maximum(testing.requantize(acc, m, sh), 0))
    else:
        np.testing.assert_allclose(c, np.maximum(a.astype(np.float64) @ w.astype(np.float64).T + b, 0),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("M,N,K", [(1, 40, 24), (6, 7, 5)])
def test_cpu_dense_schedule_on_matmul(M, N, K):
    """The graph uses the CPU dense schedule for 2-D matmul (B read as [k, j]) too."""
    from minitvm.topi.nn import matmul
    A = te.placeholder((M, K), "float32", "A")
    B = te.placeholder((K, N), "float32", "B")
    C = relu(matmul(A, B))
    a, b = _rand((M, K), "float32"), _rand((K, N), "float32")
    c = _build_run(cpu_dense.schedule_dense(C), [A, B], C, [a, b])
    np.testing.assert_allclose(c, np.maximum(a.astype(np.float64) @ b, 0), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------
# CUDA schedules compile (NVRTC, no GPU needed)
# ------------------------------------------------------------------------------------------
def _nvrtc_available() -> bool:
    try:
        from minitvm.runtime.cuda import nvrtc_version
        nvrtc_version()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_nvrtc = pytest.mark.skipif(not _nvrtc_available(), reason="NVRTC is not available")


def _cuda_cases():
    from minitvm.topi.cuda import injective as ci
    from minitvm.topi.cuda import reduction as cr
    from minitvm.topi.nn.conv2d import pad

    def c_pool():
        X = te.placeholder((2, 16, 17, 17), "float32", "X")
        outs = relu(max_pool2d(X, 3, 2, 1, True))
        return cr.schedule_pool(outs), [X], outs

    def c_avg_int8_nchwc():
        X = te.placeholder((1, 4, 9, 9, 4), "int8", "X")
        outs = avg_pool2d(X, 3, 1, 1, False, False, layout="NCHW4c")
        return cr.schedule_pool(outs), [X], outs

    def c_global():
        X = te.placeholder((2, 64, 7, 7), "int8", "X")
        outs = global_avg_pool2d(X)
        return cr.schedule_global_pool(outs), [X], outs

    def c_global_max_nchwc():
        X = te.placeholder((1, 8, 7, 7, 4), "float32", "X")
        outs = global_max_pool2d(X, "NCHW4c")
        return cr.schedule_global_pool(outs), [X], outs

    def c_softmax():
        X = te.placeholder((16, 1000), "float32", "X")
        outs = softmax(X)
        return cr.schedule_softmax(outs), [X], outs

    def c_log_softmax_axis1():
        X = te.placeholder((2, 10, 3, 3), "float32", "X")
        outs = log_softmax(X, 1)
        return cr.schedule_softmax(outs), [X], outs

    def c_broadcast():
        A = te.placeholder((2, 64, 14, 14), "float32", "A")
        B = te.placeholder((64, 1, 1), "float32", "B")
        outs = relu(inj.add(A, B))
        return ci.schedule_injective(outs), [A, B], outs

    def c_layout_pad():
        X = te.placeholder((1, 3, 224, 224), "int8", "X")
        outs = pad(layout_transform(X, "NCHW", "NCHW4c"), (0, 0, 3, 3, 0), (0, 0, 3, 3, 0))
        return ci.schedule_injective(outs), [X], outs

    def c_concat_transpose():
        A = te.placeholder((1, 8, 5, 5), "int8", "A")
        B = te.placeholder((1, 4, 5, 5), "int8", "B")
        outs = [inj.concatenate([A, B], 1), inj.transpose(A, (0, 2, 3, 1))]
        return ci.schedule_injective(outs), [A, B], outs

    def c_flatten_cast():
        A = te.placeholder((2, 512, 1, 1), "int8", "A")
        outs = inj.cast(inj.flatten(A), "float32")
        return ci.schedule_injective(outs), [A], outs

    return {k[2:]: v for k, v in locals().items() if k.startswith("c_")}


CUDA_CASES = _cuda_cases()


@needs_nvrtc
@pytest.mark.parametrize("name", sorted(CUDA_CASES))
def test_cuda_schedules_compile(name):
    s, inputs, outs = CUDA_CASES[name]()
    outs = outs if isinstance(outs, list) else [outs]
    mod = minitvm.build(s, inputs + outs, "cuda -arch=sm_90")
    src = mod.get_source()
    assert "__global__" in src and "blockIdx.x" in src
    assert mod.cubin[:4] == b"\x7fELF"
