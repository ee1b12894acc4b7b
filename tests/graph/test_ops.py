"""The op registry: type inference, numpy references, attribute and shape errors."""
import itertools
import math

import numpy as np
import pytest

from minitvm.errors import DtypeError, GraphError, ShapeError
from minitvm.graph import Graph, get_op, list_ops, run_reference
from minitvm.graph.ops import deformable_conv2d_np, layout_transform_np
from minitvm.topi import testing as tt

RNG = np.random.default_rng(1)


def run_op(op, arrays, attrs=None, name="op"):
    """Build a one-op graph over constant-free inputs and run it with the reference executor."""
    g = Graph(op)
    names = [g.add_input(f"in{i}", a.shape, a.dtype.name) for i, a in enumerate(arrays)]
    out = g.add_op(op, names, attrs or {}, name=name)
    g.mark_output(out)
    return run_reference(g, {n: a for n, a in zip(names, arrays)})[0], g.node(out)


def rand(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def test_registry_lists_required_ops():
    need = {"conv2d", "dense", "matmul", "batch_norm", "bias_add", "relu", "clip", "add", "mul", "sub",
            "max_pool2d", "avg_pool2d", "global_avg_pool2d", "global_max_pool2d", "concatenate", "flatten",
            "reshape", "softmax", "pad", "deformable_conv2d", "layout_transform"}
    assert need <= set(list_ops())
    for op in list_ops():
        assert get_op(op).compute and get_op(op).infer


# ---------------------------------------------------------------------- conv2d
@pytest.mark.parametrize("stride,pad,dil,groups", [
    (1, 0, 1, 1), (2, 1, 1, 1), (1, (1, 2, 0, 1), 1, 1), (1, 2, 2, 1), (2, 1, 1, 2), (1, 1, 1, 4)])
def test_conv2d_matches_topi_reference(stride, pad, dil, groups):
    x = RNG.integers(-5, 5, (2, 4, 9, 10)).astype("float32")
    w = RNG.integers(-3, 3, (8, 4 // groups, 3, 3)).astype("float32")
    out, node = run_op("conv2d", [x, w], {"strides": stride, "padding": pad, "dilation": dil, "groups": groups})
    ref = tt.conv2d_nchw(x.astype(np.int64), w.astype(np.int64), stride, pad, dil, groups)
    assert out.shape == ref.shape == node.type.shape
    np.testing.assert_array_equal(out, ref.astype("float32"))


def test_conv2d_pair_strides_dilation_and_bias():
    x, w, b = rand(1, 3, 11, 9), rand(5, 3, 3, 2), rand(5)
    out, node = run_op("conv2d", [x, w, b], {"strides": (2, 1), "dilation": (1, 2), "padding": (1, 0)})
    ref = np.zeros(node.type.shape)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (0, 0)))
    for o, y, xx in itertools.product(range(5), range(node.type.shape[2]), range(node.type.shape[3])):
        patch = xp[0, :, 2 * y:2 * y + 3, xx:xx + 3:2]
        ref[0, o, y, xx] = (patch * w[o]).sum() + b[o]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_conv2d_int8_out_dtype():
    x = RNG.integers(-128, 128, (1, 8, 5, 5)).astype("int8")
    w = RNG.integers(-128, 128, (4, 8, 3, 3)).astype("int8")
    out, node = run_op("conv2d", [x, w], {"padding": 1, "out_dtype": "int32"})
    assert node.type.dtype == "int32"
    np.testing.assert_array_equal(out, tt.conv2d_nchw(x, w, 1, 1).astype("int32"))


def test_conv2d_packed_layouts_match_nchw():
    x = RNG.integers(-128, 128, (1, 6, 7, 7)).astype("int8")
    w = RNG.integers(-128, 128, (8, 6, 3, 3)).astype("int8")
    ref, _ = run_op("conv2d", [x, w], {"padding": 1, "out_dtype": "int32"})
    xp, wp = tt.pack_nchwc(x, 4), tt.pack_oihw(w, 4, 4)
    out, node = run_op("conv2d", [xp, wp], {"padding": 1, "out_dtype": "int32", "data_layout": "NCHW4c",
                                            "kernel_layout": "OIHW4o4i"})
    assert node.type.layout == "NCHW4c" and node.type.shape == (1, 2, 7, 7, 4)
    np.testing.assert_array_equal(tt.unpack_nchwc(out, 8), ref)
    out2, node2 = run_op("conv2d", [xp, wp], {"padding": 1, "out_dtype": "int32", "data_layout": "NCHW4c",
                                              "kernel_layout": "OIHW4o4i", "out_layout": "NCHW"})
    assert node2.type.layout == "" and node2.type.shape == (1, 8, 7, 7)
    np.testing.assert_array_equal(out2, ref)


# ---------------------------------------------------------------------- deformable conv
def deform_loop(x, off, w, stride, pad, dil, dg, groups):
    """torchvision's deform_conv2d CPU kernel (bilinear_interpolate), transcribed literally."""
    N, C, H, W = x.shape
    O, I, KH, KW = w.shape
    OH, OW = off.shape[2:]
    out = np.zeros((N, O, OH, OW))

    def bilinear(img, h, ww):
        if h <= -1 or H <= h or ww <= -1 or W <= ww:
            return 0.0
        hl, wl = math.floor(h), math.floor(ww)
        hh, wh = hl + 1, wl + 1
        lh, lw = h - hl, ww - wl
        v1 = img[hl, wl] if hl >= 0 and wl >= 0 else 0
        v2 = img[hl, wh] if hl >= 0 and wh <= W - 1 else 0
        v3 = img[hh, wl] if hh <= H - 1 and wl >= 0 else 0
        v4 = img[hh, wh] if hh <= H - 1 and wh <= W - 1 else 0
        return (1 - lh) * (1 - lw) * v1 + (1 - lh) * lw * v2 + lh * (1 - lw) * v3 + lh * lw * v4

    cols = np.zeros((N, C, KH, KW, OH, OW))
    for n, c, i, j, oy, ox in itertools.product(range(N), range(C), range(KH), range(KW), range(OH), range(OW)):
        g = c // (C // dg)
        k = i * KW + j
        dy = off[n, g * 2 * KH * KW + 2 * k, oy, ox]
        dx = off[n, g * 2 * KH * KW + 2 * k + 1, oy, ox]
        cols[n, c, i, j, oy, ox] = bilinear(x[n, c].astype(np.float64), oy * stride - pad + i * dil + dy,
                                            ox * stride - pad + j * dil + dx)
    og = O // groups
    for n, o in itertools.product(range(N), range(O)):
        gi = o // og
        out[n, o] = np.einsum("cij,cijyx->yx", w[o].astype(np.float64), cols[n, gi * I:(gi + 1) * I])
    return out


@pytest.mark.parametrize("stride,pad,dil,dg,groups", [(1, 1, 1, 1, 1), (2, 1, 1, 2, 1), (1, 2, 2, 1, 2)])
def test_deformable_conv2d_matches_torchvision_semantics(stride, pad, dil, dg, groups):
    x = rand(1, 4, 6, 5)
    w = rand(4, 4 // groups, 3, 3)
    OH = (6 + 2 * pad - 2 * dil - 1) // stride + 1
    OW = (5 + 2 * pad - 2 * dil - 1) // stride + 1
    off = (RNG.standard_normal((1, 2 * dg * 9, OH, OW)) * 1.5).astype("float32")  # some fall outside
    out, node = run_op("deformable_conv2d", [x, off, w],
                       {"strides": stride, "padding": pad, "dilation": dil, "deformable_groups": dg, "groups": groups})
    ref = deform_loop(x, off, w, stride, pad, dil, dg, groups)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_deformable_conv2d_zero_and_integer_offsets():
    x, w = rand(2, 3, 7, 7), rand(5, 3, 3, 3)
    conv, _ = run_op("conv2d", [x, w], {"padding": 1})
    zero = np.zeros((2, 18, 7, 7), "float32")
    out, _ = run_op("deformable_conv2d", [x, zero, w], {"padding": 1})
    np.testing.assert_allclose(out, conv, rtol=1e-5, atol=1e-5)
    # every tap one row further down == a conv padded (top 0, bottom 2) instead of (1, 1)
    shift = zero.copy()
    shift[:, 0::2] = 1.0
    out, _ = run_op("deformable_conv2d", [x, shift, w], {"padding": 1})
    ref, _ = run_op("conv2d", [x, w], {"padding": (0, 1, 2, 1)})
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_deformable_conv2d_offset_shape_error():
    with pytest.raises(ShapeError, match="node 'op' \\(deformable_conv2d\\): offset must have shape"):
        run_op("deformable_conv2d", [rand(1, 3, 5, 5), rand(1, 9, 5, 5), rand(4, 3, 3, 3)], {"padding": 1})


def test_deformable_numpy_function_exported():
    x, w = rand(1, 2, 4, 4), rand(2, 2, 1, 1)
    out = deformable_conv2d_np(x, np.zeros((1, 2, 4, 4)), w)
    np.testing.assert_allclose(out, np.einsum("oi,nihw->nohw", w[:, :, 0, 0], x), rtol=1e-6)


# ---------------------------------------------------------------------- dense / matmul / bn / bias
def test_dense_and_matmul():
    x, w, b = rand(3, 5), rand(4, 5), rand(4)
    out, node = run_op("dense", [x, w, b], {"units": 4})
    np.testing.assert_allclose(out, x @ w.T + b, rtol=1e-5, atol=1e-6)
    a, c = rand(2, 1, 3, 5), rand(4, 5, 6)
    out, node = run_op("matmul", [a, c])
    assert node.type.shape == (2, 4, 3, 6)
    np.testing.assert_allclose(out, a @ c, rtol=1e-5, atol=1e-5)
    with pytest.raises(GraphError, match="'units'"):
        run_op("dense", [x, w], {"units": 3})
    with pytest.raises(ShapeError, match="expects 5"):
        run_op("dense", [rand(3, 4), w])


def test_batch_norm_and_bias_add():
    x = rand(2, 3, 4, 4)
    g, b, m, v = rand(3), rand(3), rand(3), np.abs(rand(3)) + 0.5
    out, _ = run_op("batch_norm", [x, g, b, m, v], {"epsilon": 1e-3})
    s = (g / np.sqrt(v + 1e-3)).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out, (x - m.reshape(1, 3, 1, 1)) * s + b.reshape(1, 3, 1, 1), rtol=1e-5, atol=1e-5)
    out, _ = run_op("bias_add", [x, b], {"axis": 1})
    np.testing.assert_allclose(out, x + b.reshape(1, 3, 1, 1))
    out, _ = run_op("bias_add", [x, rand(4)], {"axis": -1})
    assert out.shape == x.shape
    with pytest.raises(ShapeError, match="gamma must have shape \\[3\\]"):
        run_op("batch_norm", [x, rand(4), b, m, v])


# ---------------------------------------------------------------------- element-wise
def test_elementwise_ops_and_broadcasting():
    a, b = rand(2, 3, 4, 1), rand(3, 1, 5)
    for op, fn in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply)):
        out, node = run_op(op, [a, b])
        assert node.type.shape == (2, 3, 4, 5)
        np.testing.assert_allclose(out, fn(a, b), rtol=1e-6)
    out, _ = run_op("relu", [a])
    np.testing.assert_array_equal(out, np.maximum(a, 0))
    out, _ = run_op("clip", [a], {"min": -0.5, "max": 0.5})
    np.testing.assert_array_equal(out, np.clip(a, -0.5, 0.5))
    out, _ = run_op("sigmoid", [a])
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-a)), rtol=1e-6)
    out, node = run_op("cast", [a], {"dtype": "float16"})
    assert out.dtype == np.float16 and node.type.dtype == "float16"
    with pytest.raises(ShapeError, match="do not broadcast"):
        run_op("add", [rand(2, 3), rand(4)])
    with pytest.raises(DtypeError, match="insert a cast"):
        run_op("add", [rand(3), rand(3, dtype="float64")])


