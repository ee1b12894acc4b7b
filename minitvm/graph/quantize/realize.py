"""Realize: rewrite the float graph into an int8 graph (phase 3 of 3), or into a float graph
with fake quantization (``simulate``) for debugging.

Realized form of each int8 node ``v`` (scales from :class:`CalibratedGraph`; ``s_x`` the
scale of the input, ``s_w[c]`` the weight scales, ``s_o`` the output scale):

* anchor ``conv2d``/``dense``: ``%v = conv2d(%x_int8, %w_int8, %b_int32) {out_dtype="int32"}``
  with ``w_int8 = clip(rint(w / s_w[c]), -qmax, qmax)`` and ``b_int32 = rint(b / (s_x *
  s_w[c]))`` (constants made here), then ``%v_requantize = requantize(%v)`` with
  ``multiplier_shift(s_x * s_w / s_o)`` -- or ``requantize_per_channel`` with int32 constants
  ``%v.rq_multiplier`` / ``%v.rq_shift`` when the channels' factors differ;
* pass-through ops keep their name and attributes and run on int8 (``clip`` bounds become
  ``rint(bound / s)``);
* ``add`` -> ``qadd`` (attributes from :func:`qadd_params`), ``concatenate`` ->
  ``qconcatenate`` (or a plain ``concatenate`` when every input already has the output scale);
* a float value read by an int8 op -> ``%u_quantize = quantize(%u) {scale}``; an int8 value
  read by a float op or returned -> ``%u_dequantize = dequantize(...) {scale}``.

The graph's outputs stay float. The realized graph carries a :class:`QuantInfo` in its
``qinfo`` attribute (scales of its int8 values, which node to compare with which float node)
for :func:`~minitvm.graph.quantize.layer_report`; ``Graph.copy()`` does not keep it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import ArgumentError
from ..ir import Graph
from .annotate import ANCHOR_OPS, WEIGHT_INPUT, AnnotatedGraph, annotate
from .calibrate import CalibratedGraph, calibrate
from .ops import multiplier_shift, qadd_params
from .qconfig import QConfig, current_qconfig

__all__ = ["realize", "simulate", "quantize_graph", "QuantInfo"]

_I32 = np.iinfo(np.int32)


@dataclass
class QuantInfo:
    """Metadata a realized (or simulated) graph carries in ``graph.qinfo``.

    ``scales``: ``{node of this graph: scale}`` for its int8 values (in simulate mode the
    fake-quantized float values); ``layers``: one ``(anchor, op, node here, float node)`` per
    quantized conv2d/dense, where ``node here`` holds the layer's (requantized, relu'd) output
    and ``float node`` the matching value of the float graph; ``simulated``: True for
    :func:`simulate` graphs (values are float already); ``config``: the settings used.
    """

    scales: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)
    simulated: bool = False
    config: QConfig | None = None


class _Builder:
    """Builds the realized (or simulated) graph node by node, in the float graph's order."""

    def __init__(self, cal: CalibratedGraph, simulate: bool):
        self.cal, self.ann, self.cfg = cal, cal.annotated, cal.config
        self.src = cal.graph
        self.sim = simulate
        self.g = Graph(self.src.name)
        self.fval: dict = {}   # src node -> float value here
        self.qval: dict = {}   # src node -> int8 value here (simulate: fake-quantized float)
        self.info = QuantInfo(simulated=simulate, config=self.cfg)

    # ---------------------------------------------------------------- values
    def const(self, name, array):
        """Add a constant (unique name) to the new graph."""
        return self.g.add_const(self.g.unique_name(name), array)

    def float_of(self, u: str) -> str:
        """The new graph's float value of source node ``u`` (dequantizing its int8 value once if needed)."""
        if u in self.fval:
            return self.fval[u]
        node = self.src.node(u)
        if u in self.qval:
            q = self.qval[u]
            if self.sim:
                self.fval[u] = q
            else:
                self.fval[u] = self.g.add_op("dequantize", [q], {"scale": self.cal.scale_of(u)},
                                             name=self.g.unique_name(f"{u}_dequantize"))
            return self.fval[u]
        if node.kind == "const":
            self.fval[u] = self.g.add_const(u, node.value)
            return u
        raise AssertionError(f"value {u!r} used before it was built")  # pragma: no cover

    def int8_of(self, u: str) -> str:
        """The new graph's int8 value of source node ``u`` (quantizing its float value once if needed)."""
        if u in self.qval:
            return self.qval[u]
        x = self.float_of(u)
        s = self.cal.scales[u]
        q = self.g.add_op("quantize", [x], {"scale": s}, name=self.g.unique_name(f"{u}_quantize"))
        if self.sim:
            q = self.g.add_op("dequantize", [q], {"scale": s}, name=self.g.unique_name(f"{u}_fq"))
        self.info.scales[q] = s
        self.qval[u] = q
        return q

    def _fake_quantize(self, x: str, s: float, base: str) -> str:
        q = self.g.add_op("quantize", [x], {"scale": s}, name=self.g.unique_name(f"{base}_quantize"))
        return self.g.add_op("dequantize", [q], {"scale": s}, name=self.g.unique_name(f"{base}_fq"))

    # ---------------------------------------------------------------- nodes
    def build(self) -> Graph:
        """Rewrite every node of the source graph; returns the new graph (with ``qinfo``)."""
        src = self.src
        for n in src.topo_order():
            node = src.node(n)
            if node.kind == "input":
                self.g.add_input(n, node.type.shape, node.type.dtype, node.type.layout)
                self.fval[n] = n
            elif node.kind == "const":
                continue  # added when read
            elif n not in self.ann.int8:
                self.g.add_op(node.op, [self.float_of(i) for i in node.inputs], node.attrs, name=n)
                self.fval[n] = n
            elif node.op in ANCHOR_OPS:
                self.anchor(node)
            elif node.op == "add":
                self.add(node)
            elif node.op == "concatenate":
                self.concat(node)
            else:
                self.pass_through(node)
        for o in src.outputs:
            self.g.mark_output(self.float_of(o))
        for a in self.ann.anchors:
            stat = self.ann.stat_node[a]
            self.info.layers.append((a, src.node(a).op, self.qval[stat], stat))
        self.g.qinfo = self.info
        return self.g

    def anchor(self, node):
        """conv2d/dense/deformable_conv2d: int8 weights, int32 bias and accumulator, then
        (per-channel) requantize; a deformable conv's offsets stay float."""
        cal, cfg, n = self.cal, self.cfg, node.name
        x = node.inputs[0]
        wi = WEIGHT_INPUT[node.op]
        between = [self.float_of(i) for i in node.inputs[1:wi]]      # the offsets
        s_x = cal.scale_of(x) if x in self.ann.int8 else cal.scales[x]
        s_o = cal.scale_of(n)
        w = self.src.node(node.inputs[wi]).value.astype(np.float64)
        sw = cal.weight_scales[n].astype(np.float64)
        bshape = (-1,) + (1,) * (w.ndim - 1)
        swb = np.broadcast_to(sw, (w.shape[0],)) if sw.size == 1 else sw
        qmax = cfg.qmax_weight
        wq = np.clip(np.rint(w / swb.reshape(bshape)), -qmax, qmax).astype(np.int8)
        acc_scale = s_x * swb  # real value of one accumulator step, per output channel
        bq = None
        if len(node.inputs) > wi + 1:
            b = self.src.node(node.inputs[wi + 1]).value.astype(np.float64)
            bq = np.clip(np.rint(b / acc_scale), _I32.min, _I32.max).astype(np.int32)
        xin = self.int8_of(x)
        wname, bname = node.inputs[wi], (node.inputs[wi + 1] if bq is not None else None)
        if self.sim:
            wc = self.const(f"{wname}_fq", (wq.astype(np.float64) * swb.reshape(bshape)).astype(np.float32))
            ins = [xin] + between + [wc]
            if bq is not None:
                ins.append(self.const(f"{bname}_fq", (bq.astype(np.float64) * acc_scale).astype(np.float32)))
            y = self.g.add_op(node.op, ins, node.attrs, name=n)
            out = self._fake_quantize(y, s_o, n)
        else:
            ins = [xin] + between + [self.const(f"{wname}_int8", wq)]
            if bq is not None:
                ins.append(self.const(f"{bname}_int32", bq))
            y = self.g.add_op(node.op, ins, {**node.attrs, "out_dtype": "int32"}, name=n)
            ms = [multiplier_shift(r) for r in acc_scale / s_o]
            rattrs = {"rounding": cfg.rounding, "out_dtype": "int8"}
            if len(set(ms)) == 1:
                out = self.g.add_op("requantize", [y], {"multiplier": ms[0][0], "shift": ms[0][1], **rattrs},
                                    name=self.g.unique_name(f"{n}_requantize"))
            else:
                mc = self.const(f"{n}.rq_multiplier", np.array([m for m, _ in ms], np.int32))
                sc = self.const(f"{n}.rq_shift", np.array([s for _, s in ms], np.int32))
                out = self.g.add_op("requantize_per_channel", [y, mc, sc], {"axis": 1, **rattrs},
                                    name=self.g.unique_name(f"{n}_requantize"))
        self.info.scales[out] = s_o
        self.qval[n] = out

    def pass_through(self, node):
        """relu, max_pool2d, ...: the same op on the int8 input, same scale."""
        n = node.name
        s = self.cal.scale_of(n)
        attrs = dict(node.attrs)
        if node.op == "clip" and not self.sim:
            attrs["min"] = float(max(-128, np.rint(attrs["min"] / s)))
            attrs["max"] = float(min(127, np.rint(attrs["max"] / s)))
            attrs["min"] = min(attrs["min"], attrs["max"])
        out = self.g.add_op(node.op, [self.int8_of(node.inputs[0])], attrs, name=n)
        self.info.scales[out] = s
        self.qval[n] = out

    def add(self, node):
        """add -> qadd (simulate: float add, then fake quantize)."""
        n = node.name
        a, b = node.inputs
        qa, qb = self.int8_of(a), self.int8_of(b)
        s_a, s_b, s_o = self.info.scales[qa], self.info.scales[qb], self.cal.scale_of(n)
        if self.sim:
            y = self.g.add_op("add", [qa, qb], {}, name=n)
            out = self._fake_quantize(y, s_o, n)
        else:
            attrs = {**qadd_params(s_a / s_o, s_b / s_o), "rounding": self.cfg.rounding}
            out = self.g.add_op("qadd", [qa, qb], attrs, name=n)
        self.info.scales[out] = s_o
        self.qval[n] = out

    def concat(self, node):
        """concatenate -> qconcatenate, or concatenate when every input has the output scale."""
        n = node.name
        ins = [self.int8_of(i) for i in node.inputs]
        scales = [self.info.scales[i] for i in ins]
        s_o = self.cal.scale_of(n)
        same = all(s == s_o for s in scales)
        if self.sim:
            y = self.g.add_op("concatenate", ins, node.attrs, name=n)
            out = y if same else self._fake_quantize(y, s_o, n)
        elif same:
            out = self.g.add_op("concatenate", ins, node.attrs, name=n)
        else:
            ms = [multiplier_shift(s / s_o) for s in scales]
            out = self.g.add_op("qconcatenate", ins, {"multipliers": [m for m, _ in ms], "shifts": [s for _, s in ms],
                                                      "axis": node.attrs["axis"], "rounding": self.cfg.rounding},
                                name=n)
        self.info.scales[out] = s_o
        self.qval[n] = out


