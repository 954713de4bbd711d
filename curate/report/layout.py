"""A neighbour-preserving 2-D layout of a few thousand vectors (the report's embedding map).

PCA keeps the two directions of largest variance, so clusters that differ along many other
directions land on top of each other. This layout keeps neighbourhoods instead, the way UMAP
does, in plain numpy and bounded by ``n x k``: the ``k`` nearest neighbours of every point
(cosine, found in row blocks, never an n x n matrix) weighted by UMAP's membership strengths,
then a force layout that pulls each edge together and pushes random pairs apart (negative
sampling), with UMAP's curve for ``min_dist`` 0.1, a weak pull toward the middle (so pieces
of the graph stay in one picture) and a step that decays to zero. Seeded, so the same input
gives the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# UMAP's fitted curve 1 / (1 + a d^(2b)) for spread 1, min_dist 0.1
CURVE_A, CURVE_B = 1.577, 0.895
STEP = 1.0
# a weak pull of every point toward the middle: pieces of the kNN graph with no edge between them
# would otherwise drift apart under repulsion alone, until one island fills the picture's edge
GRAVITY = 0.05


@dataclass(frozen=True)
class LayoutConfig:
    """Settings of :func:`neighbour_layout`; the defaults suit 100 to 10,000 points."""

    neighbours: int = 15
    epochs: int = 200
    negatives: int = 5  # random repelled points per point and epoch
    block: int = 1024  # rows per block of the kNN search
    seed: int = 0


def knn_graph(x: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most cosine-similar other rows: indices and cosine distances [n, k], nearest
    first, searched ``block`` rows at a time."""
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    k = min(k, n - 1)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    idx = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        sims = unit[start:start + block] @ unit.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not its own neighbour
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        idx[start:start + block] = np.take_along_axis(top, order, axis=1)
        dist[start:start + block] = 1.0 - np.take_along_axis(top_sims, order, axis=1)
    return idx, np.maximum(dist, 0.0)


def edge_weights(dist: np.ndarray) -> np.ndarray:
    """UMAP's membership strengths exp(-(d - rho) / sigma): 1 for the nearest neighbour, and sigma set
    per row (bisection) so a row's weights sum to log2(k); far neighbours of a dense row count little."""
    excess = np.maximum(dist - dist[:, :1], 0.0).astype(np.float64)
    target = np.log2(dist.shape[1])
    lo, hi = np.zeros((len(dist), 1)), np.full((len(dist), 1), np.inf)
    sigma = np.ones((len(dist), 1))
    for _ in range(64):
        wide = np.exp(-excess / sigma).sum(axis=1, keepdims=True) > target
        hi = np.where(wide, sigma, hi)
        lo = np.where(wide, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    sigma = np.maximum(sigma, 1e-3 * max(float(dist.mean()), 1e-12))
    return np.exp(-excess / sigma).astype(np.float32)


def neighbour_layout(x: np.ndarray, config: LayoutConfig = LayoutConfig()) -> np.ndarray:
    """2-D coordinates [n, 2] (float32) in which each row's nearest neighbours stay near it."""
    from scipy import sparse

    n = len(x)
    if n < 3:
        return np.zeros((n, 2), dtype=np.float32)
    rng = np.random.default_rng(config.seed)
    idx, dist = knn_graph(x, config.neighbours, config.block)
    directed = sparse.coo_matrix((edge_weights(dist).reshape(-1), (np.repeat(np.arange(n), idx.shape[1]),
                                                                   idx.reshape(-1))), shape=(n, n)).tocsr()
    both = (directed + directed.T - directed.multiply(directed.T)).tocoo()  # fuzzy union of the two sides
    upper = both.row < both.col
    heads, tails = both.row[upper], both.col[upper]
    weight = both.data[upper].astype(np.float32)[:, None]
    strength = (_scatter(n, heads, np.repeat(weight, 2, axis=1)) + _scatter(n, tails, np.repeat(weight, 2, axis=1)))
    y = rng.uniform(-10, 10, size=(n, 2)).astype(np.float32)
    for epoch in range(config.epochs):
        rate = STEP * (1.0 - epoch / config.epochs)
        pull = weight * _attraction(y[heads] - y[tails])
        grad = _scatter(n, tails, pull) - _scatter(n, heads, pull)
        push = np.zeros_like(y)
        for _ in range(config.negatives):  # repulsion from random points, in proportion to a point's edges
            push += _repulsion(y - y[rng.integers(0, n, size=n)])
        grad += strength * push - GRAVITY * (y - y.mean(axis=0))
        y += rate * np.clip(grad, -4.0, 4.0)
    y -= y.mean(axis=0)
    return y.astype(np.float32)


def _attraction(diff: np.ndarray) -> np.ndarray:
    """Pull of an edge along ``diff`` (head - tail): the gradient of log(1 + a d^2b), clipped."""
    d2 = np.maximum((diff * diff).sum(axis=1, keepdims=True), 1e-6)
    pb = np.exp(CURVE_B * np.log(d2))  # d^2b
    coeff = 2.0 * CURVE_A * CURVE_B * pb / d2 / (1.0 + CURVE_A * pb)
    return np.clip(coeff * diff, -4.0, 4.0)


def _repulsion(diff: np.ndarray) -> np.ndarray:
    """Push along ``diff`` (point - random other): the gradient of log(1 - 1 / (1 + a d^2b)), clipped."""
    d2 = (diff * diff).sum(axis=1, keepdims=True)
    pb = np.exp(CURVE_B * np.log(np.maximum(d2, 1e-6)))
    coeff = 2.0 * CURVE_B / ((0.001 + d2) * (1.0 + CURVE_A * pb))
    return np.clip(coeff * diff, -4.0, 4.0)


def _scatter(n: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sums of ``values`` [m, 2] per row index, as an [n, 2] float32 array."""
    return np.stack([np.bincount(rows, weights=values[:, axis], minlength=n) for axis in range(2)],
                    axis=1).astype(np.float32)


def knn_recall(high: np.ndarray, low: np.ndarray, k: int = 10, block: int = 1024) -> float:
    """Mean fraction of each point's ``k`` nearest neighbours in ``high`` that are among its ``k``
    nearest in ``low`` (euclidean in both): 1.0 is a layout that keeps every neighbourhood."""
    a, b = _euclid_knn(high, k, block), _euclid_knn(low, k, block)
    hits = sum(len(np.intersect1d(a[i], b[i], assume_unique=True)) for i in range(len(a)))
    return hits / max(a.size, 1)


def _euclid_knn(x: np.ndarray, k: int, block: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sq = (x * x).sum(axis=1)
    out = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), block):
        d = sq[start:start + block, None] - 2 * x[start:start + block] @ x.T + sq[None, :]
        d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf
        out[start:start + block] = np.argpartition(d, k - 1, axis=1)[:, :k]
    return out
