"""minitvm's explicit limits on the programs it compiles, in one place.

- **Tree depth and size.** The passes, printers and code generators walk expressions and
  statements by recursion (one visitor, :mod:`minitvm.tir.functor`). An expression or loop
  nest may nest up to :data:`MAX_DEPTH` levels (a sum of 10,000 terms, a chain of thousands of
  root stages; 2,500 on Python 3.10, whose calls also take C stack); the entry points that
  walk trees (``te.compute``, ``create_schedule``, ``lower``, ``build``, the printers) run
  under :func:`deep_recursion`, which raises Python's
  recursion limit to what that depth needs for as long as they run. A tree deeper than that,
  or larger than :data:`MAX_NODES` nodes counted as a tree (``x = x * x`` thirty times is a
  tiny graph but a 2**30-node tree, which every pass would walk in full), is refused with a
  :class:`~minitvm.errors.LimitError` naming the tensor or function.
- **Unroll extent** (:data:`MAX_UNROLL_EXTENT`) and **vector lanes**
  (:data:`MAX_VECTOR_LANES`): ``unroll`` / ``vectorize`` of a loop with more iterations, and
  an ``auto_unroll_max_step`` pragma above the unroll limit, are refused naming the stage and
  axis (LLVM aborts the process on a 65,536-lane vector and takes minutes to unroll a
  million iterations).
"""
from __future__ import annotations

import contextlib
import functools
import sys
import threading

from ..errors import LimitError, ScheduleError

MAX_NODES = 100_000
MAX_UNROLL_EXTENT = 4096
MAX_VECTOR_LANES = 1024

# Python frames one tree level costs in the deepest walker (LLVM codegen: expr -> expr_as ->
# _e_Add -> _arith -> _operands), with room to spare; measured in tests/tir/test_limits.py.
# Before 3.11 every Python call also takes C stack (measured on 3.10: 22,000 small frames, or
# 6,000 tree levels of the walkers, overflow the main thread's 8 MB and the process crashes;
# 20,000 and 5,000 did not), so there the limits keep the recursion limit well under that,
# and deeper trees get a LimitError.
if sys.version_info >= (3, 11):
    MAX_DEPTH, _FRAMES_PER_LEVEL = 10_000, 8
else:
    MAX_DEPTH, _FRAMES_PER_LEVEL = 2_500, 5
_HEADROOM = _FRAMES_PER_LEVEL * MAX_DEPTH + 2_000

_lock = threading.Lock()
_active = 0
_saved_limit = None


def _children(node):
    for name in node._children:
        child = getattr(node, name)
        if isinstance(child, tuple):
            for c in child:
                if hasattr(c, "_children"):
                    yield c
        elif child is not None and hasattr(child, "_children"):
            yield child


def tree_shape(node) -> tuple[int, int]:
    """``(depth, size)`` of an expression or statement, read as a tree (a node shared by two
    parents counts twice), computed without recursion in time linear in the distinct nodes."""
    memo: dict = {}
    stack = [(node, False)]
    while stack:
        n, done = stack.pop()
        key = id(n)
        if key in memo:
            continue
        kids = list(_children(n))
        if done:
            depth, size = 0, 1
            for c in kids:
                d, s = memo[id(c)]
                depth = max(depth, d)
                size += s
            memo[key] = (depth + 1, size)
            continue
        stack.append((n, True))
        stack.extend((c, False) for c in kids if id(c) not in memo)
    return memo[id(node)]


_SHARED_HINT = "compute the shared parts in their own stages instead of repeating them"


def check_tree(node, what: str, hint: str = _SHARED_HINT) -> None:
    """Refuse ``node`` (an expression or statement of ``what``, e.g. "compute B") when it is
    deeper than :data:`MAX_DEPTH` or larger than :data:`MAX_NODES` as a tree; ``hint`` says
    how to shrink it."""
    depth, size = tree_shape(node)
    if depth > MAX_DEPTH:
        raise LimitError(f"{what}: the expression nests {depth} levels deep; minitvm compiles up to "
                         f"{MAX_DEPTH} (split a long sum into stages or a reduction over an axis)")
    if size > MAX_NODES:
        raise LimitError(f"{what}: the expression has {size} nodes when its shared subexpressions are "
                         f"written out (minitvm compiles up to {MAX_NODES}); {hint}")


@contextlib.contextmanager
def _raised_recursion_limit():
    global _active, _saved_limit
    with _lock:
        if _active == 0 and sys.getrecursionlimit() < _HEADROOM:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(_HEADROOM)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved_limit is not None:
                sys.setrecursionlimit(_saved_limit)
                _saved_limit = None


def deep_recursion(what: str):
    """Decorator for an entry point that walks IR trees (``what`` names it in errors): runs it
    with the recursion limit :data:`MAX_DEPTH` needs, and turns a ``RecursionError`` that still
    happens (a tree past the limits that no check caught) into a :class:`LimitError`."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                with _raised_recursion_limit():
                    return fn(*args, **kwargs)
            except RecursionError:
                raise LimitError(f"{what}: the program nests too deeply (minitvm compiles expressions and "
                                 f"loop nests up to {MAX_DEPTH} levels deep)") from None

        return run

    return wrap


def check_loop_kind(kind: str, extent: int, where: str) -> None:
    """Refuse an ``unrolled`` or ``vectorized`` loop of constant ``extent`` past its limit;
    ``where`` names the loop ("stage B, axis i.inner")."""
    if kind == "unrolled" and extent > MAX_UNROLL_EXTENT:
        raise ScheduleError(f"{where}: unroll of {extent} iterations; minitvm unrolls up to "
                            f"{MAX_UNROLL_EXTENT} (split the axis and unroll the inner part)")
    if kind == "vectorized" and extent > MAX_VECTOR_LANES:
        raise ScheduleError(f"{where}: vectorize of {extent} lanes; minitvm vectorizes up to "
                            f"{MAX_VECTOR_LANES} (split the axis and vectorize the inner part)")
