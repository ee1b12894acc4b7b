"""From graph nodes to tensor expressions (``topi`` computes) and from fused groups to schedules."""
from __future__ import annotations

from .. import te
from ..errors import GraphError
from ..topi.nn import conv2d as nn_conv
from ..topi.nn import dense as nn_dense
from ..topi.nn import elemwise as nn_elem
from ..topi.nn.layout import layout_transform


def _nn(module: str):
    import importlib
    return importlib.import_module(f"minitvm.topi.nn.{module}")


def _out_shape(node):
    return tuple(node.type.shape)


def lower_op(node, ins: list):
    """The tensor computing graph node ``node`` from input tensors ``ins``."""
    op, a = node.op, node.attrs
    name = _cname(node.name)
    if op == "conv2d":
        data, weight = ins[0], ins[1]
        if a.get("data_layout", "NCHW") == "NCHW" and a.get("kernel_layout", "OIHW") == "OIHW":
            out = nn_conv.conv2d_nchw(data, weight, a["strides"], a["padding"], a["dilation"], a["groups"],
                                      out_dtype=node.type.dtype, name=name)
        else:
            out = nn_conv.conv2d_NCHWc_int8(data, weight, a["strides"], a["padding"], a["dilation"], a["groups"],
                                            out_dtype=node.type.dtype, name=name)
        return _with_bias(out, ins[2] if len(ins) > 2 else None, name, packed=out.ndim == 5)
    if op == "dense":
        return nn_dense.dense(ins[0], ins[1], ins[2] if len(ins) > 2 else None, out_dtype=node.type.dtype, name=name)
    if op == "matmul":
        from ..topi.nn import matmul
        return matmul(ins[0], ins[1], out_dtype=node.type.dtype, name=name)
    if op == "deformable_conv2d":
        out = _nn("deformable_conv2d").deformable_conv2d_nchw(
            ins[0], ins[1], ins[2], a["strides"], a["padding"], a["dilation"], a["deformable_groups"], a["groups"])
        return _with_bias(out, ins[3] if len(ins) > 3 else None, name, packed=False)
    inj = _nn("injective")
    if op == "relu":
        return nn_elem.relu(ins[0], name=name)
    if op == "clip":
        return inj.clip(ins[0], a["min"], a["max"])
    if op in ("add", "sub", "mul"):
        fn = {"add": inj.add, "sub": inj.subtract, "mul": inj.multiply}[op]
        return fn(ins[0], ins[1])
    if op == "bias_add":
        return inj.bias_add(ins[0], ins[1], axis=a["axis"])
    if op == "batch_norm":
        return inj.batch_norm_inference(ins[0], ins[1], ins[2], ins[3], ins[4], a["epsilon"], axis=a["axis"])
    if op == "cast":
        return inj.cast(ins[0], node.type.dtype)
    if op in ("flatten", "reshape"):
        return inj.reshape(ins[0], _out_shape(node))
    if op == "transpose":
        return inj.transpose(ins[0], a["axes"])
    if op == "concatenate":
        return inj.concatenate(list(ins), a["axis"])
    if op == "pad":
        if a.get("mode", "constant") != "constant":
            raise GraphError(f"node {node.name!r} (pad): mode {a['mode']!r} is not supported by the compiler yet")
        before = [p[0] for p in a["pad_width"]]
        after = [p[1] for p in a["pad_width"]]
        return nn_conv.pad(ins[0], before, after, a["value"], name=name)
    if op == "layout_transform":
        return layout_transform(ins[0], a["src_layout"], a["dst_layout"], a.get("extents"), name=name)
    pool = _nn("pooling")
    layout = node.type.layout or "NCHW"
    if op == "max_pool2d":
        return pool.max_pool2d(ins[0], a["pool_size"], a["strides"], a["padding"], a["ceil_mode"], layout=layout)
    if op == "avg_pool2d":
        return pool.avg_pool2d(ins[0], a["pool_size"], a["strides"], a["padding"], a["ceil_mode"],
                               a["count_include_pad"], layout=layout)
    if op == "global_avg_pool2d":
        return pool.global_avg_pool2d(ins[0], layout=layout)
    if op == "global_max_pool2d":
        return pool.global_max_pool2d(ins[0], layout=layout)
    if op == "softmax":
        return _nn("softmax").softmax(ins[0], axis=a["axis"])
    if op in ("quantize", "dequantize", "requantize", "requantize_per_channel", "qadd", "qconcatenate"):
        return _lower_qnn(node, ins, name)
    if op == "sigmoid":
        return te.compute(ins[0].shape, lambda *i: te.sigmoid(ins[0](*i)), name=name, tag="injective,sigmoid")
    raise GraphError(f"node {node.name!r}: op {op!r} has no compiler lowering yet")


