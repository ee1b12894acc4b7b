"""Op strategies (after TVM's): how the compiler turns a graph op into tensor expressions and
which schedule each target gives the fused group the op anchors.

* :func:`register_compute` -- the op's compute ``compute(node, inputs, name) -> te.Tensor``
  (``inputs``: one ``te.Tensor`` per node input; ``name``: a C identifier for the node);
* :func:`register_schedule` -- an :class:`Implementation` of the op for one target kind
  (``"cuda"``, ``"llvm"``): a schedule ``schedule(out) -> Schedule`` for the group whose output
  tensor is ``out``, a ``condition(attrs, in_types) -> bool`` on the anchor node (``None``:
  always), and a ``priority``. An op may hold several implementations per target;
  :func:`select_implementation` takes the highest-priority one whose condition holds (the first
  registered among equals). Groups without an anchor, and anchors with no implementation that
  applies, take the target's :data:`GENERIC` implementations (the injective schedules).

The families in this package register their computes; :mod:`.schedules_cuda` and
:mod:`.schedules_llvm` register the schedules per target; :mod:`minitvm.graph.quantize.ops`
registers the quantized ops' computes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...errors import BuildError, GraphError
from ...target import Target

__all__ = ["Implementation", "GENERIC", "register_compute", "register_schedule", "compute_of",
           "select_implementation"]

#: the op key of a target's fallback implementations (groups no op-specific schedule applies to)
GENERIC = "*"

_COMPUTES: dict[str, Callable] = {}
_IMPLEMENTATIONS: dict[tuple[str, str], list] = {}


@dataclass(frozen=True)
class Implementation:
    """One schedule of an op for one target kind, used where ``condition`` holds."""

    name: str
    schedule: Callable
    condition: Callable | None = None
    priority: int = 0

    def applies(self, attrs: dict, in_types: list) -> bool:
        """Whether this implementation fits an anchor with ``attrs`` and input types ``in_types``."""
        return self.condition is None or bool(self.condition(attrs, in_types))


def _target_kind(op: str | None, target) -> str:
    """The kind (``"cuda"``, ``"llvm"``) of a :class:`~minitvm.target.Target` or its string;
    ``GraphError`` naming ``target`` where it is none."""
    try:
        return Target(target).kind
    except BuildError as exc:
        raise GraphError(f"op {op!r}: no schedule for target {target!r} ({exc})") from None


def register_compute(op: str, compute: Callable) -> Callable:
    """Register ``compute(node, inputs, name) -> te.Tensor`` as the compute of op ``op``."""
    if op in _COMPUTES:
        raise GraphError(f"op {op!r} already has a compute")
    _COMPUTES[op] = compute
    return compute


def register_schedule(op: str, kind: str, schedule: Callable, name: str, condition: Callable | None = None,
                      priority: int = 0) -> Implementation:
    """Add an :class:`Implementation` of op ``op`` (or :data:`GENERIC`) for target kind ``kind``."""
    impls = _IMPLEMENTATIONS.setdefault((op, kind), [])
    if any(i.name == name for i in impls):
        raise GraphError(f"op {op!r} already has an implementation {name!r} for target {kind!r}")
    impl = Implementation(name, schedule, condition, priority)
    impls.append(impl)
    return impl


def compute_of(node) -> Callable:
    """The compute registered for graph node ``node``'s op; ``GraphError`` naming the node if none."""
    try:
        return _COMPUTES[node.op]
    except KeyError:
        raise GraphError(f"node {node.name!r}: op {node.op!r} has no compiler lowering yet") from None


def select_implementation(op: str | None, target, attrs: dict, in_types: list) -> Implementation:
    """The implementation scheduling a group anchored by op ``op`` (``None``: no anchor) on ``target``.

    Among ``op``'s implementations whose condition holds for ``attrs`` and ``in_types``, the one
    of highest priority (the first registered among equals); else the target's generic one.
    """
    kind = _target_kind(op, target)
    fitting = [i for i in _IMPLEMENTATIONS.get((op, kind), ()) if i.applies(attrs, in_types)] if op else []
    if not fitting:
        fitting = [i for i in _IMPLEMENTATIONS.get((GENERIC, kind), ()) if i.applies(attrs, in_types)]
    if not fitting:
        known = sorted({k for _, k in _IMPLEMENTATIONS})
        raise GraphError(f"op {op!r}: no schedule for target {kind!r} (targets with schedules: {known})")
    return max(fitting, key=lambda i: i.priority)
