"""The graph level: an op graph IR on networkx, the op registry, the model zoo, passes and a
numpy reference executor. See ``docs/graph.md``."""
from .ir import Graph, Node  # noqa: F401
from .ops import Attr, OpDef, get_op, list_ops, register_op  # noqa: F401
from .types import TensorType  # noqa: F401
from .reference import run_reference  # noqa: F401
from . import passes  # noqa: F401,E402
from .zoo import get_model, list_models  # noqa: F401,E402

__all__ = ["Graph", "Node", "TensorType", "Attr", "OpDef", "get_op", "list_ops", "register_op", "run_reference",
           "passes", "get_model", "list_models"]
