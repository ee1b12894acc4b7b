"""Converters of ONNX normalization ops spelled with graph ops: LayerNormalization (``reduce``
and element-wise ops, in the stash type) and LRN (a padded square summed over a window of
shifted channel slices, one fused kernel)."""
from __future__ import annotations

import numpy as np

from .attrs import _check_axes, _graph_dtype
from .math_ops import scalar
from .registry import ConverterTable

__all__ = ["CONVERTERS"]

#: the normalization converters
CONVERTERS = ConverterTable()


@CONVERTERS.converter("LayerNormalization")
def _layer_norm(imp, node):
    """LayerNormalization over the axes from ``axis`` on: ``mean``, ``(x - mean)``, its mean square,
    ``inv = 1 / sqrt(var + epsilon)``, ``(x - mean) * inv * scale + bias``, computed in
    ``stash_type`` (float32 by default); the optional Mean and InvStdDev outputs keep the reduced
    axes with extent 1."""
    xs, dtype = imp.type(node, node.input(0))
    axis = sorted(_check_axes(node, [int(node.get("axis", -1))], len(xs), "axis"))[0]
    stash = _graph_dtype(node, int(node.get("stash_type", 1)), "stash_type")
    if np.dtype(stash).kind != "f" or np.dtype(dtype).kind != "f":
        raise node.error(f"needs float input and stash type, got {dtype} and {stash}")
    axes = list(range(axis, len(xs)))
    x = imp.tensor(node, node.input(0))
    if dtype != stash:
        x = imp.add(node, "cast", [x], {"dtype": stash}, suffix=".stash")
    mean = imp.add(node, "reduce", [x], {"axes": axes, "kind": "mean"}, suffix=".mean")
    d = imp.add(node, "sub", [x, mean], suffix=".centered")
    var = imp.add(node, "reduce", [imp.add(node, "mul", [d, d], suffix=".square")], {"axes": axes, "kind": "mean"},
                  suffix=".var")
    eps = scalar(imp, node, var, float(node.get("epsilon", 1e-5)), ".epsilon")
    inv = imp.add(node, "reciprocal", [imp.add(node, "sqrt", [imp.add(node, "add", [var, eps], suffix=".var_eps")],
                                               suffix=".std")], suffix=".inv_std")
    y = imp.add(node, "mul", [d, inv], suffix=".normalized")
    if dtype != stash:
        y = imp.add(node, "cast", [y], {"dtype": dtype}, suffix=".unstash")
    has_bias = bool(node.input(2))
    y = imp.add(node, "mul", [y, imp.tensor(node, node.input(1))], suffix=".scaled" if has_bias else "")
    if has_bias:
        y = imp.add(node, "add", [y, imp.tensor(node, node.input(2))])
    return [y, mean, inv]


@CONVERTERS.converter("LRN")
def _lrn(imp, node):
    """LRN across channels: ``x / (bias + alpha / size * sum_window(x^2)) ** beta``, the window
    ``[c - floor((size - 1) / 2), c + ceil((size - 1) / 2)]`` clipped to the channels: ``x^2`` padded
    with zeros on the channel axis, the sum of ``size`` shifted slices."""
    xs, dtype = imp.type(node, node.input(0))
    if len(xs) < 3 or np.dtype(dtype).kind != "f":
        raise node.error(f"needs a float input of rank >= 3 (N, C, ...), got {dtype}{list(xs)}")
    size = node.get("size")
    if size is None or int(size) < 1:
        raise node.error(f"= {size} must be a positive int", "size")
    size = int(size)
    alpha, beta, bias = (float(node.get(k, d)) for k, d in (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    x = imp.tensor(node, node.input(0))
    sq = imp.add(node, "mul", [x, x], suffix=".square")
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    pad = [(0, 0)] * len(xs)
    pad[1] = (lo, hi)
    sq = imp.add(node, "pad", [sq], {"pad_width": pad, "value": 0.0}, suffix=".pad")
    total = None
    for k in range(size):
        part = imp.add(node, "strided_slice", [sq], {"begin": [k], "end": [k + xs[1]], "axes": [1]},
                       suffix=f".window{k}")
        total = part if total is None else imp.add(node, "add", [total, part], suffix=f".sum{k}")
    base = imp.add(node, "mul", [total, scalar(imp, node, x, alpha / size, ".alpha")], suffix=".scaled")
    base = imp.add(node, "add", [base, scalar(imp, node, x, bias, ".bias")], suffix=".base")
    base = imp.add(node, "power", [base, scalar(imp, node, x, beta, ".beta")], suffix=".power")
    return imp.add(node, "divide", [x, base])
