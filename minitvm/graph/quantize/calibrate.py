"""Calibrate: choose every int8 scale from sample data (phase 2 of 3).

Activations are quantized symmetrically: ``scale = threshold / 127`` where the threshold on
``|x|`` comes from ``calibrate_mode``:

* ``global_scale`` -- no data needed: ``threshold = global_scale`` and ``scale =
  global_scale / 2**(nbit_input - 1)`` (TVM's convention; 8.0 gives 0.0625 for every value);
* ``max`` -- ``threshold = max |x|`` over the calibration set;
* ``percentile`` -- the ``percentile`` (default 99.99) of ``|x|``, read from a
  ``kl_bins``-bin histogram of ``|x|`` over ``[0, max |x|]`` (linear inside a bin; exact zeros
  counted apart);
* ``kl_divergence`` -- TensorRT's entropy calibration on the same histogram (2048 bins): for
  every candidate cut ``i`` (128 .. 2048 bins) the reference distribution ``P`` is the first
  ``i`` bins with the clipped tail added to the last one, ``Q`` is ``P``'s bins merged into 128
  quantization levels and spread back over the non-empty bins (empty bins of ``Q`` get a
  1e-4 floor); the cut with the smallest ``KL(P || Q)`` gives ``threshold = i * bin_width``.
  Exact zeros (relu outputs) are left out of the histogram: they quantize exactly at any scale;
  a histogram with at most 128 non-empty bins (a discrete set of values, such as an image's
  grey levels) takes ``max`` instead, where the search degenerates.

The float graph is run with the numpy reference executor (keep calibration sets small), once
for maxima and, for ``percentile``/``kl_divergence``, once more for the histograms.

Weights get a scale per output channel (``per_channel``) or one per tensor: ``max`` gives
``max |w| / qmax``, ``power2`` the next power of two of ``max |w|`` divided by
``2**(nbit_weight - 1)``. Scales are rounded to float32 (the kernels' arithmetic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import ArgumentError
from ..ops.common import float32_accumulation
from ..reference import run_reference
from .annotate import WEIGHT_INPUT, AnnotatedGraph
from .qconfig import QConfig, current_qconfig

__all__ = ["CalibratedGraph", "ActivationStats", "calibrate", "collect_stats", "kl_divergence_threshold",
           "percentile_threshold", "weight_scales", "choose_threshold"]


@dataclass
class ActivationStats:
    """Statistics of one value over the calibration set: ``absmax``, ``min``, ``max``, element
    ``count``, the number of exact ``zeros`` and (when collected) a histogram ``hist`` of the
    nonzero ``|x|`` over ``[0, absmax]`` (exact zeros, e.g. after a relu, quantize exactly at any
    scale and would otherwise dominate the KL search)."""

    absmax: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    count: int = 0
    zeros: int = 0
    hist: np.ndarray | None = None

    @property
    def bin_width(self) -> float:
        """Width of one histogram bin."""
        return self.absmax / len(self.hist) if self.hist is not None and self.absmax > 0 else 0.0


@dataclass
class CalibratedGraph:
    """An :class:`AnnotatedGraph` with scales: ``scales`` maps every scale key (roots and
    quantize points) to its activation scale, ``thresholds`` to the |x| threshold it came from,
    ``weight_scales`` every anchor to its weight scales (shape ``[O]`` per channel, ``[1]`` per
    tensor); ``stats`` holds the collected :class:`ActivationStats` by statistics node."""

    annotated: AnnotatedGraph
    config: QConfig
    scales: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    weight_scales: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    @property
    def graph(self):
        """The float graph being quantized."""
        return self.annotated.graph

    def scale_of(self, name: str) -> float:
        """The scale of node ``name``'s int8 value (an int8 node or a quantize point)."""
        ann = self.annotated
        key = ann.roots[name] if name in ann.int8 else name
        return self.scales[key]

    def summary(self) -> str:
        """One line per scale key: statistics node, threshold, scale."""
        lines = [f"calibrated {self.graph.name} ({self.config.calibrate_mode}):"]
        for k, s in self.scales.items():
            st = self.annotated.stat_node.get(k, k)
            a = self.stats.get(st)
            amax = f" max|x|={a.absmax:.4g}" if a is not None else ""
            lines.append(f"  {k:<32} stats {st:<32} threshold={self.thresholds[k]:.4g} scale={s:.6g}{amax}")
        return "\n".join(lines)


