"""Inference simplification: batch norm folded away."""
from __future__ import annotations

import numpy as np

from ..ir import Graph

_PLAIN_CONV = {"data_layout": "NCHW", "kernel_layout": "OIHW"}
#: ops a batch norm folds into -> the index of their weight input (a bias, if any, follows it)
_WEIGHT_INPUT = {"conv2d": 1, "dense": 1, "deformable_conv2d": 2}


def _bn_scale_shift(g: Graph, bn):
    gamma, beta, mean, var = (g.node(i).value.astype(np.float64) for i in bn.inputs[1:])
    scale = gamma / np.sqrt(var + bn.attrs["epsilon"])
    return scale, beta - mean * scale


def _foldable_producer(g: Graph, bn) -> bool:
    """True when ``bn`` may be folded into the weights of the conv2d/dense/deformable_conv2d that feeds it."""
    x = g.node(bn.inputs[0])
    if x.kind != "op" or x.op not in _WEIGHT_INPUT:
        return False
    if g.consumers(x.name) != [bn.name] or x.name in g.outputs:
        return False
    if bn.attrs["axis"] % x.type.ndim != 1 or np.dtype(x.type.dtype).kind != "f":
        return False
    if x.op == "conv2d" and (any(x.attrs[k] != v for k, v in _PLAIN_CONV.items())
                             or x.attrs["out_layout"] not in ("", "NCHW")):
        return False
    return all(g.node(i).kind == "const" for i in x.inputs[_WEIGHT_INPUT[x.op]:])


def _drop_orphans(g: Graph, names):
    for n in set(names):
        if n in g and g.node(n).kind == "const" and not g.consumers(n) and n not in g.outputs:
            g.remove(n)


def simplify_inference(graph: Graph) -> Graph:
    """A copy of ``graph`` without ``batch_norm`` nodes (whose statistics are constants).

    A batch norm right after a ``conv2d`` (plain NCHW/OIHW), ``dense`` or ``deformable_conv2d`` that feeds nothing
    else is folded into that op's weight and bias (a bias input is added when there was none).
    Any other batch norm becomes ``mul`` by a per-channel scale and ``add`` of a shift, as
    constants shaped to broadcast along the channel axis. Folded constants are computed in
    float64 and stored in the weight's dtype.
    """
    g = graph.copy()
    for n in g.topo_order():
        if n not in g:
            continue
        bn = g.node(n)
        if bn.kind != "op" or bn.op != "batch_norm":
            continue
        if not all(g.node(i).kind == "const" for i in bn.inputs[1:]):
            continue
        scale, shift = _bn_scale_shift(g, bn)
        dtype = bn.type.dtype
        old_inputs = list(bn.inputs)
        if _foldable_producer(g, bn):
            x = g.node(bn.inputs[0])
            wi = _WEIGHT_INPUT[x.op]
            w = g.node(x.inputs[wi]).value
            bias = g.node(x.inputs[wi + 1]).value.astype(np.float64) if len(x.inputs) > wi + 1 else np.zeros(len(scale))
            old_inputs += x.inputs[wi:]
            bshape = (-1,) + (1,) * (w.ndim - 1)
            new_w = g.add_const(g.unique_name(f"{x.name}.weight_bn"),
                                (w.astype(np.float64) * scale.reshape(bshape)).astype(w.dtype))
            new_b = g.add_const(g.unique_name(f"{x.name}.bias_bn"), (bias * scale + shift).astype(x.type.dtype))
            g.set_inputs(x.name, list(x.inputs[:wi]) + [new_w, new_b])
            g.replace_all_uses(n, x.name)
        else:
            axis = bn.attrs["axis"] % bn.type.ndim
            shape = (len(scale),) + (1,) * (bn.type.ndim - axis - 1)
            s = g.add_const(g.unique_name(f"{n}.scale"), scale.reshape(shape).astype(dtype))
            b = g.add_const(g.unique_name(f"{n}.shift"), shift.reshape(shape).astype(dtype))
            m = g.add_op("mul", [bn.inputs[0], s], name=g.unique_name(f"{n}.mul"))
            a = g.add_op("add", [m, b], name=g.unique_name(f"{n}.add"))
            g.replace_all_uses(n, a)
        g.remove(n)
        _drop_orphans(g, old_inputs)
    return g
