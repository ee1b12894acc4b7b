"""``reduce`` (ONNX Reduce* over any axes) and the batched ``matmul``: numpy references, llvm
kernels, and the CUDA kernels in the SIMT interpreter."""
import numpy as np
import pytest

from graph_interp import run_cuda_interpreted
from minitvm.errors import GraphError
from minitvm.graph import Graph, run_reference
from minitvm.graph.build import build
from minitvm.topi.nn.reduction import KINDS

RNG = np.random.default_rng(11)


def reduce_graph(shape, dtype, **attrs):
    g = Graph("reduce")
    g.mark_output(g.add_op("reduce", [g.add_input("x", shape, dtype)], attrs))
    return g


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axes,keepdims", [((1,), True), ((0, 2), False), ((-1,), True), ((), False)])
def test_every_kind_over_any_axes_matches_numpy(kind, axes, keepdims):
    x = (RNG.random((3, 5, 7)) + 0.5).astype("float32")
    g = reduce_graph((3, 5, 7), "float32", axes=axes, keepdims=keepdims, kind=kind)
    want = run_reference(g, {"x": x})[0]
    got = build(g, "llvm").run({"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-6)


def test_the_reference_is_numpy():
    x = RNG.standard_normal((4, 6)).astype("float32")
    cases = {"sum": x.sum(1), "max": x.max(1), "l1": np.abs(x).sum(1), "l2": np.sqrt((x * x).sum(1)),
             "log_sum_exp": np.log(np.exp(x).sum(1))}
    for kind, want in cases.items():
        got = run_reference(reduce_graph((4, 6), "float32", axes=(1,), keepdims=False, kind=kind), {"x": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("dtype,kind", [("int8", "sum"), ("int32", "mean"), ("uint8", "max"), ("int64", "prod"),
                                        ("bool", "max"), ("bool", "min"), ("float16", "sum")])
def test_integer_bool_and_half_reductions(dtype, kind):
    if dtype == "bool":
        x = RNG.random((4, 9)) < 0.3
    elif dtype == "float16":
        x = RNG.standard_normal((4, 9)).astype(dtype)
    else:
        x = RNG.integers(0 if dtype.startswith("u") else -9, 10, size=(4, 9)).astype(dtype)
    g = reduce_graph((4, 9), dtype, axes=(1,), kind=kind)
    got = build(g, "llvm").run({"x": x})[0]
    want = run_reference(g, {"x": x})[0]
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2e-3)


def test_errors_name_the_attribute():
    with pytest.raises(GraphError, match=r"attribute 'axes' = \[3\]: axis 3 is out of range for a 2-D input"):
        reduce_graph((2, 3), "float32", axes=(3,))
    with pytest.raises(GraphError, match=r"attribute 'kind' = 'median' must be one of"):
        reduce_graph((2, 3), "float32", kind="median")


@pytest.mark.parametrize("kind,axes", [("mean", (2, 3)), ("log_sum_exp", (1,)), ("max", (0,))])
def test_cuda_reductions_in_the_interpreter(kind, axes):
    x = np.random.default_rng(len(kind) * 10 + axes[0]).standard_normal((2, 3, 4, 5)).astype("float32")
    g = reduce_graph((2, 3, 4, 5), "float32", axes=axes, kind=kind)
    # atol: a log-sum-exp can land next to 0, where float32 rounding is all of its relative error
    np.testing.assert_allclose(run_cuda_interpreted(g, {"x": x})[0], run_reference(g, {"x": x})[0], rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("sa,sb", [((2, 3, 4, 5), (2, 3, 5, 6)), ((3, 4, 5), (5, 2)), ((4, 5), (2, 1, 5, 3)),
                                   ((1, 3, 4, 5), (2, 1, 5, 2))])
def test_batched_matmul_broadcasts_on_both_targets(sa, sb):
    g = Graph("mm")
    g.mark_output(g.add_op("matmul", [g.add_input("a", sa, "float32"), g.add_input("b", sb, "float32")]))
    feeds = {"a": RNG.standard_normal(sa).astype("float32"), "b": RNG.standard_normal(sb).astype("float32")}
    want = np.matmul(feeds["a"].astype(np.float64), feeds["b"].astype(np.float64))
    np.testing.assert_allclose(build(g, "llvm").run(feeds)[0], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_cuda_interpreted(g, feeds)[0], want, rtol=1e-5, atol=1e-5)
