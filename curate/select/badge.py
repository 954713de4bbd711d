"""BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings, without building them.

The gradient of the cross-entropy at the predicted label w.r.t. the last layer is
``g_i = (onehot(yhat_i) - p_i) ⊗ h_i`` (C·d numbers per item). Its inner products factorise:
``<g_i, g_j> = <q_i, q_j> · <h_i, h_j>`` with ``q = p - onehot(yhat)`` (the sign cancels), so

    ||g_i - g_j||² = |q_i|²|h_i|² + |q_j|²|h_j|² - 2 <q_i,q_j><h_i,h_j>

needs only the C-vector q and the d-vector h of each item. Seeding: the first pick is the
largest gradient norm (as in the reference code); each later pick is drawn with probability
proportional to the squared distance to the nearest pick so far. After every pick that
distance is updated blockwise (two mat-vecs per block): memory O(N (C + d)), never N·C·d or N².
"""

from __future__ import annotations

import numpy as np
import torch

from curate.device import resolve_device

BLOCK = 65536


def gradient_factors(probs: np.ndarray) -> np.ndarray:
    """``q = p - onehot(argmax p)`` per row (the class factor of the gradient embedding)."""
    q = np.array(probs, dtype=np.float32, copy=True)
    q[np.arange(len(q)), np.argmax(probs, axis=1)] -= 1.0
    return q


def _to(x: np.ndarray, dev: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)


def squared_distances(q: torch.Tensor, h: torch.Tensor, sq: torch.Tensor, at: int, lo: int, hi: int) -> torch.Tensor:
    """``||g_i - g_at||²`` for rows ``lo:hi`` from the factors alone (float64, clamped at 0)."""
    cross = (q[lo:hi] @ q[at]) * (h[lo:hi] @ h[at])
    return (sq[lo:hi] + sq[at] - 2.0 * cross.double()).clamp_min(0.0)


def _sample(d2: torch.Tensor, rng: np.random.Generator) -> int:
    """Index drawn with probability proportional to ``d2`` (float64 cumulative sum)."""
    cdf = torch.cumsum(d2, dim=0)
    total = float(cdf[-1].item())
    u = rng.random() * total
    at = int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype, device=cdf.device), right=True).item())
    return min(at, len(d2) - 1)


def badge(probs: np.ndarray, features: np.ndarray, candidates: np.ndarray, budget: int,
          rng: np.random.Generator, device: str | torch.device = "auto",
          block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` candidate rows by k-means++ on the (implicit) gradient embeddings.

    ``probs`` [N, C] and ``features`` [N, d] (penultimate features or embeddings) are aligned
    with ``candidates`` [N] (bool). Returns (rows in pick order, the squared distance each had
    to the earlier picks when picked; the first pick's is its squared gradient norm).
    """
    rows = np.flatnonzero(candidates)
    budget = int(min(budget, len(rows)))
    if budget <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    dev = resolve_device(device)
    q = _to(gradient_factors(probs[rows]), dev)
    h = _to(features[rows], dev)
    sq = ((q * q).sum(1) * (h * h).sum(1)).double()  # |g_i|^2
    d2 = torch.full((len(rows),), float("inf"), dtype=torch.float64, device=dev)
    picked = torch.zeros(len(rows), dtype=torch.bool, device=dev)
    picks = np.empty(budget, dtype=np.int64)
    scores = np.empty(budget, dtype=np.float64)
    at = int(torch.argmax(sq).item())
    scores[0] = float(sq[at].item())
    for k in range(budget):
        picks[k] = at
        picked[at] = True
        for lo in range(0, len(rows), block):
            hi = min(len(rows), lo + block)
            torch.minimum(d2[lo:hi], squared_distances(q, h, sq, at, lo, hi), out=d2[lo:hi])
        d2[picked] = 0.0
        if k + 1 == budget:
            break
        if float(d2.sum().item()) > 0:
            at = _sample(d2, rng)
        else:  # every remaining candidate coincides with a pick: draw uniformly among the rest
            rest = torch.nonzero(~picked).flatten().cpu().numpy()
            at = int(rest[rng.integers(len(rest))])
        scores[k + 1] = float(d2[at].item())
    return rows[picks], scores
