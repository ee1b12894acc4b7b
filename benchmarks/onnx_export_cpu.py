"""The models of ``models_cpu.py`` as ONNX, so that onnxruntime runs exactly the network minitvm runs.

* :func:`to_onnx` writes a float minitvm graph (the zoo's ResNets, :func:`mobilenet_v2`) as an
  ONNX model with the same weights: conv2d, batch_norm, relu, clip, add, max / global average
  pooling, flatten and dense, the ops these models use (anything else is refused by name).
* :func:`mobilenet_v2` builds torchvision's MobileNetV2 (width 1.0: inverted residuals with
  depthwise 3x3 convs, relu6, linear bottlenecks) as a minitvm graph, weights seeded and scaled
  like the zoo's (He-scaled convs; batch norms near identity, the last one of each residual branch
  scaled down so that activations stay O(1)).
"""
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from minitvm.graph.ir import Graph

_MBV2 = [  # expansion t, channels c, repeats n, first stride s (torchvision's inverted_residual_setting)
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(batch=1, image_size=224, num_classes=1000, seed=0):
    """torchvision's ``mobilenet_v2()`` architecture as a minitvm graph (input ``data``, NCHW)."""
    g = Graph("mobilenet_v2")

    def rng(name):
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    def const(name, shape, std=None, lo=None, hi=None):
        r = rng(name)
        v = r.standard_normal(shape) * std if std is not None else r.uniform(lo, hi, shape)
        return g.add_const(name, v.astype(np.float32))

    def conv_bn(name, x, out_ch, k, stride=1, groups=1, act=True, gamma=1.0):
        cin = g.node(x).type.shape[1]
        fan_in = cin // groups * k * k
        w = const(f"{name}.weight", (out_ch, cin // groups, k, k), std=np.sqrt(2.0 / fan_in))
        y = g.add_op("conv2d", [x, w], {"strides": stride, "padding": k // 2, "groups": groups}, name=name)
        bn = [const(f"{name}_bn.weight", (out_ch,), lo=0.8 * gamma, hi=1.2 * gamma),
              const(f"{name}_bn.bias", (out_ch,), std=0.05), const(f"{name}_bn.running_mean", (out_ch,), std=0.05),
              const(f"{name}_bn.running_var", (out_ch,), lo=0.8, hi=1.2)]
        y = g.add_op("batch_norm", [y] + bn, {"epsilon": 1e-5}, name=f"{name}_bn")
        return g.add_op("clip", [y], {"min": 0.0, "max": 6.0}, name=f"{name}_relu6") if act else y

    x = g.add_input("data", (batch, 3, image_size, image_size), "float32")
    x = conv_bn("features.0", x, 32, 3, 2)
    cin, layer = 32, 1
    blocks = sum(n for _, _, n, _ in _MBV2)
    for t, c, n, s in _MBV2:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{layer}"
            y = x if t == 1 else conv_bn(f"{p}.expand", x, cin * t, 1)
            y = conv_bn(f"{p}.dw", y, cin * t, 3, stride, groups=cin * t)
            res = stride == 1 and cin == c
            y = conv_bn(f"{p}.project", y, c, 1, act=False, gamma=1 / np.sqrt(blocks) if res else 1.0)
            x = g.add_op("add", [x, y], name=f"{p}.add") if res else y
            cin, layer = c, layer + 1
    x = conv_bn(f"features.{layer}", x, 1280, 1)
    x = g.add_op("global_avg_pool2d", [x], name="avgpool")
    x = g.add_op("flatten", [x], name="flatten")
    w = const("classifier.weight", (num_classes, 1280), std=np.sqrt(1.0 / 1280))
    b = const("classifier.bias", (num_classes,), std=0.01)
    g.mark_output(g.add_op("dense", [x, w, b], name="classifier"))
    return g


def _pads(p):
    top, left, bottom, right = p
    return [int(top), int(left), int(bottom), int(right)]


def to_onnx(graph, opset=17):
    """The float graph ``graph`` as an ``onnx.ModelProto`` (checked with ``onnx.checker``)."""
    nodes, inits, inputs = [], [], []
    for name in graph.topo_order():
        nd = graph.node(name)
        if nd.is_input:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(nd.type.shape)))
            continue
        if nd.is_const:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(nd.value), name))
            continue
        a, ins = nd.attrs, list(nd.inputs)
        if nd.op == "conv2d":
            nodes.append(helper.make_node("Conv", ins, [name], name=name, strides=list(a["strides"]),
                                          pads=_pads(a["padding"]), dilations=list(a["dilation"]),
                                          group=int(a["groups"]), kernel_shape=list(graph.node(ins[1]).type.shape[2:])))
        elif nd.op == "batch_norm":
            nodes.append(helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=float(a["epsilon"])))
        elif nd.op == "relu":
            nodes.append(helper.make_node("Relu", ins, [name], name=name))
        elif nd.op == "clip":
            lo, hi = f"{name}.min", f"{name}.max"
            inits += [numpy_helper.from_array(np.array(a["min"], np.float32), lo),
                      numpy_helper.from_array(np.array(a["max"], np.float32), hi)]
            nodes.append(helper.make_node("Clip", ins + [lo, hi], [name], name=name))
        elif nd.op == "add":
            nodes.append(helper.make_node("Add", ins, [name], name=name))
        elif nd.op == "max_pool2d":
            nodes.append(helper.make_node("MaxPool", ins, [name], name=name, kernel_shape=list(a["pool_size"]),
                                          strides=list(a["strides"]), pads=_pads(a["padding"])))
        elif nd.op == "global_avg_pool2d":
            nodes.append(helper.make_node("GlobalAveragePool", ins, [name], name=name))
        elif nd.op == "flatten":
            nodes.append(helper.make_node("Flatten", ins, [name], name=name, axis=1))
        elif nd.op == "dense":
            nodes.append(helper.make_node("Gemm", ins, [name], name=name, transB=1))
        else:
            raise NotImplementedError(f"to_onnx: op {nd.op!r} of node {name!r} is not exported")
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(graph.node(o).type.shape))
               for o in graph.outputs]
    model = helper.make_model(helper.make_graph(nodes, graph.name, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model
