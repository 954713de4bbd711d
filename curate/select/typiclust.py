"""TypiClust (Hacohen et al. 2022): cold-start selection by typicality, no model needed.

1. Spherical k-means of the pool (labeled + candidates) into ``budget + labeled`` clusters
   (at most ``max_clusters``).
2. Clusters are visited least-covered first (labeled + picked items), largest first among
   equals; each visit picks the cluster's most typical remaining candidate. Class-aware
   (``classes`` given: a predicted class per row): clusters whose majority class has the fewest
   labeled-or-picked items go first (then least covered, largest), so the picks even out the
   classes: a small class (few, small clusters) is not left for last.
3. Typicality = 1 / mean Euclidean distance to the item's ``knn`` nearest neighbours within
   its cluster. A cluster larger than ``cap`` is represented by a seeded sample of ``cap``
   members (only they are scored and can be picked), so the kNN work is at most cap² per
   cluster and blockwise: never N × N.
"""

from __future__ import annotations

import heapq

import numpy as np
import torch

from curate.device import resolve_device
from curate.index.assign import assign, cluster_members
from curate.index.kmeans import MAX_CLUSTERS, KMeansConfig, fit_spherical_kmeans


def typicality(x: torch.Tensor, knn: int, block: int = 2048) -> torch.Tensor:
    """1 / mean distance to the ``knn`` nearest other rows of ``x`` (unit rows), blockwise."""
    n = x.shape[0]
    k = min(knn, n - 1)
    if k < 1:
        return torch.ones(n, dtype=torch.float32, device=x.device)
    out = torch.empty(n, dtype=torch.float32, device=x.device)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        sims = x[lo:hi] @ x.T
        sims[torch.arange(hi - lo, device=x.device), torch.arange(lo, hi, device=x.device)] = float("-inf")
        top = sims.topk(k, dim=1).values
        dist = torch.sqrt((2.0 - 2.0 * top).clamp_min(0.0))
        out[lo:hi] = 1.0 / (dist.mean(dim=1) + 1e-8)
    return out


def cluster_pool(features: np.ndarray, pool: np.ndarray, clusters: int, seed: int,
                 device: str | torch.device = "auto") -> np.ndarray:
    """Cluster label of every pool row (-1 outside the pool), spherical k-means on ``features``."""
    k = int(min(clusters, MAX_CLUSTERS, pool.sum()))
    # greedy k-means++ seeding costs k passes: worth it for a few hundred clusters, not for thousands
    init, iterations = ("k-means++", 20) if k <= 256 else ("random", 10)
    cents = fit_spherical_kmeans(features, pool, KMeansConfig(clusters=k, seed=seed, device=device, init=init,
                                                              iterations=iterations))
    return assign(features, cents, valid=pool, top=1, device=device).labels.astype(np.int64)


def typiclust(features: np.ndarray, candidates: np.ndarray, labeled: np.ndarray, budget: int,
              rng: np.random.Generator, knn: int = 20, cap: int = 4096, max_clusters: int = 50_000,
              device: str | torch.device = "auto", labels: np.ndarray | None = None,
              classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` candidate rows (unit ``features`` [N, d]); returns (rows, typicality).

    ``labels``: precomputed cluster labels (-1 = outside the pool); by default k-means as above.
    ``classes``: predicted class of every row (class-aware visiting order, see above).
    """
    pool = candidates | labeled
    budget = int(min(budget, candidates.sum()))
    if budget <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    dev = resolve_device(device)
    if labels is None:
        seed = int(rng.integers(2**31))
        labels = cluster_pool(features, pool, min(budget + int(labeled.sum()), max_clusters), seed, dev)
    order, offsets = cluster_members(labels)
    queues: list[list[tuple[float, int]]] = []
    heap = []
    major = np.zeros(len(offsets) - 1, dtype=np.int64)
    count = None
    if classes is not None:
        count = np.bincount(classes[labeled], minlength=int(classes.max(initial=0)) + 1)
    for c in range(len(offsets) - 1):
        members = order[offsets[c]:offsets[c + 1]]
        size = len(members)
        if size > cap:
            members = np.sort(rng.choice(members, size=cap, replace=False))
        cand = candidates[members]
        if not cand.any():
            queues.append([])
            continue
        x = torch.from_numpy(np.asarray(features[members], dtype=np.float32)).to(dev)
        typ = typicality(x, knn).cpu().numpy()[cand]
        rows = members[cand]
        best = np.lexsort((rows, -typ))  # most typical first, ties by row
        queues.append([(float(typ[i]), int(rows[i])) for i in best[::-1]])  # pop() from the end
        covered = int(labeled[order[offsets[c]:offsets[c + 1]]].sum())
        if count is not None:
            major[c] = int(np.bincount(classes[members]).argmax())
        heap.append((_class_count(count, major[c]), covered, -size, c))
    heapq.heapify(heap)
    picks, scores = [], []
    while heap and len(picks) < budget:
        seen, covered, neg_size, c = heapq.heappop(heap)
        if _class_count(count, major[c]) > seen:  # its class got picks since it was queued: requeue
            heapq.heappush(heap, (_class_count(count, major[c]), covered, neg_size, c))
            continue
        typ, row = queues[c].pop()
        picks.append(row)
        scores.append(typ)
        if count is not None:
            count[classes[row]] += 1
        if queues[c]:
            heapq.heappush(heap, (_class_count(count, major[c]), covered + 1, neg_size, c))
    return np.asarray(picks, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def _class_count(count: np.ndarray | None, c: int) -> int:
    return int(count[c]) if count is not None and c < len(count) else 0


def density(features: np.ndarray, rows: np.ndarray, members: np.ndarray, knn: int = 10,
            device: str | torch.device = "auto", block: int = 8192, sample: int = 32768) -> np.ndarray:
    """Typicality of ``rows`` within the pool ``members`` (bool): 1 / mean cosine-derived Euclidean
    distance to the ``knn`` nearest other members; blockwise (len(rows) x block at a time). A pool
    above ``sample`` members is represented by a fixed-seed sample of that many (the cost stays
    rows x sample; distances grow alike for every row, and the caller only compares them)."""
    ref = np.flatnonzero(members)
    if len(ref) > sample:
        ref = np.union1d(np.sort(np.random.default_rng(0).choice(ref, size=sample, replace=False)), rows)
    k = int(min(knn, len(ref) - 1))
    if len(rows) == 0 or k < 1:
        return np.ones(len(rows))
    dev = resolve_device(device)
    q = torch.from_numpy(np.asarray(features[rows], dtype=np.float32)).to(dev)
    top = torch.full((len(rows), k + 1), -2.0, device=dev)
    for lo in range(0, len(ref), block):
        x = torch.from_numpy(np.asarray(features[ref[lo:lo + block]], dtype=np.float32)).to(dev)
        top = torch.cat([top, q @ x.T], dim=1).topk(k + 1, dim=1).values
    dist = torch.sqrt((2.0 - 2.0 * top[:, 1:]).clamp_min(0.0))  # column 0: the row itself
    return (1.0 / (dist.mean(dim=1) + 1e-8)).double().cpu().numpy()
