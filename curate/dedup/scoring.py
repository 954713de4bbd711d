"""Per-item "max similarity to a higher-priority item": within clusters and across boundaries.

Within a cluster, rows sorted by keep rank go through the ``max_sim_earlier`` kernel
(blockwise, never n x n); clusters are packed into batches of at most ``batch_rows`` rows
so memory is bounded by the batch, not the largest cluster squared.

SemDeDup never compares items of different clusters, so a duplicate pair split by a
boundary survives. Here an item is also compared with all items of each of its 2nd..4th
nearest clusters whose centroid is within ``margin`` of its nearest one; each such block
updates both sides (the boundary item and the other cluster's items), with the same rule:
only a higher-priority item (smaller rank) can make an item a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.device import resolve_device
from curate.index.assign import as_tensor
from curate.kernels.dispatch import max_sim_earlier


@dataclass(frozen=True)
class Neighbours:
    """Best higher-priority neighbour of every store row (``-1`` / ``-inf`` when none)."""

    max_sim: np.ndarray  # float32 [N]
    argmax: np.ndarray  # int64 [N], store row


def gather(vectors: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows of the (memory-mapped fp16) store as fp32 on ``device`` (torch gathers and widens
    several times faster than numpy fancy indexing; on a GPU the fp16 rows travel, then widen)."""
    picked = as_tensor(vectors).index_select(0, torch.from_numpy(np.asarray(rows, dtype=np.int64)))
    return picked.float() if device.type == "cpu" else picked.to(device).float()


def cluster_batches(members: np.ndarray, offsets: np.ndarray, ranks: np.ndarray,
                    batch_rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Whole clusters packed into batches of at most ``batch_rows`` rows (a bigger cluster is
    a batch of its own): (rows sorted by rank within each cluster, segment offsets)."""
    batches = []
    k = len(offsets) - 1
    start = 0
    while start < k:
        stop, rows_in = start, 0
        while stop < k and (rows_in == 0 or rows_in + offsets[stop + 1] - offsets[stop] <= batch_rows):
            rows_in += offsets[stop + 1] - offsets[stop]
            stop += 1
        rows, seg = [], [0]
        for c in range(start, stop):
            cluster = members[offsets[c]:offsets[c + 1]]
            rows.append(cluster[np.argsort(ranks[cluster], kind="stable")])
            seg.append(seg[-1] + len(rows[-1]))
        if seg[-1]:
            batches.append((np.concatenate(rows), np.asarray(seg, dtype=np.int64)))
        start = stop
    return batches


def score_batch(vectors: np.ndarray, rows: np.ndarray, seg: np.ndarray, device: torch.device,
                exact_above: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``max_sim_earlier`` on one batch: (max similarity, store row of the best or -1).

    ``exact_above``: values from there up are exact; below it they may come from a bf16
    screen (within 1/64), which is all a dedup threshold at or above it needs."""
    x = gather(vectors, rows, device)
    sims, idx = max_sim_earlier(x, torch.from_numpy(seg).to(device), exact_above=exact_above)
    sims, idx = sims.cpu().numpy(), idx.cpu().numpy()
    return sims, np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)


def within_clusters(vectors: np.ndarray, members: np.ndarray, offsets: np.ndarray, ranks: np.ndarray,
                    device: torch.device, batch_rows: int = 262_144, executor: str = "local",
                    exact_above: float | None = None) -> Neighbours:
    """Max similarity of each row to a higher-ranked row of its own cluster.

    Batches are independent: ``executor="ray"`` runs them as Ray tasks (each opens the
    memory-mapped store by path, so workers need the workspace on a shared filesystem)."""
    n = len(ranks)
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    batches = cluster_batches(members, offsets, ranks, batch_rows)
    if executor == "ray":
        results = _score_on_ray(vectors, batches, device, exact_above)
    else:
        results = (score_batch(vectors, rows, seg, device, exact_above) for rows, seg in batches)
    for (rows, _), (sims, args) in zip(batches, results):
        best[rows], arg[rows] = sims, args
    return Neighbours(best, arg)


def _score_on_ray(vectors: np.ndarray, batches: list, device: torch.device, exact_above: float | None) -> list:
    import ray

    path = getattr(vectors, "filename", None)
    if path is None:
        raise ValueError("the Ray executor needs a memory-mapped store (a file path)")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)

    @ray.remote(num_gpus=1 if device.type == "cuda" else 0)
    def task(rows: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = np.load(path, mmap_mode="r")
        return score_batch(local, rows, seg, resolve_device("auto" if device.type != "cpu" else "cpu"), exact_above)

    return ray.get([task.remote(rows, seg) for rows, seg in batches])


def boundary_links(labels: np.ndarray, top_ids: np.ndarray, top_sims: np.ndarray,
                   margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(row, other cluster) pairs to compare: each of a row's 2nd..top-nearest centroids
    that is within ``margin`` of its nearest one."""
    rows, targets = [], []
    for r in range(1, top_ids.shape[1]):
        near = np.flatnonzero((labels >= 0) & (top_ids[:, r] >= 0) & (top_sims[:, 0] - top_sims[:, r] < margin))
        rows.append(near)
        targets.append(top_ids[near, r])
    if not rows or margin <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(targets).astype(np.int64)


def across_boundaries(vectors: np.ndarray, links: tuple[np.ndarray, np.ndarray], members: np.ndarray,
                      offsets: np.ndarray, ranks: np.ndarray, device: torch.device,
                      block: int = 8192) -> Neighbours:
    """Best higher-ranked neighbour among the clusters each boundary row is linked to.

    Each block of similarities updates both sides: the boundary rows and the rows of the
    other cluster (which may not be near the boundary themselves)."""
    n = len(ranks)
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    rows, targets = links
    order = np.argsort(targets, kind="stable")
    rows, targets = rows[order], targets[order]
    cuts = np.flatnonzero(np.diff(targets)) + 1
    for queries, target in zip(np.split(rows, cuts), targets[np.r_[0, cuts]] if len(targets) else []):
        others = members[offsets[target]:offsets[target + 1]]
        if not len(others):
            continue
        q = gather(vectors, queries, device)
        q_rank = torch.from_numpy(ranks[queries]).to(device)
        for lo in range(0, len(others), block):
            part = others[lo:lo + block]
            sims = q @ gather(vectors, part, device).T  # [queries, block]
            p_rank = torch.from_numpy(ranks[part]).to(device)
            higher = p_rank[None, :] < q_rank[:, None]  # the other item outranks the query
            _update(best, arg, queries, part, *sims.masked_fill(~higher, -torch.inf).max(dim=1))
            _update(best, arg, part, queries, *sims.masked_fill_(higher, -torch.inf).max(dim=0))
    return Neighbours(best, arg)


def _update(best: np.ndarray, arg: np.ndarray, rows: np.ndarray, cols: np.ndarray, value: torch.Tensor,
            where: torch.Tensor) -> None:
    """Keep, for each of ``rows``, the better of its current best and ``cols[where]``."""
    value, where = value.cpu().numpy(), where.cpu().numpy()
    better = value > best[rows]
    best[rows[better]] = value[better]
    arg[rows[better]] = cols[where[better]]


def combine(a: Neighbours, b: Neighbours) -> Neighbours:
    take_b = b.max_sim > a.max_sim
    return Neighbours(np.where(take_b, b.max_sim, a.max_sim), np.where(take_b, b.argmax, a.argmax))
