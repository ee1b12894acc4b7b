"""Shared pytest configuration for minitvm's tests."""


def pytest_configure(config):
    """Register the markers used across the test suite."""
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU")