def _lower_qnn(node, ins, name):
    from ..topi.nn import qnn
    op, a, out_dtype = node.op, node.attrs, node.type.dtype
    if op == "quantize":
        return qnn.quantize(ins[0], a["scale"], out_dtype, name=name)
    if op == "dequantize":
        return qnn.dequantize(ins[0], a["scale"], out_dtype, name=name)
    if op == "requantize":
        return nn_elem.requantize(ins[0], a["multiplier"], a["shift"], out_dtype, a["rounding"], name=name)
    if op == "requantize_per_channel":
        return qnn.requantize_per_channel(ins[0], ins[1], ins[2], a["axis"], a["rounding"], out_dtype,
                                          packed=ins[0].ndim == 5, name=name)
    if op == "qadd":
        if [int(d.value) for d in ins[0].shape] != [int(d.value) for d in ins[1].shape]:
            raise GraphError(f"node {node.name!r} (qadd): broadcasting operands are not supported by the compiler")
        return qnn.qadd(ins[0], ins[1], a["a_multiplier"], a["a_shift"], a["b_multiplier"], a["b_shift"],
                        a["rounding"], out_dtype, name=name)
    return qnn.qconcatenate(list(ins), a["multipliers"], a["shifts"], a["axis"], a["rounding"], out_dtype, name=name)


def _with_bias(out, bias, name, packed):
    if bias is None:
        return out
    if packed:
        if bias.ndim == 2:
            return nn_elem.bias_add_NCHWc(out, bias, name=f"{name}_bias")
        block = int(out.shape[4].value)
        return te.compute(out.shape, lambda n, c, h, w, cb: out(n, c, h, w, cb) + bias[c * block + cb],
                          name=f"{name}_bias", tag="injective,bias_add")
    return te.compute(out.shape, lambda n, c, *r: out(n, c, *r) + bias[c], name=f"{name}_bias",
                      tag="injective,bias_add")


def _cname(name: str) -> str:
    """A C identifier made from a node name."""
    out = "".join(ch if ch.isalnum() else "_" for ch in name)
    return out if out and not out[0].isdigit() else "n_" + out


def schedule_group(anchor_op: str | None, out, target: str, int8: bool):
    """A schedule for the fused group computing ``out`` (``anchor_op`` picks the template)."""
    if target == "cuda":
        from ..topi import cuda
        from ..topi.cuda import injective, reduction
        if anchor_op == "conv2d":
            if int8:
                from ..topi.cuda.conv2d_int8 import schedule_conv2d_NCHWc_int8
                return schedule_conv2d_NCHWc_int8(out)
            from ..topi.cuda.conv2d import schedule_conv2d_nchw
            return schedule_conv2d_nchw(out)
        if anchor_op == "dense":
            from ..topi.cuda.dense import schedule_dense
            return schedule_dense(out)
        if anchor_op == "matmul":
            return cuda.matmul.schedule_matmul_naive(out)
        if anchor_op == "deformable_conv2d":
            from ..topi.cuda.deformable_conv2d import schedule_deformable_conv2d_nchw
            return schedule_deformable_conv2d_nchw(out)
        if anchor_op in ("max_pool2d", "avg_pool2d"):
            return reduction.schedule_pool(out)
        if anchor_op in ("global_avg_pool2d", "global_max_pool2d"):
            return reduction.schedule_global_pool(out)
        if anchor_op == "softmax":
            return reduction.schedule_softmax(out)
        return injective.schedule_injective(out)
    from ..topi.cpu import conv2d as cpu_conv
    from ..topi.cpu import dense as cpu_dense
    from ..topi.cpu import injective as cpu_inj
    if anchor_op == "conv2d":
        return cpu_conv.schedule_conv2d_NCHWc_int8(out) if int8 else cpu_conv.schedule_conv2d_nchw(out)
    if anchor_op == "deformable_conv2d":
        return cpu_conv.schedule_deformable_conv2d_nchw(out)
    if anchor_op in ("dense", "matmul"):
        return cpu_dense.schedule_dense(out)
    if anchor_op in ("max_pool2d", "avg_pool2d"):
        return cpu_inj.schedule_pool(out)
    if anchor_op in ("global_avg_pool2d", "global_max_pool2d"):
        return cpu_inj.schedule_global_pool(out)
    if anchor_op == "softmax":
        return cpu_inj.schedule_softmax(out)
    return cpu_inj.schedule_injective(out)