def test_clip_bounds_error():
    with pytest.raises(GraphError, match="node 'op' \\(clip\\): attribute 'min' = 2.0 is larger than max"):
        run_op("clip", [rand(3)], {"min": 2.0, "max": 1.0})


# ---------------------------------------------------------------------- pooling
def test_pools_against_loops():
    x = rand(1, 2, 7, 6)
    out, node = run_op("max_pool2d", [x], {"pool_size": 3, "strides": 2, "padding": 1})
    assert node.type.shape == (1, 2, 4, 3)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    for y, xx in itertools.product(range(4), range(3)):
        np.testing.assert_array_equal(out[0, :, y, xx], xp[0, :, 2 * y:2 * y + 3, 2 * xx:2 * xx + 3].max(axis=(1, 2)))
    for cip in (False, True):
        out, _ = run_op("avg_pool2d", [x], {"pool_size": 3, "strides": 1, "padding": 1, "count_include_pad": cip})
        ones = np.pad(np.ones((7, 6)), 1)
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        for y, xx in itertools.product(range(7), range(6)):
            div = 9 if cip else ones[y:y + 3, xx:xx + 3].sum()
            np.testing.assert_allclose(out[0, :, y, xx], xp[0, :, y:y + 3, xx:xx + 3].sum(axis=(1, 2)) / div, rtol=1e-5)
    out, node = run_op("max_pool2d", [x], {"pool_size": 2, "strides": 2, "ceil_mode": True})
    assert node.type.shape == (1, 2, 4, 3)
    assert out[0, 0, 3, 0] == x[0, 0, 6, 0:2].max()
    out, node = run_op("global_avg_pool2d", [x])
    np.testing.assert_allclose(out, x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    out, node = run_op("global_max_pool2d", [x])
    np.testing.assert_array_equal(out, x.max(axis=(2, 3), keepdims=True))


def test_pool_errors():
    with pytest.raises(GraphError, match="node 'op' \\(max_pool2d\\): attribute 'pool_size' is required"):
        run_op("max_pool2d", [rand(1, 1, 4, 4)])
    with pytest.raises(ShapeError, match="larger than the padded input"):
        run_op("avg_pool2d", [rand(1, 1, 2, 2)], {"pool_size": 3})
    with pytest.raises(ShapeError, match="4-D"):
        run_op("global_avg_pool2d", [rand(1, 2, 3)])


# ---------------------------------------------------------------------- shape ops
def test_concat_flatten_reshape_transpose():
    a, b = rand(2, 3, 4), rand(2, 5, 4)
    out, node = run_op("concatenate", [a, b], {"axis": -2})
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))
    with pytest.raises(ShapeError, match="only axis 1 may differ"):
        run_op("concatenate", [a, rand(2, 5, 3)], {"axis": 1})
    out, node = run_op("flatten", [rand(2, 3, 4, 5)])
    assert node.type.shape == (2, 60)
    out, node = run_op("flatten", [rand(2, 3, 4, 5)], {"axis": 2})
    assert node.type.shape == (6, 20)
    x = rand(2, 3, 4)
    out, node = run_op("reshape", [x], {"newshape": (0, -1)})
    assert node.type.shape == (2, 12)
    np.testing.assert_array_equal(out, x.reshape(2, 12))
    with pytest.raises(GraphError, match="'newshape'.*at most one -1"):
        run_op("reshape", [x], {"newshape": (-1, -1)})
    with pytest.raises(GraphError, match="'newshape'"):
        run_op("reshape", [x], {"newshape": (5, -1)})
    out, node = run_op("transpose", [x], {"axes": (2, 0, 1)})
    np.testing.assert_array_equal(out, x.transpose(2, 0, 1))
    with pytest.raises(GraphError, match="not a permutation"):
        run_op("transpose", [x], {"axes": (0, 0, 1)})


