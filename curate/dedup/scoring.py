"""Per-item "max similarity to a higher-priority item": within clusters and across boundaries.

Within a cluster, rows sorted by keep rank go through the ``max_sim_earlier`` kernel
(blockwise, never n x n); clusters are packed into batches of at most ``batch_rows`` rows
so memory is bounded by the batch, not the largest cluster squared.

SemDeDup never compares items of different clusters, so a duplicate pair split by a
boundary survives. Here every item whose nearest two centroids are within ``margin`` of
each other is also compared with all items of its second cluster; each such block updates
both sides (the boundary item and the other cluster's items), with the same rule: only a
higher-priority item (smaller rank) can make an item a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.kernels.dispatch import max_sim_earlier


@dataclass(frozen=True)
class Neighbours:
    """Best higher-priority neighbour of every store row (``-1`` / ``-inf`` when none)."""

    max_sim: np.ndarray  # float32 [N]
    argmax: np.ndarray  # int64 [N], store row


def gather(vectors: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows of the (memory-mapped fp16) store as fp32 on ``device``; reads sorted for locality."""
    order = np.argsort(rows, kind="stable")
    block = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
    block[order] = vectors[rows[order]]
    return torch.from_numpy(block).to(device)


def within_clusters(vectors: np.ndarray, members: np.ndarray, offsets: np.ndarray, ranks: np.ndarray,
                    device: torch.device, batch_rows: int = 262_144) -> Neighbours:
    """Max similarity of each row to a higher-ranked row of its own cluster."""
    n = len(ranks)
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
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
            cluster = cluster[np.argsort(ranks[cluster], kind="stable")]
            rows.append(cluster)
            seg.append(seg[-1] + len(cluster))
        flat = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        if len(flat):
            x = gather(vectors, flat, device)
            sims, idx = max_sim_earlier(x, torch.tensor(seg, dtype=torch.int64, device=device))
            sims, idx = sims.cpu().numpy(), idx.cpu().numpy()
            has = idx >= 0
            best[flat] = sims
            arg[flat[has]] = flat[idx[has]]
        start = stop
    return Neighbours(best, arg)


def across_boundaries(vectors: np.ndarray, labels: np.ndarray, top_ids: np.ndarray, top_sims: np.ndarray,
                      members: np.ndarray, offsets: np.ndarray, ranks: np.ndarray, margin: float,
                      device: torch.device, block: int = 8192) -> tuple[Neighbours, np.ndarray]:
    """Best higher-ranked neighbour in the adjacent cluster, and the boundary rows compared."""
    n = len(ranks)
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    if top_ids.shape[1] < 2 or margin <= 0:
        return Neighbours(best, arg), np.empty(0, dtype=np.int64)
    boundary = np.flatnonzero((labels >= 0) & (top_ids[:, 1] >= 0) & (top_sims[:, 0] - top_sims[:, 1] < margin))
    targets = top_ids[boundary, 1]
    for target in np.unique(targets):
        queries = boundary[targets == target]
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
            _update(best, arg, queries, part, torch.where(higher, sims, -torch.inf))
            _update(best, arg, part, queries, torch.where(~higher, sims, -torch.inf).T)
    return Neighbours(best, arg), boundary


def _update(best: np.ndarray, arg: np.ndarray, rows: np.ndarray, cols: np.ndarray, sims: torch.Tensor) -> None:
    value, where = sims.max(dim=1)
    value, where = value.cpu().numpy(), where.cpu().numpy()
    better = value > best[rows]
    best[rows[better]] = value[better]
    arg[rows[better]] = cols[where[better]]


def combine(a: Neighbours, b: Neighbours) -> Neighbours:
    take_b = b.max_sim > a.max_sim
    return Neighbours(np.where(take_b, b.max_sim, a.max_sim), np.where(take_b, b.argmax, a.argmax))
