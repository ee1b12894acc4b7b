"""The graph IR: a dataflow graph of operators on top of a ``networkx.DiGraph``.

A :class:`Graph` holds three kinds of nodes, each keyed by a unique name:

* ``input`` -- a graph input with a :class:`TensorType`;
* ``const`` -- a constant (weights, folded values) holding a numpy array;
* ``op`` -- an operator from the registry in :mod:`minitvm.graph.ops`, with its ordered input
  names, its attributes (normalized, defaults filled in) and its inferred output type.

Each node is a :class:`Node` stored under the ``"node"`` key of the networkx node data. Edges
run producer -> consumer and carry ``type`` (the producer's output :class:`TensorType`),
``index`` (the first input position of the consumer that reads the producer) and ``positions``
(every such position: ``add(%x, %x)`` reads ``%x`` twice through one edge). The ordered input
list ``Node.inputs`` is the authority; the edges mirror it for graph algorithms.

Types are inferred when an op is added, and re-inferred (together with everything downstream)
when its inputs or attributes change through :meth:`Graph.set_inputs`,
:meth:`Graph.set_attrs` or :meth:`Graph.replace_all_uses`.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..errors import DtypeError, GraphError, ShapeError
from .ops import get_op
from .types import TensorType

__all__ = ["TensorType", "Node", "Graph"]


@dataclass
class Node:
    """One graph node. ``kind`` is ``"input"``, ``"const"`` or ``"op"``.

    ``op`` is the op type (``"conv2d"``) for op nodes and ``None`` otherwise; ``attrs`` holds
    the op's normalized attributes; ``inputs`` the ordered names of the producers; ``type`` the
    output :class:`TensorType`; ``value`` the numpy array of a constant. Treat const arrays as
    immutable: graphs and their copies share them.
    """

    name: str
    kind: str
    type: TensorType
    op: str | None = None
    attrs: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    value: np.ndarray | None = None

    @property
    def is_op(self) -> bool:
        """True for operator nodes."""
        return self.kind == "op"

    @property
    def is_const(self) -> bool:
        """True for constants."""
        return self.kind == "const"

    @property
    def is_input(self) -> bool:
        """True for graph inputs."""
        return self.kind == "input"


def _fmt_attr(v) -> str:
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_attr(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


class Graph:
    """A dataflow graph of ops, inputs and constants (see the module docstring)."""

    def __init__(self, name: str = "graph"):
        """An empty graph called ``name``."""
        self.name = name
        self._g = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._order = itertools.count()

    # ------------------------------------------------------------------ construction
    def _check_new_name(self, name):
        if not isinstance(name, str) or not name:
            raise GraphError(f"graph {self.name!r}: node names must be non-empty strings, got {name!r}")
        if name in self._g:
            raise GraphError(f"graph {self.name!r}: a node named {name!r} already exists "
                             f"({self.node(name).kind}); names must be unique")

    def unique_name(self, base: str) -> str:
        """``base`` if no node has that name yet, otherwise ``base_1``, ``base_2`` ..."""
        if base not in self._g:
            return base
        for i in itertools.count(1):
            cand = f"{base}_{i}"
            if cand not in self._g:
                return cand

    def add_input(self, name: str, shape, dtype: str = "float32", layout: str = "") -> str:
        """Add a graph input ``name`` of static ``shape`` and ``dtype``; returns the name."""
        self._check_new_name(name)
        t = TensorType(shape, dtype, layout)
        self._g.add_node(name, node=Node(name, "input", t), order=next(self._order))
        self.inputs.append(name)
        return name

    def add_const(self, name: str, array, layout: str = "") -> str:
        """Add a constant ``name`` holding ``array`` (kept as given, not copied); returns the name."""
        self._check_new_name(name)
        value = np.asarray(array)
        t = TensorType(value.shape, value.dtype.name, layout)
        self._g.add_node(name, node=Node(name, "const", t, value=value), order=next(self._order))
        return name

    def add_op(self, op_type: str, inputs, attrs: dict | None = None, name: str | None = None) -> str:
        """Add an ``op_type`` node reading the nodes named in ``inputs`` (in order); returns its name.

        ``attrs`` are validated and normalized against the op's declaration (defaults filled in)
        and the output type is inferred at once: a bad attribute raises ``GraphError``, a shape
        that does not fit raises ``ShapeError``, both naming the node, the op and the culprit.
        Without ``name`` the node is called after its op type (``conv2d``, ``conv2d_1`` ...).
        """
        opdef = get_op(op_type)
        name = self.unique_name(op_type) if name is None else name
        self._check_new_name(name)
        inputs = list(inputs)
        for i in inputs:
            if not isinstance(i, str) or i not in self._g:
                raise GraphError(f"node {name!r} ({op_type}): input {i!r} is not a node of graph {self.name!r}")
        norm = opdef.normalize_attrs(attrs or {}, name)
        t = opdef.infer_type(name, [self.node(i).type for i in inputs], norm)
        self._g.add_node(name, node=Node(name, "op", t, op=op_type, attrs=norm, inputs=inputs),
                         order=next(self._order))
        self._connect(name)
        return name

    def mark_output(self, name: str) -> None:
        """Append node ``name`` to the graph outputs (in order; marking twice is allowed)."""
        if name not in self._g:
            raise GraphError(f"graph {self.name!r}: cannot mark {name!r} as an output: no such node")
        self.outputs.append(name)

    # ------------------------------------------------------------------ queries
    def node(self, name: str) -> Node:
        """The :class:`Node` called ``name``."""
        try:
            return self._g.nodes[name]["node"]
        except KeyError:
            raise GraphError(f"graph {self.name!r} has no node named {name!r}") from None

    def __contains__(self, name) -> bool:
        return name in self._g

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    def __iter__(self):
        """Nodes (:class:`Node` objects) in topological order."""
        return (self.node(n) for n in self.topo_order())

    @property
    def nx_graph(self) -> nx.DiGraph:
        """The underlying ``networkx.DiGraph`` (read it; change the graph through the methods)."""
        return self._g

    def topo_order(self) -> list[str]:
        """Every node name in a deterministic topological order (ties broken by insertion order)."""
        order = nx.get_node_attributes(self._g, "order")
        return list(nx.lexicographical_topological_sort(self._g, key=lambda n: order[n]))

    def op_nodes(self, op_type: str | None = None) -> list[Node]:
        """Op nodes in topological order, optionally only those of ``op_type``."""
        return [n for n in self if n.kind == "op" and (op_type is None or n.op == op_type)]

    def consumers(self, name: str) -> list[str]:
        """Names of the nodes reading ``name``, in insertion order."""
        self.node(name)
        nodes = self._g.nodes
        return sorted(self._g.successors(name), key=lambda n: nodes[n]["order"])

    def input_types(self, name: str) -> list[TensorType]:
        """The types of node ``name``'s inputs, in input order."""
        return [self.node(i).type for i in self.node(name).inputs]

    def params(self) -> dict:
        """``{name: array}`` of every constant."""
        return {n: d["node"].value for n, d in self._g.nodes(data=True) if d["node"].kind == "const"}

    def num_params(self) -> int:
        """Total number of constant elements."""
        return sum(int(v.size) for v in self.params().values())

    def macs(self) -> int:
        """Multiply-accumulates of one run (conv, dense, matmul ...; element-wise ops count 0)."""
        total = 0
        for n in self.op_nodes():
            total += get_op(n.op).count_macs([self.node(i).type for i in n.inputs], n.type, n.attrs)
        return total

    # ------------------------------------------------------------------ edges / types
    def _connect(self, name):
        """Rebuild the in-edges of ``name`` from its input list."""
        g = self._g
        for p in list(g.predecessors(name)):
            g.remove_edge(p, name)
        pos: dict[str, list] = {}
        for i, p in enumerate(self.node(name).inputs):
            pos.setdefault(p, []).append(i)
        for p, ps in pos.items():
            g.add_edge(p, name, type=self.node(p).type, index=ps[0], positions=tuple(ps))

    def _set_type(self, name, t):
        self.node(name).type = t
        for s in self._g.successors(name):
            self._g.edges[name, s]["type"] = t

    def _reinfer(self, names) -> None:
        """Re-infer ``names`` and, when a type changes, everything downstream of it."""
        order = nx.get_node_attributes(self._g, "order")
        todo = set(names)
        for n in list(todo):
            todo |= nx.descendants(self._g, n)
        dirty = set(names)
        sub = self._g.subgraph(todo)
        for n in nx.lexicographical_topological_sort(sub, key=lambda x: order[x]):
            if n not in dirty:
                continue
            node = self.node(n)
            if node.kind != "op":
                continue
            t = get_op(node.op).infer_type(n, [self.node(i).type for i in node.inputs], node.attrs)
            if t != node.type:
                self._set_type(n, t)
                dirty.update(self._g.successors(n))

    def infer_types(self) -> None:
        """Re-run type inference on every op node, in topological order."""
        for n in self.topo_order():
            node = self.node(n)
            if node.kind == "op":
                self._set_type(n, get_op(node.op).infer_type(n, [self.node(i).type for i in node.inputs],
                                                             node.attrs))

    # ------------------------------------------------------------------ mutation
    def update_op(self, name: str, inputs=None, attrs: dict | None = None, replace_attrs: bool = False) -> None:
        """Change op ``name``'s inputs and/or attributes together, then re-infer it and downstream.

        ``attrs`` update the current attributes (or, with ``replace_attrs``, replace them).
        Changing both at once matters when neither alone type-checks (e.g. a packed weight
        and the matching ``kernel_layout``). On any error the node is left as it was.
        """
        node = self.node(name)
        if node.kind != "op":
            raise GraphError(f"node {name!r} is a {node.kind}, only op nodes have inputs and attributes")
        old_inputs, old_attrs = node.inputs, node.attrs
        if inputs is not None:
            inputs = list(inputs)
            for i in inputs:
                if i not in self._g:
                    raise GraphError(f"node {name!r} ({node.op}): input {i!r} is not a node of graph {self.name!r}")
        if attrs is not None:
            node.attrs = get_op(node.op).normalize_attrs(dict(attrs) if replace_attrs else {**node.attrs, **attrs},
                                                         name)
        if inputs is not None:
            node.inputs = inputs
            self._connect(name)
        try:
            if inputs is not None and not nx.is_directed_acyclic_graph(self._g):
                raise GraphError(f"node {name!r} ({node.op}): new inputs {inputs} would create a cycle")
            self._reinfer([name])
        except Exception:
            node.inputs, node.attrs = old_inputs, old_attrs
            self._connect(name)
            self._reinfer([name])
            raise

    def set_inputs(self, name: str, inputs) -> None:
        """Point op ``name`` at new ``inputs``; its type and everything downstream is re-inferred."""
        self.update_op(name, inputs=inputs)

    def set_attrs(self, name: str, attrs: dict, replace: bool = False) -> None:
        """Update (or with ``replace``, replace) op ``name``'s attributes and re-infer its type."""
        self.update_op(name, attrs=attrs, replace_attrs=replace)

    def set_const(self, name: str, array) -> None:
        """Turn node ``name`` into a constant holding ``array`` (its inputs are disconnected).

        Used by constant folding: consumers keep reading ``name``. The new value must have the
        node's current shape and dtype.
        """
        node = self.node(name)
        value = np.asarray(array)
        if value.shape != node.type.shape or value.dtype.name != node.type.dtype:
            error = ShapeError if value.shape != node.type.shape else DtypeError
            raise error(f"node {name!r}: constant of {value.dtype.name}{list(value.shape)} cannot replace {node.type}")
        if node.kind == "input":
            self.inputs.remove(name)
        node.kind, node.op, node.attrs, node.inputs, node.value = "const", None, {}, [], value
        self._connect(name)

    def replace_all_uses(self, old: str, new: str) -> None:
        """Make every consumer of ``old`` (and the graph outputs) read ``new`` instead.

        Consumers are re-inferred when ``new`` has another type. ``old`` itself stays in the
        graph (remove it, or run dead-code elimination).
        """
        self.node(old)
        self.node(new)
        if old == new:
            return
        blocked = nx.ancestors(self._g, new) | {new}  # rewiring these would create a cycle
        changed = []
        for c in self.consumers(old):
            if c in blocked:
                continue  # e.g. new = f(old): f keeps reading old
            cn = self.node(c)
            cn.inputs = [new if i == old else i for i in cn.inputs]
            self._connect(c)
            changed.append(c)
        self.outputs = [new if o == old else o for o in self.outputs]
        if changed and self.node(old).type != self.node(new).type:
            self._reinfer(changed)

    def remove(self, name: str) -> None:
        """Remove node ``name``; it must have no consumers and must not be a graph output."""
        self.node(name)
        cons = self.consumers(name)
        if cons:
            raise GraphError(f"cannot remove {name!r}: it is still read by {cons}")
        if name in self.outputs:
            raise GraphError(f"cannot remove {name!r}: it is a graph output")
        if name in self.inputs:
            self.inputs.remove(name)
        self._g.remove_node(name)

    def copy(self) -> "Graph":
        """An independent copy (nodes, attrs and input lists copied; constant arrays shared)."""
        g = Graph(self.name)
        g._g = nx.DiGraph()
        for n, d in self._g.nodes(data=True):
            nd = d["node"]
            g._g.add_node(n, node=Node(nd.name, nd.kind, nd.type, nd.op, dict(nd.attrs), list(nd.inputs), nd.value),
                          order=d["order"])
        for u, v, d in self._g.edges(data=True):
            g._g.add_edge(u, v, **d)
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g._order = itertools.count(max(nx.get_node_attributes(self._g, "order").values(), default=-1) + 1)
        return g

    def validate(self) -> None:
        """Check the invariants passes must keep; raises ``GraphError`` naming the first violation.

        The graph is acyclic; every op's inputs exist and its edges mirror its input list; every
        stored type equals a fresh inference (so no pass forgot to re-infer); constants match
        their types; inputs and outputs name existing nodes.
        """
        if not nx.is_directed_acyclic_graph(self._g):
            raise GraphError(f"graph {self.name!r} has a cycle")
        for n in self.inputs + self.outputs:
            if n not in self._g:
                raise GraphError(f"graph {self.name!r}: input/output {n!r} is not a node")
        for n, d in self._g.nodes(data=True):
            node = d["node"]
            if node.name != n:
                raise GraphError(f"node stored under {n!r} is called {node.name!r}")
            if node.kind == "const":
                v = node.value
                if v is None or v.shape != node.type.shape or v.dtype.name != node.type.dtype:
                    raise GraphError(f"constant {n!r} does not match its type {node.type}")
            if node.kind != "op":
                if self._g.in_degree(n):
                    raise GraphError(f"{node.kind} {n!r} has producers")
                continue
            preds = set(self._g.predecessors(n))
            if preds != set(node.inputs):
                raise GraphError(f"node {n!r} ({node.op}): edges {sorted(preds)} differ from inputs {node.inputs}")
            for p in preds:
                e = self._g.edges[p, n]
                want = tuple(i for i, x in enumerate(node.inputs) if x == p)
                if e["positions"] != want or e["type"] != self.node(p).type:
                    raise GraphError(f"edge {p!r} -> {n!r} is stale (positions {e['positions']} vs {want})")
            t = get_op(node.op).infer_type(n, [self.node(i).type for i in node.inputs], node.attrs)
            if t != node.type:
                raise GraphError(f"node {n!r} ({node.op}): stored type {node.type} but inference gives {t}")

    # ------------------------------------------------------------------ printing
    def node_text(self, name: str) -> str:
        """One node as text: ``%conv1 = conv2d(%data, %w) {strides=(2, 2)} : float32[1,64,112,112]``.

        Attributes equal to their default are left out.
        """
        n = self.node(name)
        if n.kind == "input":
            return f"%{n.name} : {n.type}  (input)"
        if n.kind == "const":
            return f"%{n.name} = const : {n.type}"
        defaults = get_op(n.op).defaults()
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in n.attrs.items()
                          if not (k in defaults and _equal(defaults[k], v)))
        args = ", ".join(f"%{i}" for i in n.inputs)
        return f"%{n.name} = {n.op}({args})" + (f" {{{attrs}}}" if attrs else "") + f" : {n.type}"

    def text(self, show_consts: bool = False) -> str:
        """The whole graph as readable text, one op per line in topological order."""
        ins = ", ".join(f"%{i}: {self.node(i).type}" for i in self.inputs)
        lines = [f"graph {self.name}({ins}) {{"]
        for n in self.topo_order():
            kind = self.node(n).kind
            if kind == "op" or (kind == "const" and show_consts):
                lines.append("  " + self.node_text(n))
        lines.append("  return " + ", ".join(f"%{o}" for o in self.outputs))
        lines.append("}")
        return "\n".join(lines)

    def __str__(self):
        return self.text()

    def __repr__(self):
        return (f"<Graph {self.name!r}: {len(self.inputs)} inputs, {len(self.op_nodes())} ops, "
                f"{len(self.outputs)} outputs>")

    def summary(self) -> str:
        """Op counts by type, total MACs, parameter count, then the per-node text dump."""
        ops = self.op_nodes()
        counts = Counter(n.op for n in ops)
        params = self.params()
        nparams = sum(int(v.size) for v in params.values())
        pbytes = sum(int(v.nbytes) for v in params.values())
        macs = self.macs()
        lines = [
            f"graph {self.name}: {len(self.inputs)} input(s), {len(self.outputs)} output(s), {len(ops)} ops",
            "  inputs:  " + ", ".join(f"%{i}: {self.node(i).type}" for i in self.inputs),
            "  outputs: " + ", ".join(f"%{o}: {self.node(o).type}" for o in self.outputs),
            "  ops:     " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            f"  MACs:    {macs:,} ({macs / 1e9:.3f} G)",
            f"  params:  {nparams:,} in {len(params)} constants ({pbytes / 2 ** 20:.2f} MiB)",
            "",
            self.text(),
        ]
        return "\n".join(lines)

    def to_dot(self, show_consts: bool = False) -> str:
        """The graph in Graphviz DOT (``dot -Tsvg``); constants are hidden unless ``show_consts``."""
        def q(s):
            return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"digraph {q(self.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
        shown = set()
        for n in self.topo_order():
            node = self.node(n)
            if node.kind == "const" and not show_consts:
                continue
            shown.add(n)
            if node.kind == "input":
                lines.append(f"  {q(n)} [shape=ellipse, label={q(n + chr(10) + str(node.type))}];")
            elif node.kind == "const":
                lines.append(f"  {q(n)} [shape=note, style=filled, fillcolor=lightgrey, "
                             f"label={q(n + chr(10) + str(node.type))}];")
            else:
                style = ", style=bold" if n in self.outputs else ""
                label = q(n + chr(10) + node.op + chr(10) + str(node.type))
                lines.append(f"  {q(n)} [shape=box{style}, label={label}];")
        for u, v, d in self._g.edges(data=True):
            if u in shown and v in shown:
                lines.append(f"  {q(u)} -> {q(v)} [label={q(str(d['type']))}];")
        lines.append("}")
        return "\n".join(lines)


def _equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False
