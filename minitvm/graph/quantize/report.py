"""Per-layer quantization report: how far each quantized conv2d/dense is from the float model."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import ArgumentError
from ..ir import Graph
from ..reference import run_reference

__all__ = ["LayerRow", "LayerReport", "layer_report", "sqnr_db", "cosine_similarity"]


def sqnr_db(ref, approx) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum ref^2 / sum (ref - approx)^2)`` in dB
    (``inf`` when they are equal)."""
    ref = np.asarray(ref, np.float64).ravel()
    err = ref - np.asarray(approx, np.float64).ravel()
    noise = float(err @ err)
    sig = float(ref @ ref)
    if noise == 0:
        return math.inf
    if sig == 0:
        return -math.inf
    return 10.0 * math.log10(sig / noise)


def cosine_similarity(a, b) -> float:
    """``<a, b> / (|a| |b|)`` of the flattened arrays (1.0 when both are zero)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b) / (na * nb)


@dataclass
class LayerRow:
    """One quantized layer: ``layer`` (the conv2d/dense), ``op``, the compared float node
    ``compared`` (the layer or its relu), the int8 ``scale``, ``sqnr_db``, ``cosine`` and the
    largest absolute error ``max_abs_err`` of the dequantized int8 output vs the float output."""

    layer: str
    op: str
    compared: str
    scale: float
    sqnr_db: float
    cosine: float
    max_abs_err: float


class LayerReport(list):
    """A list of :class:`LayerRow`; ``str()`` gives an aligned table."""

    def table(self) -> str:
        """The rows as a text table."""
        head = f"{'layer':<28} {'op':<7} {'compared':<28} {'scale':>10} {'SQNR dB':>8} {'cosine':>9} {'max err':>9}"
        lines = [head, "-" * len(head)]
        for r in self:
            lines.append(f"{r.layer:<28} {r.op:<7} {r.compared:<28} {r.scale:>10.4g} {r.sqnr_db:>8.2f} "
                         f"{r.cosine:>9.6f} {r.max_abs_err:>9.4g}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def layer_report(float_graph: Graph, quantized_graph: Graph, inputs) -> LayerReport:
    """Per quantized conv2d/dense of ``quantized_graph`` (from ``realize``/``simulate``/
    ``quantize_graph``, which attach ``qinfo``): SQNR and cosine similarity of its dequantized
    output (after requantize and a following relu) vs the same value of ``float_graph``.

    ``inputs`` is one input dict or an iterable of them (statistics are pooled). The float
    graph may be the original (batch norms unfolded): values are matched by node name, a
    folded batch norm's conv is compared with the batch norm's output when the conv itself is
    gone (``simplify_inference`` keeps the conv's name).
    """
    info = getattr(quantized_graph, "qinfo", None)
    if info is None:
        raise ArgumentError("layer_report: quantized_graph has no .qinfo; pass the graph returned by realize(), "
                         "simulate() or quantize_graph() (Graph.copy() drops it)")
    from ..passes import fold_constant, simplify_inference
    fg = fold_constant(simplify_inference(float_graph))
    samples = [inputs] if isinstance(inputs, dict) else list(inputs)
    acc = {a: [[], []] for a, *_ in info.layers}
    for sample in samples:
        fv = run_reference(fg, sample, return_all=True)
        qv = run_reference(quantized_graph, sample, return_all=True)
        for a, op, qnode, fnode in info.layers:
            q = qv[qnode]
            q = q.astype(np.float64) if info.simulated else q.astype(np.float64) * info.scales[qnode]
            acc[a][0].append(np.asarray(fv[fnode], np.float64).ravel())
            acc[a][1].append(q.ravel())
    rows = LayerReport()
    for a, op, qnode, fnode in info.layers:
        f = np.concatenate(acc[a][0])
        q = np.concatenate(acc[a][1])
        rows.append(LayerRow(a, op, fnode, float(info.scales[qnode]), sqnr_db(f, q), cosine_similarity(f, q),
                             float(np.abs(f - q).max()) if f.size else 0.0))
    return rows