def realize(calibrated: CalibratedGraph) -> Graph:
    """Phase 3: the int8 graph (module docstring); outputs stay float. Carries ``qinfo``."""
    return _Builder(calibrated, simulate=False).build()


def simulate(calibrated: CalibratedGraph) -> Graph:
    """The float graph with fake quantization (``quantize`` -> ``dequantize`` pairs) wherever
    :func:`realize` has an int8 value, and dequantized int8 weights / int32 biases, so its
    outputs approximate the realized graph's (up to float rounding at ties)."""
    return _Builder(calibrated, simulate=True).build()


def quantize_graph(graph: Graph, dataset=None, mode: str = "realize", config: QConfig | None = None,
                   progress=None) -> Graph:
    """The whole flow: :func:`annotate` -> :func:`calibrate` -> :func:`realize` (or
    :func:`simulate` with ``mode="simulate"``), under ``config`` or :func:`current_qconfig`.

    ``dataset`` (an iterable of input dicts) is needed unless ``calibrate_mode`` is
    ``global_scale``. ``progress(phase, done, total)``, if given, follows the calibration runs.
    """
    if mode not in ("realize", "simulate"):
        raise ArgumentError(f"quantize_graph: mode={mode!r} must be 'realize' or 'simulate'")
    cfg = config or current_qconfig()
    cal = calibrate(annotate(graph, cfg), dataset, cfg, progress)
    return realize(cal) if mode == "realize" else simulate(cal)
