"""CUDA schedules."""
from .matmul import schedule_matmul  # noqa: F401
