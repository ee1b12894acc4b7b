"""Post-training int8 quantization of graphs (after TVM's Relay flow: annotate -> calibrate -> realize).

::

    from minitvm.graph.quantize import qconfig, quantize_graph, layer_report

    with qconfig(calibrate_mode="kl_divergence"):
        qgraph = quantize_graph(graph, dataset)          # int8 graph, float outputs
    print(layer_report(graph, qgraph, dataset[0]))       # SQNR / cosine per quantized layer

Importing this package registers the quantized ops (:mod:`.ops`): ``quantize``,
``dequantize``, ``requantize``, ``requantize_per_channel``, ``qadd``, ``qconcatenate``.
See ``docs/quantize.md``.
"""
from . import ops  # noqa: F401  (registers the ops)
from .annotate import ANCHOR_OPS, PASS_THROUGH_OPS, AnnotatedGraph, annotate
from .calibrate import (ActivationStats, CalibratedGraph, calibrate, collect_stats, kl_divergence_threshold,
                        percentile_threshold, weight_scales)
from .ops import (QUANTIZE_OPS, dequantize_np, multiplier_shift, qadd_np, qadd_params, qconcatenate_np,
                  quantize_np, requantize_np, requantize_per_channel_np)
from .qconfig import QConfig, current_qconfig, qconfig
from .realize import QuantInfo, quantize_graph, realize, simulate
from .report import LayerReport, LayerRow, cosine_similarity, layer_report, sqnr_db

__all__ = [
    "qconfig", "current_qconfig", "QConfig",
    "annotate", "AnnotatedGraph", "calibrate", "CalibratedGraph", "ActivationStats", "collect_stats",
    "kl_divergence_threshold", "percentile_threshold", "weight_scales",
    "realize", "simulate", "quantize_graph", "QuantInfo",
    "layer_report", "LayerReport", "LayerRow", "sqnr_db", "cosine_similarity",
    "quantize_np", "dequantize_np", "requantize_np", "requantize_per_channel_np", "qadd_np", "qconcatenate_np",
    "multiplier_shift", "qadd_params", "QUANTIZE_OPS", "ANCHOR_OPS", "PASS_THROUGH_OPS",
]
