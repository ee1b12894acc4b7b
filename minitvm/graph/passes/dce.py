"""Dead-code elimination."""
from __future__ import annotations

import networkx as nx

from ..ir import Graph


def dead_code_elimination(graph: Graph, keep_inputs: bool = True) -> Graph:
    """A copy of ``graph`` without the nodes no output depends on.

    Graph inputs are kept (the signature does not change) unless ``keep_inputs`` is False.
    """
    g = graph.copy()
    live = set(g.outputs)
    for o in g.outputs:
        live |= nx.ancestors(g.nx_graph, o)
    for n in reversed(g.topo_order()):
        if n in live or (keep_inputs and n in g.inputs):
            continue
        g.remove(n)
    return g