def test_softmax_and_pad():
    x = rand(2, 5)
    out, _ = run_op("softmax", [x], {"axis": 1})
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(1, keepdims=True), rtol=1e-6)
    x = rand(1, 2, 3, 3)
    out, node = run_op("pad", [x], {"pad_width": ((0, 0), (0, 1), (1, 2), (0, 0)), "value": 1.5})
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 1), (1, 2), (0, 0)), constant_values=1.5))
    out, _ = run_op("pad", [x], {"pad_width": ((0, 0), (0, 0), (1, 1), (2, 2)), "mode": "reflect"})
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), mode="reflect"))
    with pytest.raises(GraphError, match="'pad_width' has 2 pairs for a 4-D input"):
        run_op("pad", [x], {"pad_width": ((0, 0), (1, 1))})
    with pytest.raises(GraphError, match="'mode'.*must be one of"):
        run_op("pad", [x], {"pad_width": ((0, 0),) * 4, "mode": "symmetric"})


def test_layout_transform():
    x = rand(2, 6, 3, 5)
    out, node = run_op("layout_transform", [x], {"src_layout": "NCHW", "dst_layout": "NCHW4c"})
    assert node.type.shape == (2, 2, 3, 5, 4) and node.type.layout == "NCHW4c"
    np.testing.assert_array_equal(out, tt.pack_nchwc(x, 4))
    back, node = run_op("layout_transform", [out], {"src_layout": "NCHW4c", "dst_layout": "NCHW",
                                                    "extents": {"C": 6}})
    np.testing.assert_array_equal(back, x)
    w = rand(6, 5, 3, 3)
    np.testing.assert_array_equal(layout_transform_np(w, "OIHW", "OIHW4o4i"), tt.pack_oihw(w, 4, 4))
    np.testing.assert_array_equal(layout_transform_np(x, "NCHW", "NHWC"), x.transpose(0, 2, 3, 1))
    with pytest.raises(GraphError, match="'dst_layout'"):
        run_op("layout_transform", [x], {"src_layout": "NCHW", "dst_layout": "OIHW"})
    with pytest.raises(ShapeError, match="src_layout"):
        run_op("layout_transform", [rand(2, 3)], {"src_layout": "NCHW", "dst_layout": "NHWC"})
    with pytest.raises(GraphError, match="'src_layout'"):
        run_op("layout_transform", [x], {"src_layout": "NC4", "dst_layout": "NHWC"})


