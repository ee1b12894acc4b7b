"""Bound inference over a consumer's leaf loops (``schedule.bound``): fused axes whose index
recombines give exact tiles; the root interval stays where the leaf one would overhang the tensor."""
import numpy as np

import minitvm
from minitvm import te
from minitvm.schedule import bound
from minitvm.tir import expr as E
from minitvm.tir.arith import Analyzer


def _pixels_of_fused_tile(factor):
    """``C[n, h, w] = 2 * P[(n * H + h) * W + w]``, C's axes fused and split by ``factor``, P computed
    per tile: the lowered text and the result on random data."""
    N, H, W = 2, 3, 5
    A = te.placeholder((N * H * W,), "int32", "A")
    P = te.compute((N * H * W,), lambda i: A[i] + 1, name="P")
    C = te.compute((N, H, W), lambda n, h, w: P[(n * H + h) * W + w] * 2, name="C")
    s = te.create_schedule(C.op)
    po, _ = s[C].split(s[C].fuse(*s[C].op.axis), factor=factor)
    s[P].compute_at(s[C], po)
    text = str(minitvm.lower(s, [A, C]))
    a = np.random.default_rng(3).integers(-1000, 1000, N * H * W, dtype=np.int32)
    c = np.full((N, H, W), -7, np.int32)
    minitvm.build(s, [A, C], "llvm")(a, c)
    np.testing.assert_array_equal(c, ((a + 1) * 2).reshape(N, H, W))
    return text


def test_fused_pixel_axis_gives_an_exact_tile():
    text = _pixels_of_fused_tile(5)
    assert "allocate P[int32 * 5]" in text


def test_fused_pixel_axis_without_leaf_intervals_computes_more(monkeypatch):
    """The root intervals of (n, h, w) inside one tile cover whole rows or images."""
    monkeypatch.setattr(bound.StageInfo, "_leaf_interval_of", lambda self, *a: None)
    assert "allocate P[int32 * 5]" not in _pixels_of_fused_tile(5)


def test_leaf_interval_wins_where_it_is_smaller_or_inside_the_tensor():
    an = Analyzer()
    y = te.var("y")
    roots, inside = (y, y + 7), (E.const(0), E.const(7))
    assert bound._prefer_tile(an, roots, inside, E.const(30)) is inside
    smaller = (y, y + 3)
    assert bound._prefer_tile(an, roots, smaller, E.const(30)) is smaller
    assert bound._prefer_tile(an, roots, None, E.const(30)) is roots


def test_root_interval_is_kept_where_the_leaf_interval_would_overhang_the_tensor():
    an = Analyzer()
    y = te.var("y")
    roots = (E.const(24), E.const(29))
    over = (E.const(24), E.const(31))     # a last tile of 8 past a tensor of 30
    assert bound._prefer_tile(an, roots, over, E.const(30)) is roots
    unknown = (y, y + 5)                 # cannot be proven inside
    assert bound._prefer_tile(an, roots, unknown, E.const(30)) is roots
