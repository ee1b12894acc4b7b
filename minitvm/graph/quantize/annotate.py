"""Annotate: decide which values of a float graph become int8 (phase 1 of 3).

The result, an :class:`AnnotatedGraph`, is pure bookkeeping over the (batch-norm folded) float
graph; nothing is rewritten yet. The rules:

* an **anchor** -- ``conv2d`` (plain NCHW/OIHW, float, constant weight and bias), ``dense``
  (constant weight and bias) or ``deformable_conv2d`` (constant weight and bias; its offsets stay
  float, its samples are int8 on the data's scale) -- runs int8 x int8 -> int32 unless skipped: conv layers whose
  index (counting every ``conv2d`` in topological order) is in ``skip_conv_layers`` (default
  ``[0]``: the first conv stays float) and every dense with ``skip_dense_layer``;
* a **pass-through** op (``relu``, ``clip``, ``max_pool2d``, ``global_max_pool2d``,
  ``flatten``, ``reshape``, ``transpose``, ``pad`` with value 0) runs in int8 on the scale of its
  input whenever its input is int8;
* ``add`` of two activations (no constant operand) runs as ``qadd`` and ``concatenate`` as
  ``qconcatenate`` when at least one input is int8 (float inputs are quantized);
* everything else (pooling averages, softmax, sigmoid, skipped layers ...) stays float; int8
  values it reads are dequantized.

Every int8 value's scale is defined by one **scale root**: an anchor (its requantize), a
``qadd``, a ``qconcatenate``, or a ``quantize`` of a float value read by an int8 op; pass-through
ops share their input's root. A root's scale is calibrated on the statistics of its
**statistics node**: the root itself, or the ``relu``/``clip(min>=0)`` that is its sole consumer
(negative accumulators that the relu discards then do not waste int8 range).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..passes import fold_constant, simplify_inference
from .qconfig import QConfig, current_qconfig

__all__ = ["AnnotatedGraph", "annotate", "PASS_THROUGH_OPS", "ANCHOR_OPS", "WEIGHT_INPUT"]

#: anchor op -> the index of its weight input (a bias, if any, follows it)
WEIGHT_INPUT = {"conv2d": 1, "dense": 1, "deformable_conv2d": 2}
ANCHOR_OPS = tuple(WEIGHT_INPUT)
PASS_THROUGH_OPS = ("relu", "clip", "max_pool2d", "global_max_pool2d", "flatten", "reshape", "transpose", "pad")
_RELU_LIKE = ("relu", "clip")


@dataclass
class AnnotatedGraph:
    """What :func:`annotate` decided (see the module docstring).

    ``graph`` is the float graph the other phases work on (batch norms folded, constants
    folded); ``int8`` the op nodes realized in int8; ``anchors`` the conv2d/dense among them;
    ``skipped`` the conv2d/dense kept float (with the reason); ``roots`` maps every int8 node
    to its scale root; ``quantize_points`` lists the float values that get a ``quantize``
    because an int8 op reads them; ``stat_node`` maps each scale key (roots and quantize
    points) to the node whose statistics calibrate it; ``concat_groups`` lists, per
    ``concatenate`` whose inputs' roots can all take its scale, those roots.
    """

    graph: Graph
    config: QConfig
    int8: set = field(default_factory=set)
    anchors: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    roots: dict = field(default_factory=dict)
    quantize_points: list = field(default_factory=list)
    stat_node: dict = field(default_factory=dict)
    concat_groups: dict = field(default_factory=dict)

    @property
    def scale_keys(self) -> list:
        """Every value needing a calibrated scale (roots, then quantize points), in graph order."""
        return list(self.stat_node)

    def is_int8(self, name: str) -> bool:
        """True when node ``name`` is realized in int8."""
        return name in self.int8

    def summary(self) -> str:
        """A readable account of the decisions."""
        g = self.graph
        lines = [f"annotated {g.name}: {len(self.anchors)} quantized anchors, {len(self.int8)} int8 ops, "
                 f"{len(self.quantize_points)} quantize points"]
        for n in g.topo_order():
            node = g.node(n)
            if node.kind != "op":
                continue
            if n in self.int8:
                root = self.roots[n]
                tag = "int8" + (f" (scale of {root})" if root != n else f" (scale from {self.stat_node[n]})")
            else:
                tag = "float" + (f" (skipped: {self.skipped[n]})" if n in self.skipped else "")
            lines.append(f"  {n:<32} {node.op:<18} {tag}")
        if self.quantize_points:
            lines.append("  quantize: " + ", ".join(self.quantize_points))
        return "\n".join(lines)


def _anchor_ok(g: Graph, node) -> str | None:
    """None when ``node`` (conv2d/dense) can be quantized, else the reason it cannot."""
    dt = g.node(node.inputs[0]).type
    if np.dtype(dt.dtype).kind != "f":
        return f"data is {dt.dtype}"
    for i in node.inputs[WEIGHT_INPUT[node.op]:]:
        if g.node(i).kind != "const":
            return f"{i!r} is not a constant"
    if node.op == "deformable_conv2d" and np.dtype(g.node(node.inputs[1]).type.dtype) != np.float32:
        return "offsets are not float32"
    if node.op == "conv2d":
        a = node.attrs
        if a["data_layout"] != "NCHW" or a["kernel_layout"] != "OIHW" or a["out_layout"] not in ("", "NCHW"):
            return "packed layout (quantize before the layout rewrite)"
        if dt.layout not in ("", "NCHW"):
            return f"data layout {dt.layout}"
    return None


def _pass_through_ok(g: Graph, node) -> bool:
    if node.op == "pad":
        return node.attrs["mode"] == "constant" and node.attrs["value"] == 0
    return True


def annotate(graph: Graph, config: QConfig | None = None) -> AnnotatedGraph:
    """Phase 1: decide which values become int8 (rules in the module docstring).

    Batch norms are folded into their convs and constants folded first (on a copy). Uses
    ``config`` or :func:`current_qconfig`.
    """
    cfg = config or current_qconfig()
    g = fold_constant(simplify_inference(graph))
    ann = AnnotatedGraph(g, cfg)
    order = g.topo_order()
    outputs = set(g.outputs)
    conv_index = 0
    for n in order:
        node = g.node(n)
        if node.kind != "op":
            continue
        ins = node.inputs
        if node.op in ANCHOR_OPS:
            reason = None
            if node.op == "conv2d":
                if conv_index in cfg.skip_conv_layers:
                    reason = f"conv layer {conv_index} in skip_conv_layers"
                conv_index += 1
            elif node.op == "dense" and cfg.skip_dense_layer:
                reason = "skip_dense_layer"
            reason = reason or _anchor_ok(g, node)
            if reason:
                ann.skipped[n] = reason
                continue
            ann.int8.add(n)
            ann.anchors.append(n)
            ann.roots[n] = n
        elif node.op in PASS_THROUGH_OPS:
            if ins[0] in ann.int8 and _pass_through_ok(g, node):
                ann.int8.add(n)
                ann.roots[n] = ann.roots[ins[0]]
        elif node.op in ("add", "concatenate"):
            types = [g.node(i).type for i in ins]
            if (any(i in ann.int8 for i in ins) and all(g.node(i).kind != "const" for i in ins)
                    and all(np.dtype(t.dtype).kind == "f" and t.layout in ("", "NCHW") for t in types)):
                ann.int8.add(n)
                ann.roots[n] = n
    # quantize points: float values read by int8 ops (data inputs only; weights are handled apart)
    qpoints = []
    for n in order:
        if n not in ann.int8:
            continue
        node = g.node(n)
        data_ins = node.inputs[:1] if node.op in ANCHOR_OPS else node.inputs
        for i in data_ins:
            if i not in ann.int8 and i not in qpoints:
                qpoints.append(i)
    ann.quantize_points = [n for n in order if n in qpoints]
    # statistics nodes: a root's sole relu-like consumer (when that relu stays on the root's scale)
    for n in order:
        if n in ann.int8 and ann.roots[n] == n:
            s = n
            while True:
                cons = g.consumers(s)
                if s in outputs or len(cons) != 1:
                    break
                c = g.node(cons[0])
                if c.op not in _RELU_LIKE or c.name not in ann.int8:
                    break
                if c.op == "clip" and c.attrs["min"] < 0:
                    break
                s = c.name
            ann.stat_node[n] = s
        elif n in ann.quantize_points:
            ann.stat_node[n] = n
    # concatenations whose every input root is free to take the concat's scale
    for n in order:
        node = g.node(n)
        if n not in ann.int8 or node.op != "concatenate":
            continue
        roots = []
        for i in node.inputs:
            r = _free_root(ann, g, i, n, outputs)
            if r is None or r in roots:
                roots = None
                break
            roots.append(r)
        if roots:
            ann.concat_groups[n] = roots
    return ann


def _free_root(ann: AnnotatedGraph, g: Graph, value: str, concat: str, outputs: set) -> str | None:
    """The root of int8 ``value`` when every node from it to ``concat`` has ``concat``'s chain as
    its only use (so the root may be requantized straight to the concat's scale)."""
    if value not in ann.int8:
        return None
    root = ann.roots[value]
    if root == value and g.node(root).op not in ANCHOR_OPS + ("add",):
        return None
    s, nxt = value, concat
    while True:
        if s in outputs or g.consumers(s) != [nxt]:
            return None
        if s == root:
            return root
        nxt, s = s, g.node(s).inputs[0]
