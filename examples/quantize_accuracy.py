"""fp32 vs int8 accuracy of a small CNN on scikit-learn's handwritten digits, per calibration mode.

The CNN (trained by ``examples/train_digits_cnn.py``; weights in ``examples/data/digits_cnn.npz``)
is built as a minitvm graph, quantized with ``minitvm.graph.quantize`` (calibrated on 200
training images) and evaluated with the numpy reference executor on the 450 held-out images::

    python examples/quantize_accuracy.py [--report] [--calibration-data calib.npz]

The calibration set is read by ``minitvm.calibration.load_calibration``, the path that
``minitvm.compile(..., calibration=...)`` and ``minitvm run --calibration-data`` take: by default
the 200 training images as input dicts, or an ``.npz`` of your own (``data``: ``[K, 1, 8, 8]``
float images in [0, 1], K a multiple of 50).

Two configurations are shown: TVM's defaults (first conv and the dense layer stay float) and
everything int8 (``skip_conv_layers=[]``, ``skip_dense_layer=False``: the input is quantized).
``--report`` prints the per-layer SQNR / cosine table for each.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from minitvm.calibration import load_calibration  # noqa: E402
from minitvm.graph import Graph, run_reference  # noqa: E402
from minitvm.graph.quantize import layer_report, qconfig, quantize_graph  # noqa: E402
from minitvm.graph.types import TensorType  # noqa: E402

WEIGHTS = os.path.join(HERE, "data", "digits_cnn.npz")
BATCH = 50
MODES = ("global_scale", "max", "percentile", "kl_divergence")
CONFIGS = {
    "default (conv0 + dense float)": {},
    "all int8": {"skip_conv_layers": [], "skip_dense_layer": False},
}


def build_graph(params: dict, batch: int = BATCH) -> Graph:
    """The digits CNN as a minitvm graph (input ``data`` float32 [batch, 1, 8, 8] in [0, 1])."""
    g = Graph("digits_cnn")
    x = g.add_input("data", (batch, 1, 8, 8))
    for name in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"):
        g.add_const(name, np.asarray(params[name], np.float32))
    y = g.add_op("conv2d", [x, "conv1.weight", "conv1.bias"], {"padding": 1}, name="conv1")
    y = g.add_op("relu", [y], name="conv1_relu")
    y = g.add_op("max_pool2d", [y], {"pool_size": 2, "strides": 2}, name="pool1")
    y = g.add_op("conv2d", [y, "conv2.weight", "conv2.bias"], {"padding": 1}, name="conv2")
    y = g.add_op("relu", [y], name="conv2_relu")
    y = g.add_op("global_avg_pool2d", [y], name="gap")
    y = g.add_op("flatten", [y], name="flatten")
    y = g.add_op("dense", [y, "fc.weight", "fc.bias"], name="fc")
    g.mark_output(y)
    return g


def load_data(test_idx):
    """``(x_train, y_train, x_test, y_test)``: the digits split the weights were trained with."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    y = d.target.astype(np.int64)
    test = np.zeros(len(x), bool)
    test[np.asarray(test_idx, np.int64)] = True
    return x[~test], y[~test], x[test_idx], y[test_idx]


def load_model(path: str = WEIGHTS, batch: int = BATCH):
    """``(graph, (x_train, y_train, x_test, y_test))`` from the shipped weights."""
    p = dict(np.load(path))
    return build_graph(p, batch), load_data(p["test_idx"])


def batches(x, batch: int = BATCH):
    """Input dicts of ``batch`` images (the last partial batch is zero-padded)."""
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        if len(xb) < batch:
            xb = np.concatenate([xb, np.zeros((batch - len(xb),) + xb.shape[1:], xb.dtype)])
        yield {"data": xb}


def predict(graph: Graph, x, batch: int = BATCH) -> np.ndarray:
    """Predicted classes of images ``x`` (reference executor)."""
    preds = [run_reference(graph, b)[0].argmax(1) for b in batches(x, batch)]
    return np.concatenate(preds)[:len(x)]


def accuracy(graph: Graph, x, y, batch: int = BATCH) -> float:
    """Top-1 accuracy (in %) of ``graph`` on images ``x`` with labels ``y`` (reference executor)."""
    return float((predict(graph, x, batch) == y).mean() * 100)


def calibration_set(x_train, n: int = 200, batch: int = BATCH, seed: int = 0, source=None):
    """Calibration input dicts of ``batch`` images, read by ``minitvm.calibration.load_calibration``:
    from ``source`` (an ``.npz`` path) or, by default, ``n`` training images (seeded choice)."""
    if source is None:
        idx = np.random.default_rng(seed).choice(len(x_train), n, replace=False)
        source = list(batches(x_train[idx], batch))
    return load_calibration(source, {"data": TensorType((batch, 1, 8, 8), "float32")})


def run(report: bool = False, calibration_data=None):
    """Print fp32 vs int8 accuracy per calibration mode and configuration; returns the numbers."""
    g, (xtr, ytr, xte, yte) = load_model()
    calib = calibration_set(xtr, source=calibration_data)
    pf = predict(g, xte)
    fp32 = float((pf == yte).mean() * 100)
    print(f"digits CNN, {len(yte)} held-out images (one image = {100 / len(yte):.2f} points), "
          f"calibrated on {len(calib) * BATCH} training images")
    print(f"fp32 accuracy: {fp32:.2f}%\n")
    print(f"{'config':<32} {'calibrate_mode':<15} {'int8 acc':>9} {'delta':>7} {'same top-1 as fp32':>19}")
    results = {"fp32": fp32}
    for cname, kw in CONFIGS.items():
        for mode in MODES:
            with qconfig(calibrate_mode=mode, **kw):
                q = quantize_graph(g, calib)
            pq = predict(q, xte)
            acc = float((pq == yte).mean() * 100)
            results[(cname, mode)] = acc
            print(f"{cname:<32} {mode:<15} {acc:>8.2f}% {acc - fp32:>+7.2f} {(pq == pf).mean() * 100:>18.2f}%")
            if report:
                print(layer_report(g, q, calib[:2]), end="\n\n")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="per-layer SQNR / cosine tables")
    ap.add_argument("--calibration-data", metavar="NPZ",
                    help="calibrate on an .npz ('data': [K, 1, 8, 8] images in [0, 1]) instead of 200 training images")
    args = ap.parse_args()
    run(args.report, args.calibration_data)
