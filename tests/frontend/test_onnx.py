"""ONNX import checked against onnxruntime (CPU) on models built with onnx.helper."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

from minitvm.errors import GraphError  # noqa: E402
from minitvm.frontend import from_onnx  # noqa: E402
from minitvm.graph import run_reference  # noqa: E402

RNG = np.random.default_rng(7)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype("float32")


def init(name, arr):
    return nh.from_array(np.asarray(arr), name)


def make_model(nodes, inputs, outputs, inits=(), opset=17):
    """inputs/outputs: [(name, shape)] (float32; shape entries may be symbolic strings)."""
    graph = h.make_graph(nodes, "test", [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in inputs],
                         [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in outputs], list(inits))
    # IR 10: what onnxruntime releases for Python 3.10 still load
    model = h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", opset)])
    if all(s is not None for _, s in list(inputs) + list(outputs)):
        onnx.checker.check_model(model)  # (the checker wants every graph output's shape)
    return model


def check(model, feeds, shape=None, tol=1e-4):
    """Import ``model``, run the reference executor and onnxruntime, compare every output."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    g, params = from_onnx(model, shape=shape)
    got = run_reference(g, feeds)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    return g, params


def flatten_by_shape_subgraph(src, dst, prefix=""):
    """torch.flatten(x, 1) as exported with dynamic axes: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    return [
        h.make_node("Shape", [src], [prefix + "shape"], name=prefix + "Shape"),
        h.make_node("Gather", [prefix + "shape", "c0"], [prefix + "dim0"], axis=0, name=prefix + "Gather"),
        h.make_node("Unsqueeze", [prefix + "dim0", "axes0"], [prefix + "dim0u"], name=prefix + "Unsqueeze"),
        h.make_node("Concat", [prefix + "dim0u", "minus1"], [prefix + "newshape"], axis=0, name=prefix + "Concat"),
        h.make_node("Reshape", [src, prefix + "newshape"], [dst], name=prefix + "Reshape"),
    ]


SHAPE_INITS = [init("c0", np.array(0, np.int64)), init("axes0", np.array([0], np.int64)),
               init("minus1", np.array([-1], np.int64))]


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_conv_bn_relu_pool_gemm(opset):
    inits = [init("w", rand(8, 3, 3, 3, scale=0.3)), init("b", rand(8)),
             init("gamma", RNG.uniform(0.5, 1.5, 8).astype("f")), init("beta", rand(8)),
             init("mean", rand(8, scale=0.1)), init("var", RNG.uniform(0.5, 1.5, 8).astype("f")),
             init("fc_w", rand(10, 8 * 4 * 4, scale=0.05)), init("fc_b", rand(10))] + SHAPE_INITS
    nodes = [
        h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
        h.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3, name="bn1"),
        h.make_node("Relu", ["bn"], ["r"], name="relu1"),
        h.make_node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], name="pool1"),
    ] + flatten_by_shape_subgraph("p", "flat") + [
        h.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1, name="fc"),
    ]
    model = make_model(nodes, [("x", ["N", 3, 16, 16])], [("logits", ["N", 10])], inits, opset)
    x = rand(2, 3, 16, 16)
    g, params = check(model, {"x": x}, shape={"x": (2, 3, 16, 16)})
    # the shape subgraph folded away: one reshape, no shape ops, nothing but real work left
    assert [n.op for n in g.op_nodes()] == ["conv2d", "batch_norm", "relu", "max_pool2d", "reshape", "dense"]
    assert g.node("Reshape").attrs["newshape"] == (2, 128)
    assert g.outputs == ["logits"] and "w" in params and "c0" not in params
    with pytest.raises(GraphError, match="dynamic dimensions.*shape="):
        from_onnx(model)


def test_conv_variants():
    inits = [init("w1", rand(6, 2, 3, 3)), init("w2", rand(4, 6, 3, 2)), init("w3", rand(4, 4, 3, 3))]
    nodes = [
        h.make_node("Conv", ["x", "w1"], ["a"], group=2, pads=[0, 1, 2, 1], name="grouped_asym"),
        h.make_node("Conv", ["a", "w2"], ["b"], dilations=[2, 1], strides=[1, 2], name="dilated"),
        h.make_node("Conv", ["b", "w3"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2], name="same"),
    ]
    model = make_model(nodes, [("x", [1, 4, 13, 11])], [("y", None)], inits)
    g, _ = check(model, {"x": rand(1, 4, 13, 11)})
    assert g.node("grouped_asym").attrs["padding"] == (0, 1, 2, 1)


def test_concat_softmax_pad_and_elementwise():
    inits = [init("scale", rand(1, 3, 1, 1)), init("two", np.array(2.0, np.float32)),
             init("pads", np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64)), init("padval", np.array(0.5, np.float32)),
             init("lo", np.array(-1.0, np.float32)), init("hi", np.array(1.0, np.float32))]
    nodes = [
        h.make_node("Mul", ["x", "scale"], ["m"], name="mul"),
        h.make_node("Div", ["m", "two"], ["d"], name="div"),
        h.make_node("Sub", ["d", "x"], ["s"], name="sub"),
        h.make_node("Clip", ["s", "lo", "hi"], ["cl"], name="clip"),
        h.make_node("Pad", ["cl", "pads", "padval"], ["pd"], mode="constant", name="pad"),
        h.make_node("Concat", ["pd", "pd"], ["cat"], axis=1, name="cat"),
        h.make_node("Softmax", ["cat"], ["y"], axis=1, name="softmax"),
        h.make_node("Identity", ["y"], ["y2"], name="id"),
        h.make_node("Dropout", ["y2"], ["out"], name="dropout"),
    ]
    model = make_model(nodes, [("x", [2, 3, 4, 5])], [("out", None)], inits, opset=13)
    g, _ = check(model, {"x": rand(2, 3, 4, 5)})
    assert g.node("pad").attrs["pad_width"] == ((0, 0), (0, 0), (1, 1), (2, 0))
    assert "Identity" not in str(g) and not g.op_nodes("dropout")


def test_pools_global_pool_flatten_matmul():
    inits = [init("mw", rand(6, 7)), init("bias", rand(7))]
    nodes = [
        h.make_node("AveragePool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                    ceil_mode=1, count_include_pad=1, name="avg"),
        h.make_node("MaxPool", ["a"], ["m"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, name="max"),
        h.make_node("GlobalAveragePool", ["m"], ["gap"], name="gap"),
        h.make_node("Flatten", ["gap"], ["f"], axis=1, name="flatten"),
        h.make_node("MatMul", ["f", "mw"], ["mm"], name="matmul"),
        h.make_node("Add", ["mm", "bias"], ["y"], name="add"),
    ]
    model = make_model(nodes, [("x", [2, 6, 11, 9])], [("y", None)], inits)
    g, _ = check(model, {"x": rand(2, 6, 11, 9)})
    assert g.node("matmul").op == "dense"


@pytest.mark.parametrize("opset", [17, 18])
def test_spatial_reduce_mean_and_max_become_global_pools(opset):
    """x.mean((2, 3), keepdim=True) (squeeze-excite blocks) and friends; opset 18 gives axes as an input."""
    def reduce(op, src, dst, axes, keepdims):
        if opset >= 18:
            return h.make_node(op, [src, f"{dst}_axes"], [dst], keepdims=keepdims, name=dst)
        return h.make_node(op, [src], [dst], axes=axes, keepdims=keepdims, name=dst)
    inits = [init("mean_axes", np.array([2, 3], np.int64)), init("max_axes", np.array([-1, -2], np.int64))]
    nodes = [reduce("ReduceMean", "x", "mean", [2, 3], 1), h.make_node("Mul", ["x", "mean"], ["scaled"], name="se"),
             reduce("ReduceMax", "scaled", "max", [-1, -2], 0)]
    model = make_model(nodes, [("x", [2, 5, 6, 7])], [("max", [2, 5]), ("mean", [2, 5, 1, 1])],
                       inits if opset >= 18 else (), opset=opset)
    g, _ = check(model, {"x": rand(2, 5, 6, 7)})
    assert g.node("mean").op == "global_avg_pool2d" and g.node("max").op == "reshape"
    from minitvm.graph.build import build
    x = rand(2, 5, 6, 7)
    for got, want in zip(build(g, "llvm").run({"x": x}), run_reference(g, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trans_b,alpha,beta,c_shape", [(0, 1.0, 1.0, (5,)), (1, 0.5, 2.0, (1, 5)),
                                                         (0, 1.0, 0.5, (3, 5)), (1, 1.0, 1.0, ())])
def test_gemm_variants(trans_b, alpha, beta, c_shape):
    b = rand(5, 4) if trans_b else rand(4, 5)
    inits = [init("B", b), init("C", rand(*c_shape))]
    node = h.make_node("Gemm", ["a", "B", "C"], ["y"], transB=trans_b, alpha=alpha, beta=beta, name="gemm")
    check(make_model([node], [("a", [3, 4])], [("y", None)], inits), {"a": rand(3, 4)})


def test_shape_ops_folded_at_import():
    """ConstantOfShape, Slice, Cast, Squeeze, Equal/Where-style shape arithmetic on constants."""
    inits = [init("starts", np.array([2], np.int64)), init("ends", np.array([4], np.int64)),
             init("axes0", np.array([0], np.int64)), init("one", np.array([1], np.int64))]
    nodes = [
        h.make_node("Shape", ["x"], ["s"], name="shape"),                      # [2, 3, 4, 5]
        h.make_node("Slice", ["s", "starts", "ends", "axes0"], ["hw"], name="slice"),  # [4, 5]
        h.make_node("ConstantOfShape", ["hw"], ["zeros"], name="cos",
                    value=h.make_tensor("v", TP.FLOAT, [1], [0.25])),         # 0.25 [4, 5]
        h.make_node("Cast", ["s"], ["sf"], to=TP.FLOAT, name="cast"),
        h.make_node("ReduceSum", ["sf"], ["total"], keepdims=0, name="rsum"),   # 14.0 (opset 13 form)
        h.make_node("Unsqueeze", ["total", "axes0"], ["total1"], name="unsq"),
        h.make_node("Squeeze", ["total1", "axes0"], ["total0"], name="sq"),
        h.make_node("Add", ["x", "zeros"], ["y0"], name="add_const"),
        h.make_node("Mul", ["y0", "total0"], ["y"], name="scale"),
        h.make_node("Constant", [], ["k"], value=h.make_tensor("kv", TP.FLOAT, [5], [1, 2, 3, 4, 5]), name="const"),
        h.make_node("Add", ["y", "k"], ["out"], name="add_k"),
    ]
    model = make_model(nodes, [("x", [2, 3, 4, 5])], [("out", None)], inits, opset=13)
    g, _ = check(model, {"x": rand(2, 3, 4, 5)})
    assert [n.op for n in g.op_nodes()] == ["add", "mul", "add"]


def test_old_opset_spellings():
    """opset 11: Unsqueeze/Squeeze axes as attributes, Softmax coercing to 2-D, Clip with inputs."""
    nodes = [
        h.make_node("Softmax", ["x"], ["s"], axis=1, name="softmax"),
        h.make_node("Unsqueeze", ["s"], ["u"], axes=[0], name="unsq"),
        h.make_node("Squeeze", ["u"], ["q"], axes=[0], name="sq"),
        h.make_node("Clip", ["q"], ["y"], name="clip_noop"),
    ]
    model = make_model(nodes, [("x", [2, 3, 4])], [("y", None)], opset=11)
    check(model, {"x": rand(2, 3, 4)})


def test_clip_opset6_and_activations():
    nodes = [h.make_node("Clip", ["x"], ["c"], min=-0.5, max=2.0, name="clip6"),
             h.make_node("Relu", ["c"], ["r"], name="relu")]
    check(make_model(nodes, [("x", [4, 5])], [("r", None)], opset=6), {"x": rand(4, 5)})
    nodes = [h.make_node("HardSwish", ["x"], ["a"], name="hswish"),
             h.make_node("HardSigmoid", ["a"], ["b"], alpha=0.3, beta=0.4, name="hsig"),
             h.make_node("Sigmoid", ["b"], ["c"], name="sig"),
             h.make_node("Transpose", ["c"], ["y"], perm=[1, 0, 2], name="tr")]
    check(make_model(nodes, [("x", [2, 3, 4])], [("y", None)], opset=14), {"x": rand(2, 3, 4, scale=3)})


def test_pad_opset18_axes_and_reflect():
    inits = [init("pads", np.array([1, 2, 1, 0], np.int64)), init("axes", np.array([2, 3], np.int64))]
    nodes = [h.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="reflect", name="pad")]
    check(make_model(nodes, [("x", [1, 2, 4, 5])], [("y", None)], inits, opset=18), {"x": rand(1, 2, 4, 5)})


def test_load_from_path_and_bytes(tmp_path):
    nodes = [h.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [("x", [2, 2])], [("y", [2, 2])])
    p = tmp_path / "m.onnx"
    onnx.save(model, p)
    for src in (str(p), p, model.SerializeToString()):
        g, _ = from_onnx(src)
        assert [n.op for n in g.op_nodes()] == ["relu"] and g.outputs == ["y"]
    with pytest.raises(GraphError, match="no such file"):
        from_onnx(tmp_path / "missing.onnx")


def test_input_shape_override():
    nodes = [h.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [("x", ["N", 3])], [("y", ["N", 3])])
    g, _ = from_onnx(model, shape=(5, 3))
    assert g.node("x").type.shape == (5, 3)
    with pytest.raises(GraphError, match="does not fit"):
        from_onnx(model, shape={"x": (5, 4)})


# ---------------------------------------------------------------------- errors
def test_unsupported_op_names_the_node():
    nodes = [h.make_node("Relu", ["x"], ["r"], name="ok"),
             h.make_node("Hardmax", ["r"], ["y"], name="my_hardmax_node")]
    model = make_model(nodes, [("x", [2, 2])], [("y", None)])
    with pytest.raises(GraphError, match="ONNX node 'my_hardmax_node' \\(Hardmax\\): this op is not supported"):
        from_onnx(model)


@pytest.mark.parametrize("node,inits,shape,match", [
    (h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2], name="mp"), [], [1, 1, 6, 6],
     "ONNX node 'mp' \\(MaxPool\\): attribute 'kernel_shape' = \\[2, 2, 2\\]: Attribute kernel_shape has incorrect"),
    (h.make_node("Conv", ["x", "w"], ["y"], name="conv1d"), [init("w", rand(2, 1, 3))], [1, 1, 6],
     "ONNX node 'conv1d' \\(Conv\\): only 2-D"),
    (h.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[2, 2], name="c"), [init("w", rand(2, 1, 3, 3))],
     [1, 1, 6, 6], "ONNX node 'c' \\(Conv\\): attribute 'kernel_shape'"),
    (h.make_node("Pad", ["x", "p"], ["y"], mode="circular", name="padc"), [init("p", np.zeros(8, np.int64))],
     [1, 1, 6, 6], "ONNX node 'padc' \\(Pad\\): attribute 'mode' = 'circular'"),
    (h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], auto_pad="BOGUS", name="ap"), [], [1, 1, 4, 4],
     "ONNX node 'ap' \\(AveragePool\\): attribute 'auto_pad'"),
    (h.make_node("Resize", ["x", "", "s"], ["y"], mode="bicubic", name="rs"),
     [init("s", np.array([1, 1, 2, 2], np.float32))], [1, 1, 4, 4], "ONNX node 'rs' \\(Resize\\): attribute 'mode'"),
    (h.make_node("Gather", ["x", "i"], ["y"], name="emb"), [init("i", np.array([0, 3], np.int64))], [3, 2],
     "ONNX node 'emb' \\(Gather\\): input indices \\('i'\\) holds 0..3, out of range for axis 0 of extent 3"),
])
def test_unsupported_attributes_name_node_op_attr(node, inits, shape, match):
    graph = h.make_graph([node], "bad", [h.make_tensor_value_info("x", TP.FLOAT, shape)],
                         [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    model = h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", 19)])
    with pytest.raises(GraphError, match=match):
        from_onnx(model)


def test_batchnorm_training_mode_rejected():
    inits = [init(n, np.ones(2, np.float32)) for n in ("g", "b", "m", "v")]
    node = h.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], training_mode=1, name="bnt")
    graph = h.make_graph([node], "bad", [h.make_tensor_value_info("x", TP.FLOAT, [1, 2, 3, 3])],
                         [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    with pytest.raises(GraphError, match="'bnt' \\(BatchNormalization\\): attribute 'training_mode'"):
        from_onnx(h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", 15)]))


def test_shape_mismatch_reported_with_node_name():
    inits = [init("w", rand(2, 5, 3, 3))]
    node = h.make_node("Conv", ["x", "w"], ["y"], name="badconv")
    graph = h.make_graph([node], "bad", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 6])],
                         [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    from minitvm.errors import ShapeError
    with pytest.raises(ShapeError, match="ONNX node 'badconv' \\(Conv\\): node 'y' \\(conv2d\\): weight"):
        from_onnx(h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", 17)]))


def test_custom_domain_rejected():
    node = h.make_node("MyOp", ["x"], ["y"], domain="com.example", name="custom")
    graph = h.make_graph([node], "bad", [h.make_tensor_value_info("x", TP.FLOAT, [2])],
                         [h.make_tensor_value_info("y", TP.FLOAT, None)])
    model = h.make_model(graph, ir_version=10, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.example", 1)])
    with pytest.raises(GraphError, match="'custom' \\(MyOp\\): op domain 'com.example'"):
        from_onnx(model)


# ---------------------------------------------------------------------- whole zoo models through ONNX
def graph_to_onnx(g, opset=17):
    """Write a zoo graph as ONNX (the ops torchvision exports) -- a test helper, not an exporter."""
    nodes, inits = [], []
    for n in g:
        if n.kind == "const":
            inits.append(init(n.name, n.value))
            continue
        if n.kind == "input":
            continue
        a = n.attrs
        if n.op == "conv2d":
            nodes.append(h.make_node("Conv", n.inputs, [n.name], name=n.name, strides=list(a["strides"]),
                                     pads=list(a["padding"]), dilations=list(a["dilation"]), group=a["groups"]))
        elif n.op == "batch_norm":
            nodes.append(h.make_node("BatchNormalization", n.inputs, [n.name], name=n.name, epsilon=a["epsilon"]))
        elif n.op in ("max_pool2d", "avg_pool2d"):
            kw = dict(kernel_shape=list(a["pool_size"]), strides=list(a["strides"]), pads=list(a["padding"]),
                      ceil_mode=int(a["ceil_mode"]))
            if n.op == "avg_pool2d":
                kw["count_include_pad"] = int(a["count_include_pad"])
            nodes.append(h.make_node("MaxPool" if n.op == "max_pool2d" else "AveragePool", n.inputs, [n.name],
                                     name=n.name, **kw))
        elif n.op == "dense":
            nodes.append(h.make_node("Gemm", n.inputs, [n.name], name=n.name, transB=1))
        elif n.op == "concatenate":
            nodes.append(h.make_node("Concat", n.inputs, [n.name], name=n.name, axis=a["axis"]))
        elif n.op == "flatten":
            nodes.append(h.make_node("Flatten", n.inputs, [n.name], name=n.name, axis=a["axis"]))
        else:
            op = {"relu": "Relu", "add": "Add", "global_avg_pool2d": "GlobalAveragePool"}[n.op]
            nodes.append(h.make_node(op, n.inputs, [n.name], name=n.name))
    x = g.node(g.inputs[0])
    return make_model(nodes, [(x.name, list(x.type.shape))], [(o, list(g.node(o).type.shape)) for o in g.outputs],
                      inits, opset)


@pytest.mark.parametrize("name,size,batch", [("resnet18", 32, 2),
                                             pytest.param("inception_v3", 75, 1, marks=pytest.mark.slow)])
def test_zoo_model_roundtrip_through_onnxruntime(name, size, batch):
    from minitvm.graph import get_model
    g, _ = get_model(name, batch=batch, image_size=size)
    model = graph_to_onnx(g)
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype("float32")
    imported, params = check(model, {"data": x}, tol=1e-4)
    assert [n.op for n in imported.op_nodes()] == [n.op for n in g.op_nodes()]
    np.testing.assert_allclose(run_reference(imported, {"data": x})[0], run_reference(g, {"data": x})[0],
                               rtol=1e-6, atol=1e-6)


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    from minitvm.errors import GraphError
    from minitvm.frontend import from_onnx
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage, not a model")
    with pytest.raises(GraphError, match="bad.onnx.*is not an ONNX model"):
        from_onnx(str(bad))
    with pytest.raises(GraphError, match="is a directory"):
        from_onnx(str(tmp_path))
    with pytest.raises(GraphError, match="bytes given are not an ONNX model"):
        from_onnx(b"\xff\xff\xff")
