"""ONNX semantics the backend conformance tests found wrong or crashing (issue 16), each
checked against onnxruntime and compiled through the ONNX backend (llvm)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from minitvm.errors import GraphError  # noqa: E402
from minitvm.frontend import onnx_backend  # noqa: E402
from minitvm.frontend.onnx import from_onnx  # noqa: E402
from minitvm.graph.build import build  # noqa: E402
from minitvm.graph.ir import Graph  # noqa: E402

RNG = np.random.default_rng(16)


def model(nodes, inputs, outputs, inits=(), opset=17):
    """A checked model; ``inputs`` / ``outputs`` are (name, onnx elem type, shape)."""
    graph = h.make_graph(nodes, "test", [h.make_tensor_value_info(*i) for i in inputs],
                         [h.make_tensor_value_info(*o) for o in outputs],
                         [nh.from_array(np.asarray(v), k) for k, v in inits])
    m = h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    return m


def same_as_onnxruntime(m, feeds):
    """Compile ``m`` with the minitvm ONNX backend and compare every output with onnxruntime."""
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = onnx_backend.prepare(m).run(feeds)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axis", [-1, -2, -3, -4])
def test_flatten_with_a_negative_axis_counts_from_the_end(axis):
    x = RNG.standard_normal((2, 3, 4, 5)).astype("f")
    out = [int(np.prod(x.shape[:4 + axis])), -1]
    m = model([h.make_node("Flatten", ["x"], ["y"], axis=axis)], [("x", TP.FLOAT, x.shape)],
              [("y", TP.FLOAT, x.reshape(out).shape)])
    same_as_onnxruntime(m, {"x": x})


def test_flatten_of_a_constant_with_a_negative_axis():
    c = RNG.standard_normal((2, 3, 4)).astype("f")
    m = model([h.make_node("Flatten", ["c"], ["f"], axis=-1), h.make_node("Add", ["x", "f"], ["y"])],
              [("x", TP.FLOAT, [6, 4])], [("y", TP.FLOAT, [6, 4])], [("c", c)])
    same_as_onnxruntime(m, {"x": RNG.standard_normal((6, 4)).astype("f")})


@pytest.mark.parametrize("op, axes, shape", [("Unsqueeze", [0, -1], [1, 3, 4, 1]), ("Squeeze", [-2], [3, 4])])
def test_squeeze_axes_from_an_initializer_are_folded(op, axes, shape):
    in_shape = [3, 4] if op == "Unsqueeze" else [3, 1, 4]
    m = model([h.make_node(op, ["x", "axes"], ["y"])], [("x", TP.FLOAT, in_shape)], [("y", TP.FLOAT, shape)],
              [("axes", np.array(axes, np.int64))])
    same_as_onnxruntime(m, {"x": RNG.standard_normal(in_shape).astype("f")})


@pytest.mark.parametrize("op", ["Unsqueeze", "Squeeze"])
def test_squeeze_axes_from_a_graph_input_are_refused_naming_node_and_input(op):
    """from_onnx needs the axes constant; the backend fixes them per run (see onnx_backend)."""
    m = model([h.make_node(op, ["x", "axes"], ["y"], name="sq")],
              [("x", TP.FLOAT, [3, 1]), ("axes", TP.INT64, [1])],
              [("y", TP.FLOAT, [3] if op == "Squeeze" else [3, 1, 1])])
    with pytest.raises(GraphError, match=r"ONNX node 'sq' \(" + op + r"\): input axes \('axes'\) must be a constant"):
        from_onnx(m)
    x = RNG.standard_normal((3, 1)).astype("f")
    y = onnx_backend.prepare(m).run([x, np.array([1])])[0]
    np.testing.assert_array_equal(y, x.reshape(3) if op == "Squeeze" else x.reshape(3, 1, 1))


def test_cast_float64_to_float16_rounds_as_numpy_on_the_cpu():
    """float64 -> float16 on llvm rounds to float32 to odd, then to half (no __truncdfhf2
    libcall, which the JIT cannot resolve): halfway cases, values a plain float32 step would
    round onto a tie, subnormals and overflow round as numpy's direct cast."""
    ulp = 2.0 ** -10
    x = np.array([1 + ulp / 2, 1 + ulp / 2 + 2 ** -40, 1 + 1.5 * ulp, 65519.99, 65520.0, 1e300, -1e-300,
                  2 ** -24 * 0.5, 2 ** -24 * 0.5000001, -(1 + ulp / 2 + 2 ** -40), 2049 + 2 ** -30, 3.0e-6, np.inf, -np.inf] +
                 list(RNG.standard_normal(50) * 1e3) + [np.nan])
    g = Graph("cast")
    y = g.add_op("cast", [g.add_input("x", [x.size], "float64")], {"dtype": "float16"}, name="y")
    g.mark_output(y)
    got = build(g, "llvm").run({"x": x})[0]
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, x.astype(np.float16))  # (nan == nan here)


