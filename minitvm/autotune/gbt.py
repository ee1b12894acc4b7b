"""Gradient-boosted trees for tuning cost models: lightgbm when it is installed (the ``tune``
extra), else a small numpy implementation of the same algorithm.

:class:`BoostedTrees` learns a score of feature rows where lower means faster. Two objectives:

* ``"regression"``: squared error on the target (relative log run time);
* ``"rank"``: only the order within each group (a task) counts: lightgbm's LambdaRank with
  16 relevance levels by rank within the group, or, in numpy, the pairwise logistic loss
  (RankNet) over pairs drawn within each group.

``base``: a score per row to boost from (the prediction of a model trained on other tasks'
trials): the trees then learn a correction of it, as TVM's transfer learning does.

The numpy trees are histogram trees like lightgbm's: each feature is cut into up to
``max_bins`` quantile bins (NaN in a bin of its own, always sent left), every tree is grown level
by level to ``max_depth`` with the split of largest gain
``G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)`` whose children keep ``min_leaf`` rows, and a
leaf's value is ``-learning_rate * G/(H+l2)``.
"""
from __future__ import annotations

import importlib.util
import numbers

import numpy as np

from ..errors import ArgumentError

__all__ = ["BoostedTrees", "BACKENDS", "OBJECTIVES", "lightgbm_available"]

BACKENDS = ("auto", "lightgbm", "numpy")
OBJECTIVES = ("regression", "rank")
_RANK_LEVELS = 16          # LambdaRank relevance levels: the fastest 1/16 of a group gets 15
_PAIRS_PER_ROW = 16        # RankNet pairs drawn per row and group (numpy rank objective)


def lightgbm_available() -> bool:
    """Whether lightgbm can be imported."""
    return importlib.util.find_spec("lightgbm") is not None


