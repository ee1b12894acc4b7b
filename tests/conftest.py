"""Shared pytest configuration for minitvm's tests.

The suite runs in parallel (pytest-xdist, ``-n auto`` in pyproject's addopts). Tests write only
under ``tmp_path``; the on-disk kernel cache is shared by the workers, which is safe (entries are
written to a temporary file and renamed into place) and keeps a warm cache warm. The GPU tests
all go to one worker (``xdist_group("gpu")`` with ``--dist loadgroup``), so they never share the
GPU with each other and their timings stay meaningful. The markers (``gpu``, ``slow``) are
declared in pyproject.toml.
"""
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Put every GPU test in one xdist group (before xdist reads the groups)."""
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(pytest.mark.xdist_group("gpu"))