def test_mod_takes_the_divisor_sign_unless_fmod():
    a, b = np.array([-4, 7, 5, 4, -7, 8], np.int32), np.array([2, -3, 8, -2, 3, 5], np.int32)
    for fmod in (0, 1):
        m = model([h.make_node("Mod", ["a", "b"], ["m"], fmod=fmod), h.make_node("Add", ["x", "m"], ["y"])],
                  [("x", TP.INT32, [6])], [("y", TP.INT32, [6])], [("a", a), ("b", b)])
        same_as_onnxruntime(m, {"x": np.zeros(6, np.int32)})


@pytest.mark.parametrize("fmod, numpy_op", [(0, np.mod), (1, np.fmod)])
def test_float_mod_rounds_the_quotient_down_unless_fmod(fmod, numpy_op):
    """ONNX: fmod 0 is A - floor(A / B) * B (B's sign), 1 is A - trunc(A / B) * B (A's sign)."""
    a = np.array([-4.0, 7.0, 5.0, 4.0, -7.0, 8.0, 1.0, -1.0], "f")
    b = np.array([3.0, -3.0, 8.0, -2.0, 3.0, 5.0, np.inf, np.inf], "f")
    m = model([h.make_node("Mod", ["a", "b"], ["m"], fmod=fmod), h.make_node("Add", ["x", "m"], ["y"])],
              [("x", TP.FLOAT, [8])], [("y", TP.FLOAT, [8])], [("a", a), ("b", b)])
    got = onnx_backend.prepare(m).run([np.zeros(8, "f")])[0]
    np.testing.assert_array_equal(got, numpy_op(a, b))


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_and_min_of_n_inputs(op, n):
    consts = [("c0", RNG.standard_normal((2, 3)).astype("f"))] + [
        (f"c{i}", RNG.standard_normal((3,) if i % 2 else (2, 3)).astype("f")) for i in range(1, n)]
    m = model([h.make_node(op, [k for k, _ in consts], ["r"]), h.make_node("Add", ["x", "r"], ["y"])],
              [("x", TP.FLOAT, [2, 3])], [("y", TP.FLOAT, [2, 3])], consts)
    same_as_onnxruntime(m, {"x": RNG.standard_normal((2, 3)).astype("f")})


@pytest.mark.parametrize("op, fill", [("ReduceMax", -np.inf), ("ReduceMin", np.inf)])
def test_reduce_max_min_of_an_empty_set_is_the_lowest_or_highest_value(op, fill):
    m = model([h.make_node(op, ["c", "axes"], ["r"], keepdims=1), h.make_node("Add", ["x", "r"], ["y"])],
              [("x", TP.FLOAT, [2, 1, 4])], [("y", TP.FLOAT, [2, 1, 4])],
              [("c", np.zeros((2, 0, 4), np.float32)), ("axes", np.array([1], np.int64))], opset=18)
    x = RNG.standard_normal((2, 1, 4)).astype("f")
    np.testing.assert_array_equal(onnx_backend.prepare(m).run([x])[0], np.full((2, 1, 4), fill, np.float32))


def test_reduce_axes_out_of_range_are_named():
    m = model([h.make_node("ReduceMax", ["c", "axes"], ["r"], name="rmax"), h.make_node("Add", ["x", "r"], ["y"])],
              [("x", TP.FLOAT, [1])], [("y", TP.FLOAT, [1])],
              [("c", np.zeros((2, 3), np.float32)), ("axes", np.array([2], np.int64))], opset=18)
    with pytest.raises(GraphError, match=r"ONNX node 'rmax' \(ReduceMax\): input 'axes' = \[2\]: axis must be in"):
        onnx_backend.prepare(m)


@pytest.mark.parametrize("op", ["Identity", "Dropout"])
def test_a_graph_with_no_kernel_left_builds_and_copies_its_input(op):
    m = model([h.make_node(op, ["x"], ["y"])], [("x", TP.FLOAT, [2, 3])], [("y", TP.FLOAT, [2, 3])])
    x = RNG.standard_normal((2, 3)).astype("f")
    rep = onnx_backend.prepare(m)
    y = rep.run([x])[0]
    np.testing.assert_array_equal(y, x)
    x[:] = 0
    assert rep.run([x])[0].sum() == 0 and y.sum() != 0   # the output is a copy


