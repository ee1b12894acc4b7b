"""Fixtures for the quantization tests."""
import pytest

from quant_helpers import build_small_graph, make_data


@pytest.fixture
def small_graph():
    """The small float test graph (conv0 .. fc)."""
    return build_small_graph()


@pytest.fixture
def calib_data():
    """Four calibration input dicts of batch 2."""
    return make_data()
