"""From graph nodes to tensor expressions and from fused groups to schedules, through the op
strategies of :mod:`minitvm.graph.ops.strategy`: what ``build`` compiles and what
``tune.extract_tasks`` inspects."""
from __future__ import annotations

from dataclasses import dataclass

from .. import te
from ..errors import GraphError
from .ops import strategy
from .passes import dead_code_elimination, fold_constant, guard_padded_taps, simplify_inference
from .passes.alter_layout import alter_layout
from .passes.fuse_ops import fuse_ops
from ..target import Target


def optimize(graph, target=None):
    """The standard graph passes before compilation: BN folding, constant folding, DCE, marking
    the convolutions whose padded taps meet non-finite weights; for an LLVM ``target`` with AVX2
    or AVX-512 then the float convs' packed layouts (``alter_layout`` with ``int8=False``: int8
    convs are laid out when the graph is quantized)."""
    for p in (simplify_inference, fold_constant, dead_code_elimination, guard_padded_taps):
        graph = p(graph)
    if target is not None and Target(target).kind == "llvm":
        graph = alter_layout(graph, target=target, int8=False)
    return graph


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


@dataclass(frozen=True)
class LoweredGroup:
    """One fused group as tensor expressions: its position (``index`` of ``total``), the group,
    the names of the graph values it reads (``inputs``) and their placeholders (``params``),
    its output tensor, its schedule and the implementation (template) that made it."""
    index: int
    total: int
    group: object
    inputs: list
    params: list
    out: object
    schedule: object
    implementation: str = ""


def lowered_groups(graph, target):
    """Yield a :class:`LoweredGroup` per fused group of ``graph`` (already optimized), scheduled
    for ``target`` (a :class:`~minitvm.target.Target` or its string). Schedule templates ask the
    current autotune dispatch context for their configs here."""
    groups = fuse_ops(graph)
    for k, grp in enumerate(groups):
        tensors: dict = {}
        ext: list = []
        for name in grp.nodes:
            node = graph.node(name)
            ins = []
            for i in node.inputs:
                if i not in tensors:
                    t = graph.node(i).type
                    tensors[i] = te.placeholder(tuple(t.shape), t.dtype, c_name(i))
                    ext.append(i)
                ins.append(tensors[i])
            try:
                tensors[name] = lower_op(node, ins)
            except GraphError:
                raise
            except Exception as exc:
                raise GraphError(f"node {name!r} ({node.op}): cannot be compiled: {exc}") from exc
        out = tensors[grp.output]
        anchor = graph.node(grp.anchor) if grp.anchor else None
        try:
            with Target(target):        # templates read its features (vector registers ...)
                s, impl = schedule_group(anchor, graph.input_types(grp.anchor) if anchor else [], out, target)
        except Exception as exc:
            raise GraphError(f"fused group {grp.nodes} (anchor {grp.anchor}): cannot be scheduled: {exc}") from exc
        yield LoweredGroup(k, len(groups), grp, ext, [tensors[i] for i in ext], out, s, impl)
