"""Invalid ONNX models and files are refused with a GraphError naming the culprit, as onnxruntime
refuses them (issue 17 R11 / R12, issue 16 item 4): broken files, corrupt initializers, folds too
big to make, constant indices out of range, opsets outside the supported range, a value written
twice, an axis out of range."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from minitvm.errors import GraphError  # noqa: E402
from minitvm.frontend.onnx import from_onnx  # noqa: E402


def model(nodes, inits=(), inputs=(("x", TP.FLOAT, [2, 3]),), outputs=(("y", TP.FLOAT, None),), opset=17):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(*i) for i in inputs],
                     [h.make_tensor_value_info(*o) for o in outputs], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def const(name, value, dtype=np.int64):
    return nh.from_array(np.asarray(value, dtype), name)


GOOD = model([h.make_node("Relu", ["x"], ["y"])])


@pytest.mark.parametrize("what,content", [
    ("truncated", GOOD.SerializeToString()[:40]),
    ("garbage", np.random.default_rng(0).bytes(300)),
    ("not onnx", b'{"format": "json, not onnx"}'),
    ("a 2 GB claim", b"\x3a\xff\xff\xff\xff\x07" + b"\x00" * 16),    # graph field claiming ~2 GB of bytes
])
def test_broken_files_are_refused_naming_the_file(tmp_path, what, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(GraphError, match=rf"from_onnx: '{path}' is not an ONNX model"):
        from_onnx(str(path))
    with pytest.raises(GraphError, match="from_onnx: the bytes given are not an ONNX model"):
        from_onnx(content)


def test_a_directory_and_a_missing_file_are_refused(tmp_path):
    with pytest.raises(GraphError, match="is a directory, not an ONNX model file"):
        from_onnx(str(tmp_path))
    with pytest.raises(GraphError, match="no such file"):
        from_onnx(str(tmp_path / "absent.onnx"))


def test_an_initializer_with_dims_larger_than_its_data_is_refused_naming_it():
    w = nh.from_array(np.zeros(4, np.float32), "w")
    w.dims[:] = [1000, 1000]
    with pytest.raises(GraphError, match=r"tensor name: w\) raw_data size \(16 bytes\) is too small"):
        from_onnx(model([h.make_node("Add", ["x", "w"], ["y"])], [w]))


def test_a_constant_gather_out_of_range_is_refused_naming_the_node():
    m = model([h.make_node("Gather", ["c", "i"], ["g"], name="pick"), h.make_node("Add", ["x", "g"], ["y"])],
              [const("c", np.zeros((3, 3)), np.float32), const("i", [7])], inputs=(("x", TP.FLOAT, [1, 3]),))
    with pytest.raises(GraphError, match=r"ONNX node 'pick' \(Gather\): evaluating its constant inputs at import "
                                         r"failed: IndexError: index 7 is out of bounds"):
        from_onnx(m)


@pytest.mark.parametrize("node,inits,out_dtype,nbytes", [
    (h.make_node("ConstantOfShape", ["s"], ["y"], name="big"), [const("s", [10 ** 5, 10 ** 6])], TP.FLOAT,
     "400,000,000,000"),
    (h.make_node("Expand", ["c", "s"], ["y"], name="big"), [const("c", [1.0], np.float32), const("s", [10 ** 11])],
     TP.FLOAT, "400,000,000,000"),
    (h.make_node("Range", ["a", "b", "d"], ["y"], name="big"), [const("a", 0), const("b", 10 ** 11), const("d", 1)],
     TP.INT64, "800,000,000,000"),
])
def test_a_tiny_model_folding_1e11_elements_is_refused_before_allocating(node, inits, out_dtype, nbytes):
    m = model([node], inits, outputs=(("y", out_dtype, None),))
    assert len(m.SerializeToString()) < 400
    op = node.op_type
    with pytest.raises(GraphError, match=rf"ONNX node 'big' \({op}\): output 'y' of shape .* would take {nbytes} "
                                         r"bytes to fold at import, more than the limit of 1,073,741,824"):
        from_onnx(m)


def test_the_fold_limit_is_a_parameter():
    m = model([h.make_node("ConstantOfShape", ["s"], ["c"], name="fill"), h.make_node("Add", ["x", "c"], ["y"])],
              [const("s", [2, 3])])
    graph, _ = from_onnx(m)
    assert graph.node("y").op == "add"
    with pytest.raises(GraphError, match=r"'fill' \(ConstantOfShape\): output 'c' of shape \[2, 3\] would take 24 bytes"):
        from_onnx(m, max_fold_bytes=16)


@pytest.mark.parametrize("opset,match", [
    (0, r"ONNX node 'r' \(Relu\): no version of Relu exists at the model's opset 0"),
    (1, r"ONNX node 'r' \(Relu\): Relu-1 \(the model's opset 1\) predates the versions the importer implements"),
    (99, r"ONNX node 'r' \(Relu\): the model's default-domain \(ai.onnx\) opset 99 is newer than the newest"),
])
def test_opsets_outside_the_supported_range_are_refused_naming_the_node(opset, match):
    with pytest.raises(GraphError, match=match):
        from_onnx(model([h.make_node("Relu", ["x"], ["y"], name="r")], opset=opset))


def test_an_old_opset_whose_ops_are_unchanged_since_is_accepted():
    m = model([h.make_node("Not", ["x"], ["y"])], inputs=(("x", TP.BOOL, [2]),), outputs=(("y", TP.BOOL, [2]),),
              opset=1)
    graph, _ = from_onnx(m)
    assert graph.node("y").op == "logical_not"


def test_two_nodes_writing_one_output_are_refused_naming_both():
    m = model([h.make_node("Relu", ["x"], ["y"], name="first"), h.make_node("Abs", ["x"], ["y"], name="second")])
    with pytest.raises(GraphError, match=r"ONNX node 'second' \(Abs\): output 'y' is already written by node 'first' "
                                         r"\(Relu\)"):
        from_onnx(m)


@pytest.mark.parametrize("opset,match", [
    (13, r"ONNX node 'u' \(Unsqueeze\): input 'axes' = \[9\]: Unexpected axis value: 9"),
    (11, r"ONNX node 'u' \(Unsqueeze\): attribute 'axes' = \[9\]: values in 'axes' are beyond the bounds"),
])
def test_an_axis_out_of_range_is_refused_naming_node_and_axes(opset, match):
    if opset >= 13:
        m = model([h.make_node("Unsqueeze", ["x", "ax"], ["y"], name="u")], [const("ax", [9])], opset=opset)
    else:
        m = model([h.make_node("Unsqueeze", ["x"], ["y"], name="u", axes=[9])], opset=opset)
    with pytest.raises(GraphError, match=r"from_onnx: the model is not valid ONNX: " + match):
        from_onnx(m)


def test_the_checker_runs_first_on_an_otherwise_importable_model():
    m = model([h.make_node("Relu", ["x"], ["y"], name="r", bogus=3)])
    with pytest.raises(GraphError, match=r"the model is not valid ONNX: Unrecognized attribute: bogus for operator Relu"):
        from_onnx(m)
