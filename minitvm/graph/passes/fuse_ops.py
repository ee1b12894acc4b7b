"""Operator fusion: partition a graph's op nodes into groups that become one kernel each.

Patterns (as in TVM): *anchor* ops (conv2d, dense, matmul, deformable_conv2d) may absorb the
chain of element-wise / broadcast ops that follows them (bias, batch-norm scale, relu, clip,
residual add, requantize ...); chains of such injective ops fuse together; pooling, softmax
and concatenation stay groups of their own (they may also absorb a following injective chain).
An op joins its producer's group only when it is that producer's sole consumer and the
producer is not a graph output, so no intermediate value a later group needs is lost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ops.math import BINARY_OPS, UNARY_OPS

ANCHOR = "anchor"
INJECTIVE = "injective"
REDUCE = "reduce"
OPAQUE = "opaque"

PATTERNS = {
    "conv2d": ANCHOR, "dense": ANCHOR, "matmul": ANCHOR, "deformable_conv2d": ANCHOR,
    "relu": INJECTIVE, "clip": INJECTIVE, "add": INJECTIVE, "sub": INJECTIVE, "mul": INJECTIVE,
    "bias_add": INJECTIVE, "batch_norm": INJECTIVE, "layout_transform": INJECTIVE, "pad": INJECTIVE,
    "fold_kernel_width": INJECTIVE, "deformable_sample": INJECTIVE,
    "flatten": INJECTIVE, "reshape": INJECTIVE, "requantize": INJECTIVE, "quantize": INJECTIVE,
    "dequantize": INJECTIVE, "cast": INJECTIVE, "requantize_per_channel": INJECTIVE, "qadd": INJECTIVE,
    "qconcatenate": OPAQUE,
    "max_pool2d": REDUCE, "avg_pool2d": REDUCE, "global_avg_pool2d": REDUCE, "global_max_pool2d": REDUCE,
    "reduce": REDUCE,
    "softmax": OPAQUE, "concatenate": OPAQUE,
}
PATTERNS.update({op: INJECTIVE for op in UNARY_OPS + BINARY_OPS + ("where", "strided_slice", "take",
                                                                     "broadcast_to", "tile", "interpolate")})

# element-wise ops an anchor or reduction can take as its epilogue (shape-preserving)
_EPILOGUE = {"relu", "clip", "add", "sub", "mul", "bias_add", "batch_norm", "requantize", "cast",
             "requantize_per_channel", "qadd", "quantize", "dequantize", *UNARY_OPS, *BINARY_OPS, "where"}


def pattern_of(op_type: str) -> str:
    """The fusion pattern of an op type (unknown ops are opaque)."""
    return PATTERNS.get(op_type, OPAQUE)


@dataclass
class FusedGroup:
    """Op nodes (in topological order) computed by one kernel; ``anchor`` sets its schedule."""

    nodes: list = field(default_factory=list)
    anchor: str | None = None

    @property
    def output(self) -> str:
        return self.nodes[-1]

    def __repr__(self):
        return f"FusedGroup({' -> '.join(self.nodes)})"


def fuse_ops(graph, max_depth: int = 16) -> list:
    """Partition ``graph``'s op nodes into :class:`FusedGroup` s, in execution order."""
    outputs = set(graph.outputs)
    group_of: dict = {}
    groups: list = []
    topo = graph.topo_order()
    for name in topo:
        node = graph.node(name)
        if not node.is_op:
            continue
        pat = pattern_of(node.op)
        host = _fusable_producer(graph, name, node, pat, group_of, outputs, max_depth)
        if host is not None:
            host.nodes.append(name)
            group_of[name] = host
            continue
        g = FusedGroup([name], name if pat in (ANCHOR, REDUCE, OPAQUE) else None)
        groups.append(g)
        group_of[name] = g
    # a group's only value used elsewhere is its output, so output order is a valid run order
    position = {n: i for i, n in enumerate(topo)}
    groups.sort(key=lambda g: position[g.output])
    return groups


def _fusable_producer(graph, name, node, pat, group_of, outputs, max_depth):
    """The group ``name`` can join, or None."""
    if pat != INJECTIVE:
        return None
    for inp in node.inputs:
        g = group_of.get(inp)
        if g is None or g.output != inp or inp in outputs:
            continue
        if len(graph.consumers(inp)) != 1 or len(g.nodes) >= max_depth:
            continue
        anchor = graph.node(g.anchor) if g.anchor else None
        if anchor is not None:
            if pattern_of(anchor.op) == OPAQUE or node.op not in _EPILOGUE:
                continue
            if graph.node(inp).type.shape != node.type.shape or any(
                    graph.node(i).is_op and i != inp and graph.node(i).type.shape != node.type.shape
                    and graph.node(i).type.ndim == node.type.ndim for i in node.inputs):
                continue  # epilogues keep the anchor's shape (no broadcasting of the output)
        return g
    return None
