"""Target-independent operator computes."""
from .matmul import matmul  # noqa: F401