class BoostedTrees:
    """A boosted-tree score model (lower = faster); see the module docstring.

    ``backend``: ``"auto"`` (lightgbm if installed, else numpy), ``"lightgbm"`` or ``"numpy"``.
    ``n_trees``, ``learning_rate``, ``max_depth``, ``min_leaf`` (rows per leaf), ``l2`` (leaf
    weight penalty), ``max_bins``, ``seed``: as in any boosted-tree library.
    """

    def __init__(self, objective: str = "regression", backend: str = "auto", n_trees: int = 100,
                 learning_rate: float = 0.1, max_depth: int = 4, min_leaf: int = 4, l2: float = 1.0,
                 max_bins: int = 32, seed: int = 0):
        if objective not in OBJECTIVES:
            raise ArgumentError(f"BoostedTrees: unknown objective {objective!r}; choose one of {list(OBJECTIVES)}")
        if backend not in BACKENDS:
            raise ArgumentError(f"BoostedTrees: unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        if backend == "lightgbm" and not lightgbm_available():
            raise ArgumentError("BoostedTrees: backend 'lightgbm' is not installed (pip install 'minitvm[tune]'), "
                                "or use backend='numpy'")
        for name, value, low in (("n_trees", n_trees, 1), ("max_depth", max_depth, 1), ("min_leaf", min_leaf, 1),
                                 ("max_bins", max_bins, 2)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ArgumentError(f"BoostedTrees: {name} must be an integer >= {low}, got {value!r}")
        if not isinstance(learning_rate, numbers.Real) or not 0.0 < learning_rate <= 1.0:
            raise ArgumentError(f"BoostedTrees: learning_rate must lie in (0, 1], got {learning_rate!r}")
        if not isinstance(l2, numbers.Real) or l2 < 0:
            raise ArgumentError(f"BoostedTrees: l2 must be a number >= 0, got {l2!r}")
        self.objective = objective
        self.backend = ("lightgbm" if lightgbm_available() else "numpy") if backend == "auto" else backend
        self.n_trees, self.learning_rate, self.max_depth = int(n_trees), float(learning_rate), int(max_depth)
        self.min_leaf, self.l2, self.max_bins, self.seed = int(min_leaf), float(l2), int(max_bins), int(seed)
        self._model = None
        self._n_features = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run on at least two rows."""
        return self._model is not None

    def fit(self, X, y, groups=None, base=None) -> "BoostedTrees":
        """Learn ``y`` (lower = faster) from rows ``X``; ``groups``: a group id per row (the rank
        objective orders rows within a group; default one group); ``base``: scores to boost from."""
        X = np.asarray(X, np.float64)
        y = np.asarray(y, np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise ArgumentError(f"BoostedTrees.fit: X must be rows x features and y one value per row, got "
                                f"X {X.shape} and y {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ArgumentError("BoostedTrees.fit: y must be finite (give failed trials a large finite cost)")
        groups = np.zeros(len(y), np.int64) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        base = np.zeros(len(y)) if base is None else np.asarray(base, np.float64)
        if groups.shape != y.shape or base.shape != y.shape:
            raise ArgumentError("BoostedTrees.fit: groups and base need one value per row")
        self._n_features = X.shape[1]
        if len(y) < 2:
            self._model = None
            return self
        fit = _fit_lightgbm if self.backend == "lightgbm" else _NumpyTrees.fit
        self._model = fit(self, X, y, groups, base)
        return self

    def predict(self, X, base=None) -> np.ndarray:
        """Scores of rows ``X`` (lower = predicted faster): ``base`` (default 0) plus the trees'."""
        X = np.asarray(X, np.float64)
        if X.ndim != 2 or (self._n_features is not None and X.shape[1] != self._n_features):
            raise ArgumentError(f"BoostedTrees.predict: X must be rows of the {self._n_features} features the "
                                f"model was fit on, got shape {X.shape}")
        out = np.zeros(len(X)) if base is None else np.asarray(base, np.float64).copy()
        if self._model is not None and len(X):
            out += self._model.predict(X)
        return out


# --------------------------------------------------------------------------------------------
# targets shared by the backends
# --------------------------------------------------------------------------------------------
def _rank_levels(y, groups) -> np.ndarray:
    """Relevance per row: ``_RANK_LEVELS - 1`` for the fastest rows of their group, 0 for the slowest."""
    out = np.zeros(len(y), np.int64)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        pos = np.empty(len(idx))
        pos[np.argsort(y[idx], kind="stable")] = np.arange(len(idx))
        out[idx] = _RANK_LEVELS - 1 - np.floor(pos * _RANK_LEVELS / len(idx)).astype(np.int64)
    return out


def _rank_pairs(y, groups, rng) -> tuple:
    """``(faster, slower)`` row indices of pairs drawn within each group (ties dropped)."""
    fast, slow = [], []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 2:
            continue
        a = np.repeat(idx, _PAIRS_PER_ROW)
        b = idx[rng.integers(0, len(idx), len(a))]
        keep = y[a] != y[b]
        a, b = a[keep], b[keep]
        first = y[a] < y[b]
        fast.append(np.where(first, a, b))
        slow.append(np.where(first, b, a))
    if not fast:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(fast), np.concatenate(slow)


# --------------------------------------------------------------------------------------------
# lightgbm
# --------------------------------------------------------------------------------------------
class _LightGBMModel:
    def __init__(self, booster, negate):
        self.booster, self.negate = booster, negate

    def predict(self, X):
        p = self.booster.predict(X, raw_score=True)
        return -p if self.negate else p


def _fit_lightgbm(m: BoostedTrees, X, y, groups, base):
    import lightgbm as lgb
    params = {"learning_rate": m.learning_rate, "max_depth": m.max_depth, "num_leaves": 2 ** m.max_depth,
              "min_data_in_leaf": m.min_leaf, "min_sum_hessian_in_leaf": 1e-6, "lambda_l2": m.l2,
              "max_bin": m.max_bins, "min_data_in_bin": 1, "seed": m.seed, "deterministic": True,
              "num_threads": 1, "verbose": -1, "feature_pre_filter": False}
    if m.objective == "rank":
        order = np.argsort(groups, kind="stable")      # lightgbm wants each group's rows together
        X, y, groups, base = X[order], y[order], groups[order], base[order]
        params.update(objective="lambdarank", label_gain=list(range(_RANK_LEVELS)))
        data = lgb.Dataset(X, _rank_levels(y, groups), group=np.bincount(groups),
                           init_score=-base, free_raw_data=False)
    else:
        params.update(objective="regression")
        data = lgb.Dataset(X, y, init_score=base, free_raw_data=False)
    booster = lgb.train(params, data, num_boost_round=m.n_trees)
    return _LightGBMModel(booster, negate=m.objective == "rank")


# --------------------------------------------------------------------------------------------
# numpy
# --------------------------------------------------------------------------------------------
class _NumpyTrees:
    """Histogram boosted trees: bin edges per feature and complete trees of depth ``depth``
    (``feat``/``thr`` per inner node in heap order, -1: no split, every row goes left)."""

    def __init__(self, edges, depth):
        self.edges, self.depth = edges, depth
        self.trees: list = []          # (feat, thr, leaf values)

    def bin(self, X) -> np.ndarray:
        """Bin index per value: 0 for NaN, 1 + the number of edges below it otherwise."""
        out = np.zeros(X.shape, np.int64)
        for f, e in enumerate(self.edges):
            col = X[:, f]
            ok = ~np.isnan(col)
            out[ok, f] = np.searchsorted(e, col[ok], side="right") + 1
        return out

    def _leaf_of(self, B, feat, thr) -> np.ndarray:
        node = np.zeros(len(B), np.int64)
        for d in range(self.depth):
            heap = (1 << d) - 1 + node
            f = feat[heap]
            right = (f >= 0) & (B[np.arange(len(B)), np.maximum(f, 0)] > thr[heap])
            node = 2 * node + right
        return node

    def predict(self, X) -> np.ndarray:
        B = self.bin(np.asarray(X, np.float64))
        out = np.zeros(len(B))
        for feat, thr, leaf in self.trees:
            out += leaf[self._leaf_of(B, feat, thr)]
        return out

    @classmethod
    def fit(cls, m: BoostedTrees, X, y, groups, base):
        n, F = X.shape
        edges = []
        for f in range(F):
            col = X[:, f][~np.isnan(X[:, f])]
            cuts = np.unique(np.quantile(col, np.linspace(0, 1, m.max_bins)[1:-1])) if len(col) else np.zeros(0)
            edges.append(cuts)
        model = cls(edges, m.max_depth)
        B = model.bin(X)
        nb = max(len(e) for e in edges) + 2
        rng = np.random.default_rng(m.seed)
        pairs = _rank_pairs(y, groups, rng) if m.objective == "rank" else None
        score = base.copy()
        for _ in range(m.n_trees):
            if pairs is None:
                g, h = score - y, np.ones(n)
            else:
                fast, slow = pairs
                s = 1.0 / (1.0 + np.exp(score[slow] - score[fast]))     # P(model orders the pair wrong)
                g = np.bincount(fast, s, n) - np.bincount(slow, s, n)
                w = s * (1.0 - s)
                h = np.bincount(fast, w, n) + np.bincount(slow, w, n) + 1e-6
            tree = model._grow(m, B, g, h, nb)
            model.trees.append(tree)
            score += tree[2][model._leaf_of(B, tree[0], tree[1])]
        return model

    def _grow(self, m: BoostedTrees, B, g, h, nb):
        n, F = B.shape
        depth = self.depth
        feat = np.full((1 << depth) - 1, -1, np.int64)
        thr = np.zeros((1 << depth) - 1, np.int64)
        node = np.zeros(n, np.int64)
        # one bincount per level over every (node, feature, bin) slot: few numpy calls, which is
        # what counts for the few hundred rows of a task's own trials
        offset = (np.arange(F) * nb + B).ravel()
        unit_hessian = m.objective == "regression"        # h == 1: the hessian sums are the counts
        for d in range(depth):
            k = 1 << d
            key = offset + np.repeat(node * (F * nb), F) if d else offset
            size = k * F * nb
            G = np.bincount(key, np.repeat(g, F), size).reshape(k, F, nb).cumsum(2)
            C = np.bincount(key, None, size).reshape(k, F, nb).cumsum(2)
            H = C if unit_hessian else np.bincount(key, np.repeat(h, F), size).reshape(k, F, nb).cumsum(2)
            Gt, Ht, Ct = G[:, :1, -1:], H[:, :1, -1:], C[:, :1, -1:]
            gain = G ** 2 / (H + m.l2) + (Gt - G) ** 2 / (Ht - H + m.l2) - Gt ** 2 / (Ht + m.l2)
            gain[(C < m.min_leaf) | (Ct - C < m.min_leaf)] = -np.inf
            best = gain.reshape(k, -1).argmax(1)
            ok = gain.reshape(k, -1)[np.arange(k), best] > 1e-12
            heap = (1 << d) - 1 + np.arange(k)
            feat[heap] = np.where(ok, best // nb, -1)
            thr[heap] = best % nb
            f = feat[(1 << d) - 1 + node]
            node = 2 * node + ((f >= 0) & (B[np.arange(n), np.maximum(f, 0)] > thr[(1 << d) - 1 + node]))
        n_leaves = 1 << depth
        leaf = -m.learning_rate * np.bincount(node, g, n_leaves) / (np.bincount(node, h, n_leaves) + m.l2)
        return feat, thr, leaf
