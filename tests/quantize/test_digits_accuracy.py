"""The accuracy example's shipped model: fp32 and int8 accuracy on the held-out digits."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from minitvm.graph.quantize import qconfig, quantize_graph  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quantize_accuracy.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("quantize_accuracy", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g, (xtr, ytr, xte, yte) = mod.load_model()
    return mod, g, mod.calibration_set(xtr), xte, yte


def test_fp32_accuracy(example):
    mod, g, _, xte, yte = example
    assert len(yte) == 450
    assert mod.accuracy(g, xte, yte) > 96.5  # 97.11% when shipped


@pytest.mark.parametrize("config", ["default", "all_int8"])
@pytest.mark.parametrize("mode,tolerance", [("max", 0.5), ("percentile", 1.0), ("kl_divergence", 0.5)])
def test_int8_accuracy_close_to_fp32(example, config, mode, tolerance):
    mod, g, calib, xte, yte = example
    kw = {} if config == "default" else {"skip_conv_layers": [], "skip_dense_layer": False}
    fp32 = mod.accuracy(g, xte, yte)
    with qconfig(calibrate_mode=mode, **kw):
        q = quantize_graph(g, calib)
    assert q.op_nodes("requantize_per_channel")
    assert mod.accuracy(q, xte, yte) >= fp32 - tolerance
