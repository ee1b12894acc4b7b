"""qconfig: defaults, nesting, restoration, validation."""
import pytest

from minitvm.graph.quantize import QConfig, current_qconfig, qconfig


def test_defaults():
    c = current_qconfig()
    assert c == QConfig()
    assert (c.nbit_input, c.nbit_weight, c.dtype_input, c.dtype_activation) == (8, 8, "int8", "int32")
    assert c.global_scale == 8.0 and c.calibrate_mode == "global_scale" and c.weight_scale == "max"
    assert c.per_channel and c.skip_conv_layers == (0,) and c.skip_dense_layer and c.percentile == 99.99
    assert c.qmax_input == 127 and c.qmax_weight == 127


def test_nesting_restores_outer():
    with qconfig(calibrate_mode="max", skip_conv_layers=[]) as outer:
        assert current_qconfig() is outer
        assert current_qconfig().skip_conv_layers == ()
        with qconfig(calibrate_mode="kl_divergence", per_channel=False) as inner:
            assert current_qconfig() is inner
            assert inner.calibrate_mode == "kl_divergence" and not inner.per_channel
            assert inner.skip_conv_layers == (0,)  # a qconfig starts from the defaults (as in TVM)
        assert current_qconfig() is outer and current_qconfig().calibrate_mode == "max"
    assert current_qconfig() == QConfig()


def test_exception_inside_block_restores():
    with pytest.raises(RuntimeError):
        with qconfig(calibrate_mode="percentile"):
            raise RuntimeError("boom")
    assert current_qconfig().calibrate_mode == "global_scale"


@pytest.mark.parametrize("kw", [{"calibrate_mode": "mse"}, {"weight_scale": "abs"}, {"nbit_input": 4},
                                {"nbit_weight": 9}, {"dtype_input": "uint8"}, {"percentile": 0},
                                {"global_scale": -1.0}, {"rounding": "DOWN"}])
def test_bad_values(kw):
    with pytest.raises(ValueError):
        qconfig(**kw)


def test_unknown_keyword():
    with pytest.raises(TypeError):
        qconfig(calibration_mode="max")