def test_dropout_training_mode_from_a_graph_input_is_bound_at_run_time():
    """from_onnx needs training_mode constant; the backend compiles per value: false runs, true is refused."""
    m = model([h.make_node("Dropout", ["x", "", "t"], ["y"], name="drop")],
              [("x", TP.FLOAT, [2, 3]), ("t", TP.BOOL, [])], [("y", TP.FLOAT, [2, 3])], opset=13)
    with pytest.raises(GraphError, match=r"ONNX node 'drop' \(Dropout\): input training_mode \('t'\) must be a constant"):
        from_onnx(m)
    rep = onnx_backend.prepare(m)
    x = RNG.standard_normal((2, 3)).astype("f")
    np.testing.assert_array_equal(rep.run([x, np.array(False)])[0], x)
    with pytest.raises(GraphError, match=r"'drop' \(Dropout\): training_mode = true with ratio 0.5 is not supported"):
        rep.run([x, np.array(True)])


def test_the_backend_runs_one_node_and_refuses_other_devices():
    x = RNG.standard_normal((2, 3)).astype("f")
    y, = onnx_backend.run_node(h.make_node("Relu", ["x"], ["y"]), [x])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert onnx_backend.supports_device("CPU") and not onnx_backend.supports_device("CUDA")
    with pytest.raises(GraphError, match="device 'CUDA' is not supported"):
        onnx_backend.prepare(model([h.make_node("Relu", ["x"], ["y"])], [("x", TP.FLOAT, [1])],
                                   [("y", TP.FLOAT, [1])]), "CUDA")


def test_gemm_transposes_a_graph_tensor_a():
    x = RNG.standard_normal((4, 3)).astype("f")
    m = model([h.make_node("Gemm", ["a", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0)],
              [("a", TP.FLOAT, [4, 3])], [("y", TP.FLOAT, [3, 5])],
              [("b", RNG.standard_normal((4, 5)).astype("f")), ("c", RNG.standard_normal((1, 5)).astype("f"))])
    same_as_onnxruntime(m, {"a": x})


@pytest.mark.parametrize("bounds", [{}, {"min": -5}, {"max": 100}, {"min": -128, "max": 127}])
def test_clip_of_an_integer_tensor_is_bounded_by_its_dtype(bounds):
    names = [k if k in bounds else "" for k in ("min", "max")]
    while names and not names[-1]:
        names.pop()
    m = model([h.make_node("Clip", ["x"] + names, ["y"])], [("x", TP.INT8, [7])], [("y", TP.INT8, [7])],
              [(k, np.array(v, np.int8)) for k, v in bounds.items()], opset=13)
    same_as_onnxruntime(m, {"x": np.array([-128, -100, -5, 0, 5, 100, 127], np.int8)})


def test_the_backend_names_an_invalid_model():
    graph = h.make_graph([h.make_node("Relu", ["x", "x"], ["y"])], "bad", [h.make_tensor_value_info("x", TP.FLOAT, [1])],
                         [h.make_tensor_value_info("y", TP.FLOAT, [1])])
    bad = h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(GraphError, match="the model is not valid ONNX: .*Relu"):
        onnx_backend.prepare(bad)


@pytest.mark.parametrize("start,end,step", [(-10, -20, -1), (10, -20, -2), (-1, -100, -1), (2, 100, 1), (-100, 3, 2),
                                            (4, 0, -1), (0, 5, 3)])
def test_slice_bounds_clamp_as_onnx_says(start, end, step):
    """Negative steps clamp the start to [0, n - 1] and the end to [-1, n - 1]: a start before the
    axis reads index 0 (Python's slicing, and onnx's reference evaluator, give nothing; the
    specification and onnxruntime one element)."""
    ort = pytest.importorskip("onnxruntime")
    from minitvm.frontend.onnx.shape_ops import onnx_slice
    x = np.arange(5, dtype=np.float32)
    node = h.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"])
    inits = [nh.from_array(np.array([v], np.int64), k) for k, v in (("s", start), ("e", end), ("a", 0), ("p", step))]
    g = h.make_graph([node], "s", [h.make_tensor_value_info("x", TP.FLOAT, [5])],
                      [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 13)], ir_version=8)
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    first, count = onnx_slice(5, start, end, step)
    np.testing.assert_array_equal(x[first:first + step * count:step] if first + step * count >= 0
                                  else x[first::step][:count], want)
