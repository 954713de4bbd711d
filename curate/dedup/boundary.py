"""Duplicates split by a cluster boundary: which rows to compare across it, and the comparison.

SemDeDup never compares items of different clusters, so a duplicate pair split by a boundary
survives. Here a row is also compared with every item of each of its 2nd..4th nearest
clusters whose centroid is within ``margin`` of its nearest one (a *link*). The comparison
runs inside the batch that holds the target cluster (``scoring.score_batch``), so the
cluster's vectors are read once for both passes. Each block of similarities updates both
sides (the linked row and the target cluster's rows) with the same rule as within a cluster:
only a higher-priority item (smaller rank) can make an item a duplicate.
"""

from __future__ import annotations

import numpy as np
import torch


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


@torch.no_grad()
def across_batch(x: torch.Tensor, seg: np.ndarray, x_ranks: torch.Tensor, q: torch.Tensor,
                 q_seg: np.ndarray, q_ranks: torch.Tensor, block: int = 8192
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Compare each probe ``q[i]`` with every row of segment ``q_seg[i]`` of ``x`` (fp32, exact; ``x``
    may hold fp16 rows, widened block by block).

    Returns ``(x_best, x_arg)`` for the rows of ``x`` (best higher-ranked probe, as an index into
    ``q``) and ``(q_best, q_arg)`` per probe (best higher-ranked row, as an index into ``x``);
    -inf / -1 where none. Work and memory: probes x block per step, never x x x.
    """
    x_best = torch.full((len(x),), float("-inf"), device=x.device)
    x_arg = torch.full((len(x),), -1, dtype=torch.int64, device=x.device)
    q_best = torch.full((len(q),), float("-inf"), device=x.device)
    q_arg = torch.full((len(q),), -1, dtype=torch.int64, device=x.device)
    cuts = np.flatnonzero(np.diff(q_seg)) + 1
    starts = np.r_[0, cuts] if len(q_seg) else np.empty(0, dtype=np.int64)
    for p0, p1 in zip(starts, np.r_[cuts, len(q_seg)].astype(np.int64)):
        s = int(q_seg[p0])
        probes, probe_ranks = q[p0:p1], q_ranks[p0:p1]
        for lo in range(int(seg[s]), int(seg[s + 1]), block):
            hi = min(lo + block, int(seg[s + 1]))
            sims = probes @ x[lo:hi].float().T  # [probes, rows]; x may be the fp16 batch
            higher = x_ranks[None, lo:hi] < probe_ranks[:, None]  # the cluster's row outranks the probe
            value, where = sims.masked_fill(~higher, float("-inf")).max(dim=1)
            better = value > q_best[p0:p1]
            q_best[p0:p1] = torch.where(better, value, q_best[p0:p1])
            q_arg[p0:p1] = torch.where(better, where + lo, q_arg[p0:p1])
            value, where = sims.masked_fill_(higher, float("-inf")).max(dim=0)
            better = value > x_best[lo:hi]
            x_best[lo:hi] = torch.where(better, value, x_best[lo:hi])
            x_arg[lo:hi] = torch.where(better, where + p0, x_arg[lo:hi])
    x_arg = torch.where(x_best > float("-inf"), x_arg, -1)
    q_arg = torch.where(q_best > float("-inf"), q_arg, -1)
    return (x_best.cpu().numpy(), x_arg.cpu().numpy()), (q_best.cpu().numpy(), q_arg.cpu().numpy())
