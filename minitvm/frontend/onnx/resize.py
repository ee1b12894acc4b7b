"""ONNX Resize (opsets 10 on) and Upsample as separable per-axis resampling.

Every Resize mode is linear in the input with weights that depend on the shapes, scales and
attributes only, all known at import. So the importer computes, for each resized axis, which
input positions each output position reads and with which weights (:func:`axis_weights`, the
specification's arithmetic as in onnx's reference implementation: the coordinate
transformations, ``nearest`` with its ``nearest_mode``, ``linear`` and ``cubic`` with
``cubic_coeff_a``, ``exclude_outside``, ``antialias``, ``tf_crop_and_resize`` with its
extrapolation value), and the graph applies them axis after axis: ``take`` for nearest (an exact
gather), ``interpolate`` otherwise. Output sizes follow ``scales`` (floored) or ``sizes`` with
``axes`` and ``keep_aspect_ratio_policy``.
"""
from __future__ import annotations

import numpy as np

from .attrs import _check_axes, _ints
from .registry import ConverterTable

__all__ = ["CONVERTERS", "axis_weights"]

#: the Resize / Upsample converters
CONVERTERS = ConverterTable()

_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
          "tf_crop_and_resize")


def _source_coords(ctm, y, scale, n_in, n_out, roi):
    """Input coordinates of output positions ``y`` (float64) and, for tf_crop_and_resize, which
    fall outside the input."""
    width = scale * n_in
    if ctm == "align_corners":
        return (np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)), None
    if ctm == "asymmetric":
        return y / scale, None
    if ctm == "tf_crop_and_resize":
        x = np.full(n_out, (roi[1] - roi[0]) * (n_in - 1) / 2) if width == 1 else \
            y * (roi[1] - roi[0]) * (n_in - 1) / (width - 1)
        x = x + roi[0] * (n_in - 1)
        return x, (x < 0) | (x > n_in - 1)
    if ctm == "pytorch_half_pixel":
        return (np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5), None
    if ctm == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    offset = n_in / 2 * (1 - n_out / width)     # half_pixel_symmetric
    return offset + (y + 0.5) / scale - 0.5, None


def _coeffs(kind, ratio, scale, a, antialias, nearest_mode):
    """The taps' weights for the fractional position ``ratio`` in (0, 1]."""
    if kind == "nearest":
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        pick_right = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False,
                      "ceil": True}[nearest_mode]
        return np.array([0.0, 1.0]) if pick_right else np.array([1.0, 0.0])
    if kind == "linear":
        if not antialias:
            return np.array([1 - ratio, ratio])
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        c = np.clip(1 - np.abs((np.arange(start, 2 - start) - ratio) * s), 0, 1)
        return c / c.sum()
    if not antialias:
        r, q = ratio, 1 - ratio
        return np.array([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                         ((a + 2) * r - (a + 3)) * r * r + 1,
                         ((a + 2) * q - (a + 3)) * q * q + 1,
                         ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a])
    s = min(scale, 1.0)
    start = int(np.floor(-2 / s) + 1)
    x = np.abs(s * (np.arange(start, 2 - start) - ratio))
    c = np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                 np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))
    return c / c.sum()


