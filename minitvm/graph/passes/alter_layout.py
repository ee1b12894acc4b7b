"""Layout rewriting: int8 convolutions move to packed ``NCHW[x]c`` / ``OIHW[x]o[x]i`` layouts.

The dp4a templates read 4 input channels as one 32-bit word, so int8 conv2d runs on data in
``NCHW4c`` and weights in ``OIHW4o4i``. This pass rewrites every int8 NCHW conv2d to the packed
layouts, lets the element-wise ops and max pools that follow it (relu, requantize, int8
adds, casts, also with one-element constants such as zero points) and constant padding over H
and W work on packed tensors too, and inserts ``layout_transform`` only where a value
crosses into an op that needs plain NCHW. Transforms of constants (the weights) are folded, so
weights are packed once at build time, and back-to-back transforms that undo each other cancel.
In an int8 ResNet the only transforms left are at the model's input and output boundaries.
"""
from __future__ import annotations

from .fold_constant import fold_constant

# ops that compute element by element (or window by window over H, W) and so work unchanged
# on a packed tensor; their output keeps the input's layout
LAYOUT_AGNOSTIC = {"relu", "clip", "cast", "requantize", "qadd", "add", "sub", "mul", "max_pool2d",
                   "quantize", "dequantize"}


def _is_int8(t) -> bool:
    return t.dtype in ("int8", "uint8")


def alter_layout(graph, factor: int = 4):
    """Rewrite int8 conv2d and its neighbours to ``NCHW{factor}c``; return a new graph."""
    from ..ir import Graph
    data_layout, kernel_layout = f"NCHW{factor}c", f"OIHW{factor}o{factor}i"
    g = Graph(graph.name)
    channels: dict = {}   # packed value -> its true channel count
    twin: dict = {}       # (value, layout) -> the value converted to that layout

    def convert(v, layout):
        t = g.node(v).type
        cur = t.layout or "NCHW"
        if cur == layout:
            return v
        key = (v, layout)
        if key not in twin:
            attrs = {"src_layout": cur, "dst_layout": layout}
            if layout == "NCHW":
                attrs["extents"] = {"C": channels[v]}
            twin[key] = g.add_op("layout_transform", [v], attrs, name=g.unique_name(f"{v}_{layout}"))
            if layout == data_layout:
                channels[twin[key]] = t.shape[1]
        return twin[key]

    for name in graph.topo_order():
        node = graph.node(name)
        if node.is_input:
            g.add_input(name, node.type.shape, node.type.dtype, node.type.layout)
            continue
        if node.is_const:
            g.add_const(name, node.value, node.type.layout)
            continue
        in_types = [g.node(i).type for i in node.inputs]
        attrs = dict(node.attrs)
        if node.op == "conv2d" and _is_int8(in_types[0]) and attrs.get("data_layout", "NCHW") == "NCHW" \
                and _packable(in_types, attrs, factor):
            w = g.add_op("layout_transform", [node.inputs[1]], {"src_layout": "OIHW", "dst_layout": kernel_layout},
                         name=g.unique_name(f"{node.inputs[1]}_{kernel_layout}"))
            attrs.update(data_layout=data_layout, kernel_layout=kernel_layout)
            g.add_op("conv2d", [convert(node.inputs[0], data_layout), w] + list(node.inputs[2:]), attrs, name=name)
            channels[name] = in_types[1].shape[0]
            continue
        if node.op == "requantize_per_channel" and in_types[0].layout == data_layout \
                and attrs.get("axis", 1) % 4 == 1:
            g.add_op(node.op, list(node.inputs), attrs, name=name)   # per-channel constants stay [C]
            channels[name] = channels.get(node.inputs[0], in_types[0].shape[1] * factor)
            continue
        packed_in = [t.layout == data_layout for t in in_types]
        scalar = [g.node(i).is_const and g.node(i).type.size == 1 for i in node.inputs]
        if any(packed_in) and node.op in LAYOUT_AGNOSTIC and \
                all(sc or (t.ndim in (4, 5) and not g.node(i).is_const)
                    for i, t, sc in zip(node.inputs, in_types, scalar)):
            # a one-element constant (a zero point, a scale) broadcasts the same in any layout
            ins = [i if sc else convert(i, data_layout) for i, sc in zip(node.inputs, scalar)]
            g.add_op(node.op, ins, attrs, name=name)
            channels[name] = max(channels.get(i, g.node(i).type.shape[1] * factor)
                                 for i, sc in zip(ins, scalar) if not sc)
            continue
        if node.op == "pad" and packed_in[0] and attrs.get("mode", "constant") == "constant" \
                and all(tuple(p) == (0, 0) for p in attrs["pad_width"][:2]):
            # padding over H and W only: the packed channel block gets no padding
            attrs["pad_width"] = tuple(tuple(p) for p in attrs["pad_width"]) + ((0, 0),)
            g.add_op(node.op, [node.inputs[0]], attrs, name=name)
            channels[name] = channels[node.inputs[0]]
            continue
        g.add_op(node.op, [convert(i, "NCHW") if t.layout == data_layout else i
                           for i, t in zip(node.inputs, in_types)], attrs, name=name)
    for o in graph.outputs:
        g.mark_output(convert(o, "NCHW") if g.node(o).type.layout == data_layout else o)
    return cancel_transforms(fold_constant(g))


def _packable(in_types, attrs, factor) -> bool:
    O, I = in_types[1].shape[0], in_types[1].shape[1]
    return O % factor == 0 and (attrs.get("groups", 1) == 1 or I % factor == 0)


def cancel_transforms(graph):
    """Remove ``layout_transform`` pairs A->B->A (uses of the second read the original)."""
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        for name in list(g.topo_order()):
            if name not in g:
                continue
            node = g.node(name)
            if not node.is_op or node.op != "layout_transform":
                continue
            src = g.node(node.inputs[0])
            if src.is_op and src.op == "layout_transform" and src.attrs["src_layout"] == node.attrs["dst_layout"] \
                    and src.attrs["dst_layout"] == node.attrs["src_layout"] \
                    and g.node(src.inputs[0]).type.shape == node.type.shape:
                g.replace_all_uses(name, src.inputs[0])
                g.remove(name)
                if not g.consumers(src.name) and src.name not in g.outputs:
                    g.remove(src.name)
                changed = True
    return g
