"""``guard_padded_taps``: the convolutions whose padded taps must be selected, not multiplied."""
from __future__ import annotations

import numpy as np

from ... import dtype as dt
from ..ir import Graph


def guard_padded_taps(graph: Graph) -> Graph:
    """A copy of ``graph`` where each padded float ``conv2d`` whose weight is not a constant,
    or holds inf or NaN, has ``select_padded_taps=True``: its padded taps then add 0 instead of
    ``0 * weight`` (NaN for an infinite weight), as onnxruntime's optimized kernels do. Convs
    with finite constant weights keep the plain product (no select per multiply-add)."""
    g = graph.copy()
    for node in g.op_nodes("conv2d"):
        if not any(node.attrs["padding"]) or not dt.is_float(g.node(node.inputs[0]).type.dtype):
            continue
        w = g.node(node.inputs[1])
        need = not w.is_const or not bool(np.isfinite(w.value).all())
        if need != node.attrs["select_padded_taps"]:
            g.set_attrs(node.name, {"select_padded_taps": need})
    return g