# ---------------------------------------------------------------------- thresholds
def percentile_threshold(hist: np.ndarray, absmax: float, percentile: float, zeros: int = 0) -> float:
    """The ``percentile`` (0-100) of ``|x|`` from its histogram over ``[0, absmax]`` (linear in a
    bin); ``zeros`` exact zeros are counted apart from the histogram."""
    hist = np.asarray(hist, np.float64)
    total = hist.sum() + zeros
    if hist.sum() == 0 or absmax <= 0:
        return 0.0
    target = total * percentile / 100.0 - zeros
    if target <= 0:
        return 0.0
    cdf = np.cumsum(hist)
    i = int(np.searchsorted(cdf, target, side="left"))
    i = min(i, len(hist) - 1)
    below = cdf[i - 1] if i > 0 else 0.0
    frac = (target - below) / hist[i] if hist[i] > 0 else 1.0
    width = absmax / len(hist)
    return float(min(absmax, (i + min(max(frac, 0.0), 1.0)) * width))


def kl_divergence_threshold(hist: np.ndarray, absmax: float, num_quantized_bins: int = 128,
                            eps: float = 1e-4) -> float:
    """TensorRT entropy calibration: the |x| threshold minimizing ``KL(P || Q)`` (module doc).

    ``hist`` is the histogram of ``|x|`` over ``[0, absmax]``; candidate cuts run from
    ``num_quantized_bins`` bins to all of them; level ``k`` of a cut ``i`` merges bins
    ``[k*i // nq, (k+1)*i // nq)``; ``eps`` is the mass floor of Q's empty bins. A histogram with at most
    ``num_quantized_bins`` non-empty bins (a discrete value set, e.g. 17 grey levels of an
    image) returns ``absmax``: there the search degenerates (a cut just above the first
    non-empty bin piles everything into one bin and scores KL = 0).
    """
    hist = np.asarray(hist, np.float64)
    nbins = len(hist)
    if absmax <= 0 or hist.sum() == 0:
        return 0.0
    if nbins <= num_quantized_bins or np.count_nonzero(hist) <= num_quantized_bins:
        return float(absmax)
    width = absmax / nbins
    nq = num_quantized_bins
    tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # tail[i] = sum(hist[i:])
    best_kl, best_i = math.inf, nbins
    for i in range(nq, nbins + 1):
        sliced = hist[:i]
        p = sliced.copy()
        p[i - 1] += tail[i]                                   # the clipped tail joins the last bin
        nonzero = sliced != 0
        edges = (np.arange(nq) * i) // nq                     # level k: bins [edges[k], edges[k+1])
        sums = np.add.reduceat(sliced, edges)
        cnts = np.add.reduceat(nonzero.astype(np.float64), edges)
        per = np.divide(sums, cnts, out=np.zeros_like(sums), where=cnts > 0)
        q = np.repeat(per, np.diff(np.append(edges, i))) * nonzero  # spread over the non-empty bins
        qsum = q.sum()
        if qsum == 0:
            continue
        p /= p.sum()
        q /= qsum
        qzero = q == 0
        n_zero = int(qzero.sum())
        if n_zero:
            e = min(eps, 0.5 / n_zero)
            q = q * (1.0 - e * n_zero) + e * qzero            # floor for empty bins of Q
        m = p > 0
        kl = float(np.sum(p[m] * np.log(p[m] / q[m])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(best_i * width)


def choose_threshold(stats: ActivationStats | None, cfg: QConfig) -> float:
    """The |x| threshold of one value under ``cfg.calibrate_mode`` (``global_scale`` ignores ``stats``)."""
    mode = cfg.calibrate_mode
    if mode == "global_scale":
        return float(cfg.global_scale)
    if stats is None:
        raise ArgumentError(f"calibrate_mode={mode!r} needs statistics (pass a calibration dataset)")
    if mode == "max":
        return float(stats.absmax)
    if stats.hist is None:
        raise ArgumentError(f"calibrate_mode={mode!r} needs histograms (collect_stats(..., histograms=True))")
    if mode == "percentile":
        return percentile_threshold(stats.hist, stats.absmax, cfg.percentile, stats.zeros)
    return kl_divergence_threshold(stats.hist, stats.absmax, cfg.qmax_input + 1)


def _scale_from_threshold(threshold: float, cfg: QConfig) -> float:
    if cfg.calibrate_mode == "global_scale":
        s = cfg.global_scale / 2 ** (cfg.nbit_input - 1)
    else:
        s = threshold / cfg.qmax_input
    if not (s > 0 and math.isfinite(s)):
        s = 1.0 / cfg.qmax_input  # an all-zero value: any scale represents it exactly
    return float(np.float32(s))


def weight_scales(w: np.ndarray, cfg: QConfig) -> np.ndarray:
    """Scales of weight ``w`` (output channels on axis 0): ``[O]`` with ``per_channel``, else ``[1]``."""
    w = np.asarray(w, np.float64)
    if cfg.per_channel:
        amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    else:
        amax = np.array([np.abs(w).max()]) if w.size else np.zeros(1)
    if cfg.weight_scale == "power2":
        with np.errstate(divide="ignore"):
            p2 = np.exp2(np.ceil(np.log2(np.where(amax > 0, amax, 1.0))))
        s = p2 / 2 ** (cfg.nbit_weight - 1)
    else:
        s = amax / cfg.qmax_weight
    s = np.where(s > 0, s, 1.0)
    return s.astype(np.float32)


# ---------------------------------------------------------------------- statistics
def _as_list(dataset):
    if dataset is None:
        return []
    if isinstance(dataset, dict):
        return [dataset]
    return list(dataset)


def _run(graph, sample) -> dict:
    """Every value of float ``graph`` on ``sample``, by the numpy reference accumulating in
    float32 (twice as fast as its float64; a maximum moves by about 1e-6 of itself)."""
    with float32_accumulation():
        return run_reference(graph, sample, return_all=True)


def collect_stats(graph, nodes, dataset, histograms: bool = False, bins: int = 2048, progress=None) -> dict:
    """:class:`ActivationStats` of ``nodes`` of float ``graph`` over ``dataset`` (input dicts).

    With ``histograms`` a second pass fills a ``bins``-bin histogram of ``|x|`` per node.
    ``progress``, if given, is called ``progress("calibrating", done, total)`` after each run of
    a sample (``total`` counts both passes).
    """
    data = _as_list(dataset)
    nodes = list(dict.fromkeys(nodes))
    stats = {n: ActivationStats() for n in nodes}
    if not data:
        raise ArgumentError("calibration needs at least one sample (dataset is empty)")
    for k, sample in enumerate(data):
        for name, value in sample.items():
            arr = np.asarray(value)
            if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
                raise ArgumentError(f"calibration sample {k}, input {name!r}: {bad} of {arr.size} values are NaN or "
                                    "infinite; they would set the int8 scales (clean or drop the sample)")
    runs = len(data) * (2 if histograms else 1)
    for k, sample in enumerate(data):
        vals = _run(graph, sample)
        if progress:
            progress("calibrating", k + 1, runs)
        for n in nodes:
            x = np.asarray(vals[n], np.float64)
            st = stats[n]
            if x.size:
                st.absmax = max(st.absmax, float(np.abs(x).max()))
                st.min = min(st.min, float(x.min()))
                st.max = max(st.max, float(x.max()))
            st.count += x.size
            st.zeros += int(np.count_nonzero(x == 0))
    if histograms:
        for n in nodes:
            stats[n].hist = np.zeros(bins, np.int64)
        for k, sample in enumerate(data):
            vals = _run(graph, sample)
            if progress:
                progress("calibrating", len(data) + k + 1, runs)
            for n in nodes:
                st = stats[n]
                if st.absmax <= 0:
                    continue
                a = np.abs(np.asarray(vals[n], np.float64)).ravel()
                a = a[a > 0]
                idx = np.minimum((a * (bins / st.absmax)).astype(np.int64), bins - 1)
                st.hist += np.bincount(idx, minlength=bins)
    return stats


def calibrate(annotated: AnnotatedGraph, dataset=None, config: QConfig | None = None,
              progress=None) -> CalibratedGraph:
    """Phase 2: scales for every int8 value and weight (rules in the module docstring).

    ``dataset`` is an iterable of input dicts (``{input name: array}``), or one dict; it is not
    needed for ``calibrate_mode="global_scale"``. Uses ``config`` or :func:`current_qconfig`.
    ``progress``: see :func:`collect_stats`.
    """
    cfg = config or current_qconfig()
    ann = annotated
    g = ann.graph
    cal = CalibratedGraph(ann, cfg)
    stat_nodes = [ann.stat_node[k] for k in ann.scale_keys]
    if cfg.calibrate_mode != "global_scale":
        if dataset is None:
            raise ArgumentError(f"calibrate_mode={cfg.calibrate_mode!r} needs a calibration dataset "
                             "(an iterable of input dicts)")
        cal.stats = collect_stats(g, stat_nodes, dataset, histograms=cfg.calibrate_mode != "max",
                                  bins=cfg.kl_bins, progress=progress)
    elif dataset is not None:
        cal.stats = collect_stats(g, stat_nodes, dataset, progress=progress)
    for k in ann.scale_keys:
        st = cal.stats.get(ann.stat_node[k])
        t = choose_threshold(st, cfg)
        cal.thresholds[k] = t
        cal.scales[k] = _scale_from_threshold(t, cfg)
    # a concatenation whose inputs are free to take its scale: requantize them straight to it
    for c, roots in ann.concat_groups.items():
        for r in roots:
            cal.scales[r] = cal.scales[c]
            cal.thresholds[r] = cal.thresholds[c]
    for a in ann.anchors:
        node = g.node(a)
        w = g.node(node.inputs[WEIGHT_INPUT[node.op]]).value
        cal.weight_scales[a] = weight_scales(w, cfg)
    return cal
