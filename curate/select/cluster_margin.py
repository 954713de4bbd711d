"""Cluster-Margin (Citovsky et al. 2021): margin uncertainty + cluster round-robin, for big batches.

The pool is clustered once per run over the embeddings (spherical k-means; the paper's HAC does
not scale to millions). Each round takes the ``preselect × budget`` lowest-margin candidates,
groups them by cluster, orders the clusters by how many of those candidates they hold
(smallest first, ties by cluster id) and then visits them round-robin, taking each cluster's
most uncertain remaining candidate per visit, until ``budget`` items are picked. Small
clusters are exhausted first, so rare regions are not drowned by one dense uncertain region.
Cost: one sort of the scores plus O(preselect × budget): fine for batches of 100k+.
"""

from __future__ import annotations

import numpy as np


def round_robin(rows: np.ndarray, scores: np.ndarray, clusters: np.ndarray, budget: int) -> np.ndarray:
    """Round-robin over clusters (smallest first) of ``rows``; within a cluster, highest score first."""
    by_cluster = np.lexsort((rows, -scores, clusters))  # cluster, then most uncertain, then row
    rows, clusters = rows[by_cluster], clusters[by_cluster]
    ids, starts, sizes = np.unique(clusters, return_index=True, return_counts=True)
    visit = np.lexsort((ids, sizes))  # smallest cluster first, ties by cluster id
    # position of each row within its cluster -> the round in which it is taken
    within = np.arange(len(rows)) - np.repeat(starts, sizes)
    slot = np.empty(len(ids), dtype=np.int64)
    slot[visit] = np.arange(len(ids))
    turn = np.lexsort((slot[np.searchsorted(ids, clusters)], within))
    return rows[turn[:budget]]


def cluster_margin(uncertainty: np.ndarray, clusters: np.ndarray, candidates: np.ndarray, budget: int,
                   preselect: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` candidate rows; ``uncertainty`` [N] higher = more uncertain (e.g. 1 - margin),
    ``clusters`` [N] a cluster id per row. Returns (rows in pick order, their uncertainty)."""
    rows = np.flatnonzero(candidates)
    budget = int(min(budget, len(rows)))
    if budget <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    m = int(min(len(rows), max(budget, np.ceil(preselect * budget))))
    top = rows[np.argsort(-uncertainty[rows], kind="stable")[:m]]
    picks = round_robin(top, uncertainty[top], clusters[top], budget)
    return picks, uncertainty[picks].astype(np.float64)
