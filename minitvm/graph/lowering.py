"""From graph nodes to tensor expressions and from fused groups to schedules, through the op
strategies of :mod:`minitvm.graph.ops.strategy`."""
from __future__ import annotations

from .ops import strategy


def lower_op(node, ins: list):
    """The tensor computing graph node ``node`` from input tensors ``ins`` (its op's compute)."""
    return strategy.compute_of(node)(node, ins, c_name(node.name))


def c_name(name: str) -> str:
    """A C identifier made from a node name."""
    out = "".join(ch if ch.isalnum() else "_" for ch in name)
    return out if out and not out[0].isdigit() else "n_" + out


def schedule_group(anchor, in_types: list, out, target):
    """``(schedule, implementation name)`` for the fused group computing ``out`` on ``target``: the
    implementation the strategy of the ``anchor`` node's op selects (``anchor`` None, or no fitting
    implementation: the target's generic one). ``in_types`` are the anchor's input types."""
    impl = strategy.select_implementation(anchor.op if anchor else None, target, anchor.attrs if anchor else {},
                                          in_types)
    return impl.schedule(out), impl.name
