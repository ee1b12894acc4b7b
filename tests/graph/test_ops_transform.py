"""The data-movement ops (``minitvm.graph.ops.transform``: strided_slice, take, broadcast_to, tile,
interpolate) and pad's edge / reflect / wrap modes: numpy references, llvm kernels, CUDA kernels in
the SIMT interpreter."""
import numpy as np
import pytest

from graph_interp import run_cuda_interpreted
from minitvm.errors import ShapeError
from minitvm.graph import Graph, run_reference
from minitvm.graph.build import build

RNG = np.random.default_rng(5)


def one_op(op, attrs, *inputs, consts=()):
    g = Graph(op)
    names = [g.add_input(f"x{k}", a.shape, a.dtype.name) for k, a in enumerate(inputs)]
    names += [g.add_const(f"c{k}", c) for k, c in enumerate(consts)]
    g.mark_output(g.add_op(op, names, attrs))
    return g, {f"x{k}": a for k, a in enumerate(inputs)}


def check(g, feeds, want, cuda=True):
    np.testing.assert_array_equal(run_reference(g, feeds)[0], want)
    np.testing.assert_array_equal(build(g, "llvm").run(feeds)[0], want)
    if cuda:
        np.testing.assert_array_equal(run_cuda_interpreted(g, feeds)[0], want)


X = RNG.standard_normal((3, 6, 5)).astype("float32")


@pytest.mark.parametrize("begin,end,strides,axes", [((1,), (5,), (2,), (1,)), ((-1, 4), (-4, -100), (-1, -2), (1, 2)),
                                                    ((0, 2), (2, 9), None, None)])
def test_strided_slice_follows_python_slicing(begin, end, strides, axes):
    sl = [slice(None)] * 3
    for k, (b, e) in enumerate(zip(begin, end)):
        sl[axes[k] if axes else k] = slice(b, e, strides[k] if strides else 1)
    g, feeds = one_op("strided_slice", {"begin": begin, "end": end, "strides": strides, "axes": axes}, X)
    check(g, feeds, X[tuple(sl)])


def test_an_empty_slice_is_refused_naming_the_axis():
    with pytest.raises(ShapeError, match=r"node .strided_slice. \(strided_slice\): the slice of axis 1 \(extent 6\) is empty"):
        one_op("strided_slice", {"begin": [4], "end": [2], "axes": [1]}, X)


def test_take_with_graph_and_constant_indices():
    idx = np.array([[0, -1], [2, 4]], np.int64)
    g, feeds = one_op("take", {"axis": 1}, X, consts=[idx])
    check(g, feeds, np.take(X, np.where(idx < 0, idx + 6, idx), axis=1))
    g, feeds = one_op("take", {"axis": -1}, X, np.array([4, 0, -5], np.int32))
    check(g, feeds, np.take(X, [4, 0, 0], axis=-1))


def test_take_clamps_indices_out_of_range_at_run_time():
    g, feeds = one_op("take", {"axis": 0}, X, np.array([7, -9], np.int64))
    check(g, feeds, X[[2, 0]], cuda=False)


def test_broadcast_to_and_tile():
    g, feeds = one_op("broadcast_to", {"shape": [2, 3, 6, 5]}, X[:, :, :1].copy())
    check(g, feeds, np.broadcast_to(X[:, :, :1], (2, 3, 6, 5)))
    g, feeds = one_op("tile", {"reps": [2, 1, 3]}, X)
    check(g, feeds, np.tile(X, (2, 1, 3)))


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
def test_pad_modes_match_numpy(mode):
    width = ((0, 0), (2, 3), (4, 1))
    g, feeds = one_op("pad", {"pad_width": width, "mode": mode}, X)
    check(g, feeds, np.pad(X, width, mode=mode))


def test_interpolate_applies_its_taps_and_offset():
    idx = np.array([[0, 1], [1, 2], [4, 4]], np.int32)
    w = np.array([[0.25, 0.75], [1.0, 0.0], [0.0, 0.0]], np.float32)
    off = np.array([0.0, 0.0, 9.0], np.float32)
    g, feeds = one_op("interpolate", {"axis": 2}, X, consts=[idx, w, off])
    want = (X[:, :, idx] * w).sum(-1) + off
    np.testing.assert_allclose(build(g, "llvm").run(feeds)[0], want, rtol=1e-6)
    np.testing.assert_allclose(run_cuda_interpreted(g, feeds)[0], want, rtol=1e-6)
    q = RNG.integers(0, 256, size=(2, 5)).astype(np.uint8)
    g, feeds = one_op("interpolate", {"axis": 1}, q, consts=[idx, w * 3])
    want = np.clip(np.rint((q[:, idx].astype(np.float64) * w * 3).sum(-1)), 0, 255).astype(np.uint8)
    check(g, feeds, want)
