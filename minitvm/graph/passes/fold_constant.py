"""Constant folding with the ops' numpy references."""
from __future__ import annotations

from ..ir import Graph
from ..reference import evaluate_op
from .dce import dead_code_elimination


def fold_constant(graph: Graph, max_bytes: int | None = None) -> Graph:
    """A copy of ``graph`` where every op whose inputs are all constants is a constant.

    The folded node keeps its name and type (layout included), so consumers are untouched;
    constants nothing reads any more are dropped. ``max_bytes`` skips results larger than
    that (e.g. to avoid materializing a huge broadcast).
    """
    g = graph.copy()
    for n in g.topo_order():
        node = g.node(n)
        if node.kind != "op" or not node.inputs:
            continue
        if not all(g.node(i).kind == "const" for i in node.inputs):
            continue
        if max_bytes is not None and node.type.nbytes > max_bytes:
            continue
        g.set_const(n, evaluate_op(g, n, [g.node(i).value for i in node.inputs]))
    return dead_code_elimination(g)
