"""The reference executor: runs a graph in plain numpy, node by node.

It is the oracle of the tests: every op's numpy reference (``OpDef.compute``) accumulates in
float64 (int64 for integers) and rounds once to the node's output dtype.
"""
from __future__ import annotations

import numpy as np

from ..errors import DtypeError, GraphError, ShapeError
from .ir import Graph
from .ops import get_op

__all__ = ["run_reference", "evaluate_op", "check_inputs"]


def evaluate_op(graph: Graph, name: str, values: list) -> np.ndarray:
    """Compute op node ``name`` of ``graph`` on the numpy arrays ``values`` (one per input)."""
    node = graph.node(name)
    try:
        out = get_op(node.op).compute(values, node.attrs, node.type)
    except Exception as e:  # pragma: no cover - a reference bug; say where it happened
        if hasattr(e, "add_note"):
            e.add_note(f"while evaluating {graph.node_text(name)}")
        raise
    out = np.asarray(out)
    if out.shape != node.type.shape or out.dtype.name != node.type.dtype:
        raise GraphError(f"node {name!r} ({node.op}): the reference produced {out.dtype.name}{list(out.shape)}, "
                         f"type inference says {node.type}")
    return out


def check_inputs(graph: Graph, inputs: dict) -> dict:
    """Validate ``inputs`` (name -> array) against the graph inputs; returns them as typed arrays.

    Missing or unknown names raise ``GraphError``, a wrong shape ``ShapeError``, a dtype that
    cannot be converted safely (same kind) ``DtypeError``.
    """
    missing = [n for n in graph.inputs if n not in inputs]
    if missing:
        raise GraphError(f"graph {graph.name!r}: no value given for input(s) {missing}")
    extra = [n for n in inputs if n not in graph.inputs]
    if extra:
        raise GraphError(f"graph {graph.name!r}: {extra} are not inputs (inputs are {graph.inputs})")
    out = {}
    for n in graph.inputs:
        t = graph.node(n).type
        a = np.asarray(inputs[n])
        if a.shape != t.shape:
            raise ShapeError(f"input {n!r}: expected shape {list(t.shape)}, got {list(a.shape)}")
        if a.dtype.name != t.dtype:
            if not np.can_cast(a.dtype, t.dtype, "same_kind"):
                raise DtypeError(f"input {n!r}: expected {t.dtype}, got {a.dtype.name}")
            a = a.astype(t.dtype)
        out[n] = a
    return out


def run_reference(graph: Graph, inputs: dict, return_all: bool = False):
    """Run ``graph`` on ``inputs`` (name -> array) in numpy; returns the list of outputs.

    With ``return_all`` it returns ``{node name: array}`` for every node instead (intermediate
    values are otherwise freed as soon as their last consumer has run).
    """
    if not graph.outputs:
        raise GraphError(f"graph {graph.name!r} has no outputs (call mark_output)")
    vals = dict(check_inputs(graph, inputs))
    order = graph.topo_order()
    remaining = {n: len(graph.consumers(n)) + graph.outputs.count(n) for n in order}
    for n in order:
        node = graph.node(n)
        if node.kind == "const":
            vals[n] = node.value
        elif node.kind == "op":
            vals[n] = evaluate_op(graph, n, [vals[i] for i in node.inputs])
            if not return_all:
                for i in set(node.inputs):
                    remaining[i] -= 1  # one per consumer (inputs read twice count once)
                    if remaining[i] == 0:
                        vals.pop(i, None)
    if return_all:
        return vals
    return [vals[o] for o in graph.outputs]
