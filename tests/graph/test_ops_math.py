"""The element-wise math ops (``minitvm.graph.ops.math``): numpy references with ONNX's semantics,
compiled for llvm and, through the SIMT interpreter, with the CUDA schedules."""
import numpy as np
import pytest

from graph_interp import run_cuda_interpreted
from minitvm.errors import DtypeError, ShapeError
from minitvm.graph import Graph, run_reference
from minitvm.graph.build import build
from minitvm.graph.ops.math import BINARY_OPS, UNARY_OPS

RNG = np.random.default_rng(7)


def graph_of(op, *types):
    g = Graph(op)
    names = [g.add_input(f"x{k}", shape, dtype) for k, (shape, dtype) in enumerate(types)]
    g.mark_output(g.add_op(op, names))
    return g


def values(shape, dtype, positive=False):
    if dtype == "bool":
        return RNG.random(shape) < 0.5
    if np.dtype(dtype).kind == "f":
        v = RNG.standard_normal(shape) * 3
        return (np.abs(v) + 0.1 if positive else v).astype(dtype)
    info = np.iinfo(dtype)
    lo = 1 if positive else max(info.min, -100)
    return RNG.integers(lo, min(info.max, 100), size=shape, endpoint=True).astype(dtype)


UNARY_CASES = [(op, "float32") for op in UNARY_OPS if op != "logical_not"] + [
    ("abs", "int8"), ("negative", "int32"), ("sign", "int64"), ("sign", "uint8"), ("logical_not", "bool"),
    ("exp", "float64"), ("erf", "float16")]


@pytest.mark.parametrize("op,dtype", UNARY_CASES)
def test_unary_ops_compile_to_their_reference(op, dtype):
    x = values((3, 17), dtype, positive=op in ("log", "sqrt"))
    g = graph_of(op, ((3, 17), dtype))
    want = run_reference(g, {"x0": x})[0]
    got = build(g, "llvm").run({"x0": x})[0]
    assert got.dtype == want.dtype
    tol = 3e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


def test_erf_is_float32_accurate_and_refuses_float64():
    x = np.linspace(-6, 6, 4001, dtype=np.float32)
    g = graph_of("erf", ((4001,), "float32"))
    got = build(g, "llvm").run({"x0": x})[0]
    want = np.vectorize(__import__("math").erf)(x.astype(np.float64))
    assert np.abs(got - want).max() < 4 * np.finfo(np.float32).eps
    with pytest.raises(DtypeError, match="erf is computed in float32"):
        graph_of("erf", ((3,), "float64"))


BINARY_CASES = [(op, "float32", "float32") for op in BINARY_OPS if not op.startswith("logical")] + [
    ("divide", "int32", "int32"), ("divide", "uint8", "uint8"), ("mod", "int16", "int16"), ("fmod", "int64", "int64"),
    ("power", "float32", "int64"), ("power", "int32", "float32"), ("maximum", "uint16", "uint16"),
    ("equal", "int8", "int8"), ("maximum", "bool", "bool"), ("logical_and", "bool", "bool"),
    ("logical_or", "bool", "bool"), ("logical_xor", "bool", "bool")]


@pytest.mark.parametrize("op,da,db", BINARY_CASES)
def test_binary_ops_broadcast_and_compile_to_their_reference(op, da, db):
    a = values((2, 1, 5), da)
    b = values((4, 5), db, positive=op in ("divide", "mod", "fmod", "power"))
    if op == "power":
        a = np.abs(a) + (1 if a.dtype.kind == "f" else 0)
        b = (np.abs(b) % 4).astype(db)
    g = graph_of(op, ((2, 1, 5), da), ((4, 5), db))
    want = run_reference(g, {"x0": a, "x1": b})[0]
    got = build(g, "llvm").run({"x0": a, "x1": b})[0]
    assert got.shape == (2, 4, 5) and got.dtype == want.dtype
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-6)


def test_integer_division_truncates_and_modulo_takes_the_sign_onnx_asks():
    a = np.array([7, -7, 7, -7, 5, -128], np.int8)
    b = np.array([2, 2, -2, -2, 0, -1], np.int8)
    out = {}
    for op in ("divide", "mod", "fmod"):
        g = graph_of(op, ((6,), "int8"), ((6,), "int8"))
        out[op] = build(g, "llvm").run({"x0": a, "x1": b})[0]
        np.testing.assert_array_equal(out[op], run_reference(g, {"x0": a, "x1": b})[0])
    np.testing.assert_array_equal(out["divide"], [3, -3, -3, 3, 0, -128])   # x / 0 is 0; INT_MIN / -1 wraps
    np.testing.assert_array_equal(out["mod"], [1, 1, -1, -1, 0, 0])
    np.testing.assert_array_equal(out["fmod"], [1, -1, 1, -1, 0, 0])


def test_float_mod_is_numpys_exactly():
    a = np.array([5.5, -5.5, 5.5, -5.5, 1e30, -0.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 1.0], np.float32)
    g = graph_of("mod", ((6,), "float32"), ((6,), "float32"))
    np.testing.assert_array_equal(build(g, "llvm").run({"x0": a, "x1": b})[0], np.mod(a, b))


def test_where_broadcasts_its_three_inputs():
    g = graph_of("where", ((3, 1), "bool"), ((1, 4), "float32"), ((3, 4), "float32"))
    c, x, y = values((3, 1), "bool"), values((1, 4), "float32"), values((3, 4), "float32")
    np.testing.assert_array_equal(build(g, "llvm").run({"x0": c, "x1": x, "x2": y})[0], np.where(c, x, y))


def test_type_errors_name_the_node():
    with pytest.raises(DtypeError, match=r"node 'logical_and' \(logical_and\): lhs is float32"):
        graph_of("logical_and", ((2,), "float32"), ((2,), "float32"))
    with pytest.raises(DtypeError, match=r"rhs is int32 but lhs is float32"):
        graph_of("divide", ((2,), "float32"), ((2,), "int32"))
    with pytest.raises(ShapeError, match="do not broadcast"):
        graph_of("equal", ((2, 3), "float32"), ((4,), "float32"))


@pytest.mark.parametrize("op,types", [("erf", [((4, 33), "float32")]), ("tanh", [((4, 33), "float32")]),
                                      ("fmod", [((4, 33), "float32"), ((33,), "float32")]),
                                      ("mod", [((4, 33), "int32"), ((4, 1), "int32")]),
                                      ("divide", [((4, 33), "int16"), ((33,), "int16")]),
                                      ("power", [((4, 33), "float32"), ((4, 33), "int32")]),
                                      ("less", [((4, 33), "float32"), ((4, 33), "float32")]),
                                      ("where", [((4, 33), "bool"), ((4, 33), "float32"), ((33,), "float32")])])
def test_cuda_kernels_match_the_reference_in_the_interpreter(op, types):
    g = graph_of(op, *types)
    feeds = {f"x{k}": values(s, d, positive=op in ("fmod", "mod", "divide") and k == 1)
             for k, (s, d) in enumerate(types)}
    if op == "power":
        feeds["x1"] = (np.abs(feeds["x1"]) % 4).astype("int32")
    want = run_reference(g, feeds)[0]
    got = run_cuda_interpreted(g, feeds)[0]
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-5, atol=1e-6)
