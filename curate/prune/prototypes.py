"""Self-supervised-prototype pruning (Sorscher et al., "Beyond neural scaling laws"; D4).

Candidates are clustered with spherical k-means; an item's score is its cosine distance to
its cluster's centroid (the prototype). Each cluster keeps a share of the budget, either in
proportion to its size (``prototypes``: the pool's cluster mix is preserved) or equal shares
with water-filling (``balanced``: small clusters keep everything, big ones are thinned), and
within a cluster the ``hard`` items (farthest from the prototype) or the ``easy`` ones
(closest) survive. The paper's advice: keep hard examples when data is abundant, easy ones
when it is scarce.

Everything here is O(N) over arrays; k-means fits on a sample and assignment is blockwise.
"""

from __future__ import annotations

import numpy as np
import torch

from curate.index.assign import assign
from curate.index.kmeans import KMeansConfig, default_clusters, fit_spherical_kmeans
from curate.prune.quotas import allocate

KEEPS = ("hard", "easy")
# Greedy k-means++ seeding costs O(k^2) (k sequential passes over ~32 k rows): a few seconds
# at k = 1,000, tens of minutes at the k ~ 3,000 of ten million items. Above this many clusters
# seeding is random and Lloyd's iterations do the work (as in semantic dedup).
MAX_KMEANSPP_CLUSTERS = 1000


def fit_prototypes(vectors: np.ndarray, candidates: np.ndarray, clusters: int | None, seed: int,
                   device: torch.device | str = "auto") -> tuple[np.ndarray, np.ndarray, int]:
    """Cluster the candidate rows of ``vectors``: (label per row, -1 off the candidates;
    cosine distance to the own centroid per row, NaN off the candidates; cluster count)."""
    n_cand = int(candidates.sum())
    labels = np.full(len(vectors), -1, dtype=np.int64)
    dist = np.full(len(vectors), np.nan, dtype=np.float32)
    if n_cand == 0:
        return labels, dist, 0
    k = min(clusters or default_clusters(n_cand), n_cand)
    init = "k-means++" if k <= MAX_KMEANSPP_CLUSTERS else "random"
    centroids = fit_spherical_kmeans(vectors, candidates, KMeansConfig(
        clusters=k, sample=max(64 * k, 20_000), iterations=20, seed=seed, device=device, init=init))
    a = assign(vectors, centroids, valid=candidates, top=1, device=device)
    labels[candidates] = a.labels[candidates]
    dist[candidates] = 1.0 - a.sims[candidates, 0]
    return labels, dist, len(centroids)


def keep_order(rows: np.ndarray, dist: np.ndarray, keep: str) -> np.ndarray:
    """``rows`` sorted by keep priority: hard = farthest first, easy = closest first; ties by row."""
    key = -dist[rows] if keep == "hard" else dist[rows]
    return rows[np.lexsort((rows, key))]


def select_per_cluster(rows: np.ndarray, labels: np.ndarray, dist: np.ndarray, budget: int, keep: str,
                       balanced: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` of ``rows`` cluster by cluster; returns (picks in rank order, quota per cluster).

    The rank order interleaves clusters (see :func:`interleave`), so any prefix of it keeps
    about the same cluster mix as the whole selection.
    """
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    lab = labels[rows]
    order = np.argsort(lab, kind="stable")
    groups, starts, sizes = np.unique(lab[order], return_index=True, return_counts=True)
    weights = np.ones(len(sizes)) if balanced else sizes.astype(np.float64)
    quota = allocate(budget, sizes, weights)
    parts = [keep_order(rows[order[s:s + n]], dist, keep)[:q] for s, n, q in zip(starts, sizes, quota)]
    full = np.zeros(int(labels.max()) + 1 if len(labels) else 0, dtype=np.int64)
    full[groups] = quota
    return interleave(parts), full


def interleave(parts: list[np.ndarray]) -> np.ndarray:
    """Merge ranked lists by relative position: item j of a list of length n sorts at (j + 0.5) / n,
    ties by list order, so every prefix of the result holds each list in proportion to its length."""
    parts = [np.asarray(p, dtype=np.int64) for p in parts]
    if not parts or sum(len(p) for p in parts) == 0:
        return np.empty(0, dtype=np.int64)
    pos = np.concatenate([(np.arange(len(p)) + 0.5) / len(p) for p in parts if len(p)])
    which = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts) if len(p)])
    flat = np.concatenate([p for p in parts if len(p)])
    return flat[np.lexsort((which, pos))]
