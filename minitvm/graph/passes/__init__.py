"""Graph passes. Each pass is a function ``Graph -> Graph`` that returns a new graph and leaves
its argument untouched (constant arrays are shared, never modified in place)."""
from .dce import dead_code_elimination  # noqa: F401
from .fold_constant import fold_constant  # noqa: F401
from .padded_taps import guard_padded_taps  # noqa: F401
from .simplify_inference import simplify_inference  # noqa: F401


def sequential(graph, passes):
    """Apply ``passes`` (functions ``Graph -> Graph``) in order; returns the final graph."""
    for p in passes:
        graph = p(graph)
    return graph


__all__ = ["dead_code_elimination", "fold_constant", "guard_padded_taps", "simplify_inference", "sequential"]