# ---------------------------------------------------------------------- errors name node, op, attribute
@pytest.mark.parametrize("attrs,match", [
    ({"strides": 0}, "node 'op' \\(conv2d\\): attribute 'strides' = 0 is malformed: values must be positive"),
    ({"padding": (1, 2, 3)}, "attribute 'padding' = \\(1, 2, 3\\) is malformed"),
    ({"stride": 2}, "attribute 'stride' is not an attribute of conv2d; did you mean 'strides'"),
    ({"groups": 2}, "attribute 'groups' = 2 must divide the input channels \\(3\\)"),
    ({"groups": 1.5}, "attribute 'groups' = 1.5 is malformed"),
    ({"out_dtype": "float33"}, "attribute 'out_dtype'"),
    ({"data_layout": "NCHW4q"}, "attribute 'data_layout'"),
    ({"kernel_layout": "NCHW"}, "attribute 'kernel_layout' = 'NCHW' must have primal axes O, I, H, W"),
])
def test_conv2d_attribute_errors(attrs, match):
    with pytest.raises(GraphError, match=match):
        run_op("conv2d", [rand(1, 3, 8, 8), rand(4, 3, 3, 3)], attrs)


@pytest.mark.parametrize("arrays,attrs,match", [
    ([rand(1, 3, 8, 8), rand(4, 2, 3, 3)], {}, "weight float32\\[4,2,3,3\\] has 2 input channels per group"),
    ([rand(1, 3, 2, 2), rand(4, 3, 3, 3)], {}, "does not fit the padded input"),
    ([rand(1, 3, 8, 8), rand(4, 3, 3, 3), rand(5)], {}, "bias must have shape \\[4\\]"),
    ([rand(1, 3, 8), rand(4, 3, 3, 3)], {}, "data float32\\[1,3,8\\]"),
    ([rand(1, 3, 8, 8)], {}, "takes 2 to 3 inputs"),
])
def test_conv2d_shape_errors(arrays, attrs, match):
    with pytest.raises(ShapeError, match="node 'op' \\(conv2d\\): .*" + match):
        run_op("conv2d", arrays, attrs)


