"""Calibration: scales from known distributions, every mode, weight scales."""
import numpy as np
import pytest

from minitvm.graph import Graph
from minitvm.graph.quantize import (annotate, calibrate, collect_stats, kl_divergence_threshold,
                                    percentile_threshold, qconfig, weight_scales)


def _abs_hist(x, bins=2048):
    a = np.abs(x[x != 0])
    amax = float(a.max())
    return np.bincount(np.minimum((a * bins / amax).astype(int), bins - 1), minlength=bins), amax


def test_max_mode_known_tensor(small_graph):
    x = np.zeros((2, 3, 16, 16), np.float32)
    x[0, 1, 2, 3] = -5.0
    x[1, 2, 3, 4] = 4.0
    data = [{"data": x}, {"data": x * 0.5}]
    with qconfig(calibrate_mode="max", skip_conv_layers=[]):
        cal = calibrate(annotate(small_graph), data)
    assert cal.thresholds["data"] == 5.0
    assert cal.scales["data"] == float(np.float32(5.0 / 127))
    st = cal.stats["data"]
    assert (st.min, st.max, st.absmax, st.count) == (-5.0, 4.0, 5.0, 2 * x.size)


def test_global_scale_needs_no_data(small_graph):
    cal = calibrate(annotate(small_graph))
    assert set(cal.scales.values()) == {8.0 / 128}
    with qconfig(global_scale=4.0):
        cal = calibrate(annotate(small_graph))
    assert set(cal.scales.values()) == {4.0 / 128}


def test_data_required(small_graph):
    with qconfig(calibrate_mode="max"):
        with pytest.raises(ValueError, match="dataset"):
            calibrate(annotate(small_graph))


def test_nan_or_inf_in_calibration_data_is_refused_naming_sample_and_input(small_graph):
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    bad[1, 2, 3, 4] = np.inf
    with qconfig(calibrate_mode="max"):
        with pytest.raises(ValueError, match=r"calibration sample 1, input 'data': 2 of 1536 values are NaN"):
            calibrate(annotate(small_graph), [{"data": x}, {"data": bad}])


def test_percentile_uniform():
    rng = np.random.default_rng(0)
    hist, amax = _abs_hist(rng.uniform(-1, 1, 200000))
    assert abs(percentile_threshold(hist, amax, 99.0) - 0.99) < 2e-3
    assert abs(percentile_threshold(hist, amax, 50.0) - 0.5) < 5e-3
    assert percentile_threshold(hist, amax, 100.0) == pytest.approx(amax)
    # exact zeros (e.g. relu outputs) count below every bin
    assert abs(percentile_threshold(hist, amax, 99.5, zeros=200000) - 0.99) < 2e-3


def test_kl_gaussian_with_outliers_clips_below_max():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200000), [40.0, -35.0, 30.0]])
    hist, amax = _abs_hist(x)
    t = kl_divergence_threshold(hist, amax)
    assert 2.5 < t < 10.0 < amax
    # without outliers KL still clips the far tail of a Gaussian but keeps most of it
    hist, amax = _abs_hist(rng.standard_normal(200000))
    t2 = kl_divergence_threshold(hist, amax)
    assert 2.5 < t2 <= amax


def test_kl_discrete_values_fall_back_to_max():
    x = np.random.default_rng(0).integers(0, 17, 10000) / 16.0  # 17 grey levels
    hist, amax = _abs_hist(x)
    assert kl_divergence_threshold(hist, amax) == amax


@pytest.mark.parametrize("mode", ["max", "percentile", "kl_divergence"])
def test_modes_give_sane_scales(small_graph, calib_data, mode):
    with qconfig(calibrate_mode=mode, skip_conv_layers=[], skip_dense_layer=False):
        cal = calibrate(annotate(small_graph), calib_data)
    for k, s in cal.scales.items():
        amax = cal.stats[cal.annotated.stat_node[k]].absmax
        assert 0 < s <= amax / 127 * (1 + 1e-6)
        assert s >= amax / 127 / 8, (k, s, amax)  # no mode clips away most of the range here
        assert s == float(np.float32(s))
    assert "threshold" in cal.summary()


def test_collect_stats_histogram_skips_zeros():
    g = Graph("r")
    g.add_input("x", (1000,))
    g.mark_output(g.add_op("relu", ["x"], name="r"))
    x = np.linspace(-1, 1, 1000).astype(np.float32)
    st = collect_stats(g, ["r"], [{"x": x}], histograms=True, bins=256)["r"]
    assert st.zeros == 500 and st.hist.sum() == 500 and st.absmax == 1.0


def test_weight_scales():
    w = np.zeros((3, 2, 1, 1), np.float32)
    w[0, 0] = 1.27
    w[1, 1] = -0.3
    with qconfig() as c:
        np.testing.assert_allclose(weight_scales(w, c), [0.01, 0.3 / 127, 1.0], rtol=1e-6)  # zero channel -> 1
    c = qconfig(per_channel=False)
    np.testing.assert_allclose(weight_scales(w, c), [0.01], rtol=1e-6)
    c = qconfig(weight_scale="power2")
    np.testing.assert_array_equal(weight_scales(w, c), [2 / 128, 0.5 / 128, 1 / 128])
    c = qconfig(nbit_weight=4)
    np.testing.assert_allclose(weight_scales(w, c)[0], 1.27 / 7, rtol=1e-6)
