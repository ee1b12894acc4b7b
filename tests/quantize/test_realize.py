"""realize / simulate / quantize_graph / layer_report on a small conv-relu-pool-conv-add-dense graph."""
import numpy as np
import pytest

from minitvm.graph import run_reference
from minitvm.graph.quantize import (annotate, calibrate, cosine_similarity, layer_report, qconfig, quantize_graph,
                                    realize, simulate)

from quant_helpers import build_small_graph, make_data

ALL = {"skip_conv_layers": [], "skip_dense_layer": False}


def _dtypes(g):
    return {n.name: n.type.dtype for n in g}


@pytest.mark.parametrize("mode", ["max", "percentile", "kl_divergence"])
def test_realize_matches_float(small_graph, calib_data, mode):
    with qconfig(calibrate_mode=mode, **ALL):
        q = quantize_graph(small_graph, calib_data)
    q.validate()
    for d in make_data(2, seed=7):
        ref, out = run_reference(small_graph, d)[0], run_reference(q, d)[0]
        assert out.dtype == np.float32 and out.shape == ref.shape
        assert cosine_similarity(ref, out) > 0.99


def test_realized_graph_has_int8_edges(small_graph, calib_data):
    with qconfig(calibrate_mode="max", **ALL):
        q = quantize_graph(small_graph, calib_data)
    dt = _dtypes(q)
    assert dt["data_quantize"] == "int8"
    for c in ("conv0", "conv1", "conv2", "fc"):
        assert dt[c] == "int32"  # int32 accumulation
        assert q.node(q.node(c).inputs[0]).type.dtype == "int8"
        assert q.node(q.node(c).inputs[1]).type.dtype == "int8"  # weights are int8 constants
        assert q.node(q.node(c).inputs[1]).kind == "const"
        assert q.node(q.node(c).inputs[2]).type.dtype == "int32"  # bias in int32
        (rq,) = q.consumers(c)
        assert q.node(rq).op == "requantize_per_channel" and dt[rq] == "int8"
    for n in ("relu0", "pool0", "relu1", "relu2"):
        assert dt[n] == "int8"
    assert q.node("add").op == "qadd" and dt["add"] == "int8"
    assert q.node("gap").type.dtype == "float32"
    assert q.node(q.node("gap").inputs[0]).op == "dequantize"
    assert q.node(q.outputs[0]).op == "dequantize"
    assert not q.op_nodes("batch_norm")


def test_default_config_keeps_first_conv_and_dense_float(small_graph, calib_data):
    with qconfig(calibrate_mode="max"):
        q = quantize_graph(small_graph, calib_data)
    dt = _dtypes(q)
    assert dt["conv0"] == "float32" and dt["relu0"] == "float32" and dt["fc"] == "float32"
    assert dt["conv1"] == "int32" and dt["pool0_quantize"] == "int8"
    assert q.consumers("pool0_quantize") == ["conv1", "add"]  # one quantize, shared
    ref, out = run_reference(small_graph, calib_data[0])[0], run_reference(q, calib_data[0])[0]
    assert cosine_similarity(ref, out) > 0.99


def test_per_tensor_weights_give_plain_requantize(small_graph, calib_data):
    with qconfig(calibrate_mode="max", per_channel=False, **ALL):
        q = quantize_graph(small_graph, calib_data)
    assert not q.op_nodes("requantize_per_channel") and len(q.op_nodes("requantize")) == 4
    ref, out = run_reference(small_graph, calib_data[0])[0], run_reference(q, calib_data[0])[0]
    assert cosine_similarity(ref, out) > 0.99


def test_bias_and_weights_quantized_exactly(small_graph, calib_data):
    with qconfig(calibrate_mode="max", **ALL):
        cal = calibrate(annotate(small_graph), calib_data)
        q = realize(cal)
    w = small_graph.node("conv1.weight").value.astype(np.float64)
    b = small_graph.node("conv1.bias").value.astype(np.float64)
    sw = cal.weight_scales["conv1"].astype(np.float64)
    s_in = cal.scale_of("pool0")
    wq = q.node(q.node("conv1").inputs[1]).value
    bq = q.node(q.node("conv1").inputs[2]).value
    np.testing.assert_array_equal(wq, np.clip(np.rint(w / sw[:, None, None, None]), -127, 127))
    np.testing.assert_array_equal(bq, np.rint(b / (s_in * sw)))
    assert np.abs(wq).reshape(8, -1).max(axis=1).tolist() == [127] * 8  # max scale uses the full range


def test_simulate_close_to_realize(small_graph, calib_data):
    with qconfig(calibrate_mode="kl_divergence", **ALL):
        cal = calibrate(annotate(small_graph), calib_data)
    q, sim = realize(cal), simulate(cal)
    sim.validate()
    assert all(n.type.dtype == "float32" for n in sim if n.kind == "op" and n.op != "quantize")
    assert len(sim.op_nodes("quantize")) == len(sim.op_nodes("dequantize"))
    s_out = cal.scale_of("fc")
    for d in make_data(3, seed=5):
        a, b = run_reference(q, d)[0], run_reference(sim, d)[0]
        assert np.abs(a - b).max() <= 2 * s_out + 1e-6
    sim2 = quantize_graph(small_graph, calib_data, mode="simulate",
                          config=qconfig(calibrate_mode="kl_divergence", **ALL))
    np.testing.assert_array_equal(run_reference(sim2, calib_data[0])[0], run_reference(sim, calib_data[0])[0])


def test_batch_norm_and_concat_graph():
    g = build_small_graph(with_bn=True, concat=True)
    data = make_data()
    with qconfig(calibrate_mode="percentile", **ALL):
        q = quantize_graph(g, data)
    q.validate()
    assert q.node("cat").op == "qconcatenate" and q.node("cat").type.dtype == "int8"
    ref, out = run_reference(g, data[0])[0], run_reference(q, data[0])[0]
    assert cosine_similarity(ref, out) > 0.99


def test_layer_report(small_graph, calib_data):
    with qconfig(calibrate_mode="max", **ALL):
        q = quantize_graph(small_graph, calib_data)
    rows = layer_report(small_graph, q, calib_data[:2])
    assert [r.layer for r in rows] == ["conv0", "conv1", "conv2", "fc"]
    assert [r.compared for r in rows] == ["relu0", "relu1", "conv2", "fc"]
    for r in rows:
        assert r.sqnr_db > 20 and r.cosine > 0.99
    text = str(rows)
    assert "SQNR" in text and "conv2" in text and len(text.splitlines()) == 6
    with pytest.raises(ValueError, match="qinfo"):
        layer_report(small_graph, q.copy(), calib_data[0])


def test_quantize_graph_bad_mode(small_graph):
    with pytest.raises(ValueError, match="mode"):
        quantize_graph(small_graph, mode="fake")
