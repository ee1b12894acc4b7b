"""LLVMModule.bind: an entry point's arguments checked once, then called at the cost of the
foreign call (how the graph executor runs its kernels)."""
import numpy as np
import pytest

import minitvm
from minitvm import te
from minitvm.errors import RuntimeError_
from minitvm.graph import zoo
from minitvm.graph.build import build


def _add_one():
    A = te.placeholder((4, 5), name="A")
    B = te.compute((4, 5), lambda i, j: A[i, j] + 1.0, name="B")
    return minitvm.build(te.create_schedule(B.op), [A, B], "llvm")


def test_a_bound_call_reads_the_arrays_current_contents():
    f = _add_one()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 5)).astype("float32"), np.full((4, 5), np.nan, "float32")
    call = f.bind(f.entry_name, [a, b])
    call()
    np.testing.assert_array_equal(b, a + 1)
    a[:] = rng.standard_normal((4, 5))
    call()
    np.testing.assert_array_equal(b, a + 1)


def test_bind_checks_the_arguments_once_up_front():
    f = _add_one()
    a, b = np.ones((4, 5), "float32"), np.ones((4, 5), "float32")
    b.flags.writeable = False
    with pytest.raises(RuntimeError_, match="written by the function but the array is read-only"):
        f.bind(f.entry_name, [a, b])
    with pytest.raises(RuntimeError_, match="not a C-contiguous"):
        f.bind(f.entry_name, [np.ones((5, 4), "float32").T, np.ones((4, 5), "float32")])
    with pytest.raises(RuntimeError_, match="has no function 'nope'"):
        f.bind("nope", [a, a])


def test_a_model_reads_each_new_input_array():
    """The executor's bound calls follow set_inputs: an input passed in place, then another
    array, then a non-contiguous one (copied into the model's own buffer)."""
    graph, _ = zoo.get_model("resnet18", batch=1, image_size=32)
    model = build(graph, "llvm")
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 3, 32, 32)).astype("float32") for _ in range(3)]
    want = [model.run({"data": np.ascontiguousarray(x)})[0] for x in xs]
    again = [model.run({"data": xs[1]})[0], model.run({"data": xs[0]})[0],
             model.run({"data": np.asfortranarray(xs[2])})[0]]
    for got, ref in zip(again, (want[1], want[0], want[2])):
        np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(want[0], want[1])
