"""The prune strategies over one group of candidates (a class, or the whole pool).

Each returns the picked store rows in keep order and a float32 score per candidate row:

- ``kcenter``: k-center greedy from the group's labeled rows; a pick's score is its distance
  to the nearest earlier center when picked, a pruned candidate's is its distance to the
  nearest kept item afterwards (how well the kept set covers it).
- ``prototypes`` / ``balanced``: distance to the cluster prototype (``prototypes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.kernels.dispatch import topk_cosine
from curate.prune.prototypes import select_per_cluster
from curate.select.kcenter import kcenter_greedy
from curate.vectors import blocks, gather


@dataclass(frozen=True)
class GroupPick:
    picks: np.ndarray  # store rows, keep order
    scores: np.ndarray  # float32 per candidate row (same order as the candidates given)
    radius: float = float("nan")  # kcenter: covering radius of the group afterwards


def kcenter_group(vectors: np.ndarray, candidates: np.ndarray, centers: np.ndarray, budget: int,
                  device: torch.device) -> GroupPick:
    """k-center greedy over store rows ``candidates`` starting from store rows ``centers``, on the
    stage's ``device``."""
    mask = np.zeros(len(vectors), dtype=bool)
    mask[candidates] = True
    result = kcenter_greedy(vectors, budget, candidates=mask, initial=centers if len(centers) else None,
                            device=device)
    scores = nearest_distance(vectors, candidates, np.concatenate([centers, result.picks]), device)
    sorter = np.argsort(candidates, kind="stable")
    scores[sorter[np.searchsorted(candidates, result.picks, sorter=sorter)]] = result.distances
    radius = result.radius if len(result.picks) else (float(scores.max()) if len(scores) else float("nan"))
    return GroupPick(result.picks, scores, radius)


def nearest_distance(vectors: np.ndarray, rows: np.ndarray, centers: np.ndarray, device: torch.device,
                     block: int = 4096) -> np.ndarray:
    """Cosine distance of each of ``rows`` to its nearest of ``centers`` (inf when there are none);
    blockwise: ``block`` x 16,384 similarities at a time."""
    out = np.full(len(rows), np.inf, dtype=np.float32)
    if len(rows) == 0 or len(centers) == 0:
        return out
    base = gather(vectors, np.asarray(centers, dtype=np.int64), device)
    with torch.inference_mode():
        for start, x in blocks(vectors, rows, device, block=block, copy=True):
            sims, _ = topk_cosine(x, base, 1)
            out[start:start + len(x)] = 1.0 - sims[:, 0].cpu().numpy()
    return out


def prototype_group(candidates: np.ndarray, labels: np.ndarray, dist: np.ndarray, budget: int, keep: str,
                    balanced: bool) -> GroupPick:
    """Per-cluster selection over store rows ``candidates`` (``labels``/``dist`` indexed by store row)."""
    picks, _ = select_per_cluster(candidates, labels, dist, budget, keep, balanced)
    return GroupPick(picks, dist[candidates].astype(np.float32))
