"""Schedules and their primitives (split, reorder, bind, compute_at, cache_read ...)."""
from .schedule import Schedule, Stage, create_schedule  # noqa: F401