def axis_weights(n_in, n_out, scale, ctm="half_pixel", kind="nearest", nearest_mode="round_prefer_floor",
                 cubic_a=-0.75, exclude_outside=False, antialias=False, roi=(0.0, 1.0), extrapolation=0.0):
    """``(indices [n_out, taps], weights [n_out, taps], offset [n_out] or None)`` resampling one axis
    of extent ``n_in`` to ``n_out``: output ``y`` is ``sum_t weights[y, t] * in[indices[y, t]]``
    (``+ offset[y]``: the extrapolation value where tf_crop_and_resize falls outside the input)."""
    y = np.arange(n_out, dtype=np.float64)
    x, outside = _source_coords(ctm, y, float(scale), n_in, n_out, roi)
    x_int = np.floor(x)
    ratios = np.where(x == x_int, 1.0, x - x_int)   # the left neighbour is preferred: ratio in (0, 1]
    w = np.stack([_coeffs(kind, float(r), float(scale), cubic_a, antialias, nearest_mode) for r in ratios])
    taps = w.shape[1]
    pad = -(-taps // 2)
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if taps % 2 == 0:
        start = p + np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        start = p + np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    idx = start[:, None] + np.arange(taps)[None, :] - pad
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    idx = np.clip(idx, 0, n_in - 1)
    offset = None
    if outside is not None and outside.any():
        w = np.where(outside[:, None], 0.0, w)
        offset = np.where(outside, float(extrapolation), 0.0)
    return idx, w, offset


def _resize_args(imp, node, xs):
    """(scales, sizes, roi, axes) of a Resize / Upsample, each as given (None when absent)."""
    def opt(i, what):
        if not node.input(i):
            return None
        v = np.asarray(imp.const(node, node.input(i), what)).reshape(-1)
        return v if v.size else None
    if node.op == "Upsample":
        scales = np.asarray(node.get("scales"), np.float32) if imp.opset < 9 else opt(1, "scales")
        return scales, None, None, None
    if imp.opset < 11:
        return opt(1, "scales"), None, None, None
    return opt(2, "scales"), opt(3, "sizes"), opt(1, "roi"), _ints(node, "axes")


def _plan(node, xs, scales, sizes, roi, axes, policy):
    """Per axis of ``xs``: (scale, output extent, roi pair), following the specification."""
    r = len(xs)
    axes = sorted(_check_axes(node, axes, r)) if axes is not None else list(range(r))
    given_axes = list(node.get("axes")) if node.get("axes") is not None else axes
    full_roi = [0.0] * r + [1.0] * r
    if roi is not None:
        if roi.size != 2 * len(given_axes):
            raise node.error(f"input roi has {roi.size} values, expected {2 * len(given_axes)}")
        for k, a in enumerate(given_axes):
            full_roi[a % r], full_roi[r + a % r] = float(roi[k]), float(roi[len(given_axes) + k])
    if (scales is None) == (sizes is None):
        raise node.error("needs exactly one of the inputs scales and sizes")
    if scales is not None:
        if scales.size != len(given_axes) or np.any(scales <= 0):
            raise node.error(f"input scales = {scales.tolist()} must hold one positive value per resized axis")
        sc = [1.0] * r
        for k, a in enumerate(given_axes):
            sc[a % r] = float(scales[k])
        out = [int(np.floor(s * n)) for s, n in zip(sc, xs)]
    else:
        if sizes.size != len(given_axes) or np.any(sizes <= 0):
            raise node.error(f"input sizes = {sizes.tolist()} must hold one positive size per resized axis")
        out = list(xs)
        for k, a in enumerate(given_axes):
            out[a % r] = int(sizes[k])
        sc = [o / n for o, n in zip(out, xs)]
        if policy != "stretch":
            if policy not in ("not_larger", "not_smaller"):
                raise node.error(f"= {policy!r} is not stretch, not_larger or not_smaller", "keep_aspect_ratio_policy")
            pick = min if policy == "not_larger" else max
            s = pick(sc[a] for a in axes)
            sc = [s if a in axes else 1.0 for a in range(r)]
            out = [int(s * xs[a] + 0.5) if a in axes else xs[a] for a in range(r)]
    if 0 in out:
        raise node.error(f"gives an empty output {out} for input {list(xs)}")
    return [(sc[a], out[a], (full_roi[a], full_roi[r + a])) for a in range(r)]


@CONVERTERS.converter("Resize", "Upsample")
def _resize(imp, node):
    """Resize / Upsample of a graph tensor -> per resized axis ``take`` (nearest) or ``interpolate``."""
    xs, dtype = imp.type(node, node.input(0))
    scales, sizes, roi, axes = _resize_args(imp, node, xs)
    legacy = node.op == "Upsample" or imp.opset < 11
    kind = node.get("mode", "nearest")
    kind = {"bilinear": "linear", "trilinear": "linear"}.get(kind, kind)
    if kind not in ("nearest", "linear", "cubic") or (legacy and kind == "cubic"):
        raise node.error(f"= {kind!r} is not supported (nearest, linear{'' if legacy else ', cubic'})", "mode")
    ctm = "asymmetric" if legacy else node.get("coordinate_transformation_mode", "half_pixel")
    if ctm not in _MODES:
        raise node.error(f"= {ctm!r} is not one of {_MODES}", "coordinate_transformation_mode")
    nearest_mode = "floor" if node.op == "Upsample" else node.get("nearest_mode", "round_prefer_floor")
    if nearest_mode not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        raise node.error(f"= {nearest_mode!r} is not supported", "nearest_mode")
    antialias = bool(int(node.get("antialias", 0)))
    if antialias and kind == "nearest":
        raise node.error("= 1 is invalid with mode 'nearest'", "antialias")
    plan = _plan(node, xs, scales, sizes, roi, axes, node.get("keep_aspect_ratio_policy", "stretch"))
    x = imp.tensor(node, node.input(0))
    steps = [a for a, (s, n, r) in enumerate(plan)
             if not (np.isclose(s, 1.0) and n == xs[a] and np.isclose(r[0], 0.0) and np.isclose(r[1], 1.0))]
    if not steps:
        return x
    for k, a in enumerate(steps):
        scale, n_out, r = plan[a]
        idx, w, off = axis_weights(xs[a], n_out, scale, ctm, kind, nearest_mode, float(node.get("cubic_coeff_a", -0.75)),
                                   bool(int(node.get("exclude_outside", 0))), antialias, r,
                                   float(node.get("extrapolation_value", 0.0)))
        suffix = "" if k == len(steps) - 1 else f".axis{a}"
        if kind == "nearest" and off is None:
            pick = idx[np.arange(len(idx)), np.argmax(w, axis=1)]
            x = imp.add(node, "take", [x, imp.new_const(f"{node.name}.axis{a}_indices", pick.astype(np.int32))],
                        {"axis": a}, suffix=suffix)
            continue
        ins = [x, imp.new_const(f"{node.name}.axis{a}_indices", idx.astype(np.int32)),
               imp.new_const(f"{node.name}.axis{a}_weights", w.astype(np.float32))]
        if off is not None:
            ins.append(imp.new_const(f"{node.name}.axis{a}_offset", off.astype(np.float32)))
        x = imp.add(node, "interpolate", ins, {"axis": a}, suffix=suffix)
    return x