def test_conv2d_dtype_error():
    with pytest.raises(DtypeError, match="set out_dtype"):
        run_op("conv2d", [rand(1, 3, 8, 8), rand(4, 3, 3, 3).astype("int8")])


def test_attribute_normalization():
    op = get_op("max_pool2d")
    a = op.normalize_attrs({"pool_size": 3, "padding": (1, 2)})
    assert a == {"pool_size": (3, 3), "strides": (1, 1), "padding": (1, 2, 1, 2), "ceil_mode": False}
    assert op.defaults()["strides"] == (1, 1)
    assert get_op("conv2d").input_range() == (2, 3)
    assert get_op("concatenate").input_range() == (1, None)


# ---------------------------------------------------------------------- properties
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), o=st.integers(1, 4), h=st.integers(1, 7), w=st.integers(1, 7), k=st.integers(1, 3),
       s=st.integers(1, 3), d=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 2)] * 4), g=st.sampled_from([1, 2]))
def test_conv2d_inference_agrees_with_reference(c, o, h, w, k, s, d, pads, g):
    c, o = c * g, o * g
    x = RNG.integers(-3, 4, (1, c, h, w)).astype("float32")
    wt = RNG.integers(-3, 4, (o, c // g, k, k)).astype("float32")
    attrs = {"strides": s, "dilation": d, "padding": pads, "groups": g}
    try:
        out, node = run_op("conv2d", [x, wt], attrs)
    except ShapeError as e:
        assert "does not fit" in str(e)
        assert h + pads[0] + pads[2] < (k - 1) * d + 1 or w + pads[1] + pads[3] < (k - 1) * d + 1
        return
    ref = tt.conv2d_nchw(x.astype(np.int64), wt.astype(np.int64), s, pads, d, g)
    assert node.type.shape == out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 6)] * 4), f=st.sampled_from([2, 4, 8]))
def test_layout_transform_roundtrip(shape, f):
    x = RNG.standard_normal(shape).astype("float32")
    packed, node = run_op("layout_transform", [x], {"src_layout": "NCHW", "dst_layout": f"NCHW{f}c"})
    np.testing.assert_array_equal(packed, tt.pack_nchwc(x, f))
    back = layout_transform_np(packed, f"NCHW{f}c", "NCHW", {"C": shape[1]})
    np.testing.assert_array_equal(back, x)
