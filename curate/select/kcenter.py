"""k-center greedy (the coreset of Sener & Savarese) on the fused ``kcenter_update`` kernel.

Each pick is the candidate farthest (cosine distance) from every center so far; one pass of
the kernel both folds the new center into the running distances and finds the next pick, so
``budget`` picks cost ``budget`` reads of the pool and nothing grows with picks x pool.

Memory: the candidate rows are gathered once onto the device (fp16 on CUDA, fp32 on CPU:
1M x 512 is 1 GB / 2 GB) plus one float32 distance per candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.device import resolve_device
from curate.kernels.dispatch import Impl, kcenter_update


@dataclass(frozen=True)
class KCenterResult:
    picks: np.ndarray  # rows of ``vectors``, in pick order
    distances: np.ndarray  # each pick's distance to its nearest earlier center when picked (inf: first pick)
    radius: float  # covering radius afterwards: max over candidates of the distance to the nearest center


def _load(vectors: np.ndarray, rows: np.ndarray, device: torch.device, block: int = 65536) -> torch.Tensor:
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    out = torch.empty((len(rows), vectors.shape[1]), dtype=dtype, device=device)
    for lo in range(0, len(rows), block):
        part = np.asarray(vectors[rows[lo:lo + block]])
        out[lo:lo + len(part)] = torch.from_numpy(part).to(device=device, dtype=dtype)
    return out


def _distance_to_set(x: torch.Tensor, centers: torch.Tensor, block: int = 16384, chunk: int = 4096) -> torch.Tensor:
    """min over ``centers`` of ``1 - x @ center``, blockwise (never n x m at once)."""
    mind = torch.full((x.shape[0],), float("inf"), dtype=torch.float32, device=x.device)
    for lo in range(0, x.shape[0], block):
        xb = x[lo:lo + block].float()
        for c0 in range(0, centers.shape[0], chunk):
            sims = xb @ centers[c0:c0 + chunk].float().T
            torch.minimum(mind[lo:lo + block], 1.0 - sims.max(dim=1).values, out=mind[lo:lo + block])
    return mind


def first_pick(x: torch.Tensor) -> int:
    """Without initial centers, start from the candidate farthest from the pool's mean direction."""
    mean = x.float().mean(dim=0)
    mean = mean / mean.norm().clamp_min(1e-12)
    return int(torch.argmin(x.float() @ mean).item())


def kcenter_greedy(vectors: np.ndarray, budget: int, candidates: np.ndarray | None = None,
                   initial: np.ndarray | None = None, device: str | torch.device = "auto",
                   impl: Impl = "auto") -> KCenterResult:
    """Pick ``budget`` rows of ``vectors`` (L2-normalised) by k-center greedy.

    ``candidates``: boolean mask of rows that may be picked (default all); only they are covered.
    ``initial``: row indices already chosen (labeled or kept items), used as centers from the start;
    they need not be candidates. Ties go to the smallest row. Deterministic.
    """
    n = vectors.shape[0]
    rows = np.flatnonzero(candidates) if candidates is not None else np.arange(n)
    budget = int(min(budget, len(rows)))
    if budget <= 0:
        return KCenterResult(np.empty(0, np.int64), np.empty(0, np.float32), float("nan"))
    dev = resolve_device(device)
    x = _load(vectors, rows, dev)
    init = np.asarray(initial if initial is not None else [], dtype=np.int64)
    picks = np.empty(budget, dtype=np.int64)
    dists = np.empty(budget, dtype=np.float32)
    if len(init):
        mind = _distance_to_set(x, _load(vectors, init, dev))
        at = int(torch.argmax(mind).item())
        dists[0] = float(mind[at].item())
    else:
        mind = torch.full((len(rows),), float("inf"), dtype=torch.float32, device=dev)
        at, dists[0] = first_pick(x), float("inf")
    for k in range(budget):
        picks[k] = at
        mind, nxt, value = kcenter_update(x, x[at], mind, impl=impl)
        mind[at] = float("-inf")  # never picked twice, even when duplicates sit at distance 0
        if k + 1 < budget:
            if nxt == at:  # the kernel saw the pick's own stale distance: re-read the max
                nxt = int(torch.argmax(mind).item())
                value = float(mind[nxt].item())
            at, dists[k + 1] = nxt, value
    mind[torch.as_tensor(picks, device=dev)] = 0.0
    return KCenterResult(rows[picks], dists, float(mind.max().item()))
