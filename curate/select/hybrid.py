"""The default selector: uncertainty × diversity, dedup-aware, with optional class quotas.

1. Preselect the ``preselect × budget`` most uncertain candidates (margin by default).
2. Among them, pick greedily the item maximising ``u_i × d_i``: its uncertainty times its
   cosine distance to the nearest labeled-or-picked item (an uncertainty-weighted k-center).
   The distances are updated after each pick with one mat-vec over the preselection.
3. Dedup-aware: an item whose cosine similarity to a labeled item or to an earlier pick
   exceeds ``dup_threshold`` is never picked (the same update finds them; the labeled set is
   scanned blockwise once). Quotas cap the picks per predicted class.
4. If the preselection runs dry (duplicates, quotas), the next most uncertain tranche is
   added and the loop goes on, with the picks so far acting as labeled items.
5. Dedup groups (``redundancy.dedup_groups``, when the dedup stage ran): never two members of one
   group in a batch; members of a labeled item's group are no candidates (the caller drops them).
6. Density (``density`` > 0): the weight is multiplied by the item's typicality in the pool
   (``typiclust.density``, scaled to max 1 over the tranche) to that power, so k-center's pull
   towards far-away items does not land on noisy outliers and lone corrupted copies.
7. Low-budget regime: while the labeled set is small (fewer than ``typical_per_class`` labels
   per class, 3 by default), a model's uncertainty is mostly noise and typical examples teach
   more (Hacohen et al. 2022), so the batch is TypiClust's own (``typiclust.py``, same rng),
   filtered by the same dedup/quota rules (``accept``) and topped up by steps 1-4 if the filter
   removed any. Class-blind by default: ordering clusters by *predicted* class (``class_aware``)
   follows a weak model's mistakes: one round later it scored 1-7 accuracy points lower on 5 of
   the scenario suite's 7 pools (tuning seeds, ``benchmarks/README.md``); rare classes come from
   the uncertainty part, which starts after one warm-up round when 20 labels are given for 10
   classes. A hand-over by the model's confidence (mean max-probability) was tried and lost: a
   probe fit to few labels is confident where it is wrong (0.81 at 32% accuracy on the text task).
   Without predictions (no model yet) every batch is this cold start, topped up by
   typicality-weighted k-center (uncertainty 1 for every item).

Cost: budget × preselect × budget × d for the greedy loop (memory O(preselect × budget × d));
for batches above ~50k, ``cluster-margin`` is the cheaper tool.
"""

from __future__ import annotations

import numpy as np
import torch

from curate.device import resolve_device
from curate.vectors import blocks, gather


def max_similarity(x: np.ndarray, rows: np.ndarray, ref_rows: np.ndarray, device: str | torch.device = "auto",
                   block: int = 16384, chunk: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``rows``: the max cosine to any of ``ref_rows`` (unit rows of ``x``) and which
    ref row attains it (-inf / -1 when ``ref_rows`` is empty). Blockwise: block × chunk at a time."""
    dev = resolve_device(device)
    best = np.full(len(rows), -np.inf, dtype=np.float32)
    where = np.full(len(rows), -1, dtype=np.int64)
    if len(rows) == 0 or len(ref_rows) == 0:
        return best, where
    for r0, ref in blocks(x, ref_rows, dev, block=chunk, copy=True):
        for lo, xb in blocks(x, rows, dev, block=block, copy=True):
            s, i = (xb @ ref.T).max(dim=1)
            s, i = s.cpu().numpy(), i.cpu().numpy()
            better = s > best[lo:lo + len(s)]
            best[lo:lo + len(s)][better] = s[better]
            where[lo:lo + len(s)][better] = ref_rows[r0 + i[better]]
    return best, where


def quota_array(classes: np.ndarray, quota: dict[int, int] | int | None) -> np.ndarray | None:
    """Max picks per class index (int64, large where unlimited), or None without quotas."""
    if quota is None:
        return None
    n_cls = int(max(classes.max(initial=-1) + 1, max(quota, default=-1) + 1 if isinstance(quota, dict) else 0))
    if isinstance(quota, int):
        return np.full(n_cls, quota, dtype=np.int64)
    caps = np.full(n_cls, np.iinfo(np.int64).max, dtype=np.int64)
    for c, n in quota.items():
        caps[int(c)] = int(n)
    return caps


def accept(features: np.ndarray, order: np.ndarray, labeled: np.ndarray, budget: int,
           dup_threshold: float | None, classes: np.ndarray | None = None,
           quota: dict[int, int] | int | None = None, device: str | torch.device = "auto",
           groups: np.ndarray | None = None) -> np.ndarray:
    """Positions in ``order`` kept by walking it: skip near-duplicates of labeled items or of earlier
    accepted ones, a second member of a dedup group (``groups``, -1: none), and classes whose quota
    is full. ``order`` is short (a batch), so the pairwise check within it is small; the labeled
    set is scanned blockwise."""
    dev = resolve_device(device)
    caps = quota_array(classes, quota) if quota is not None else None
    taken = np.zeros(len(caps), dtype=np.int64) if caps is not None else None
    ok = np.ones(len(order), dtype=bool)
    if dup_threshold is not None:
        ok &= max_similarity(features, order, np.flatnonzero(labeled), dev)[0] <= dup_threshold
    x = gather(features, order, dev)
    kept: list[int] = []
    used: set[int] = set()
    for i in range(len(order)):
        if len(kept) == budget:
            break
        if not ok[i]:
            continue
        group = int(groups[order[i]]) if groups is not None else -1
        if group >= 0 and group in used:
            continue
        if dup_threshold is not None and kept and float((x[kept] @ x[i]).max()) > dup_threshold:
            continue
        if caps is not None:
            c = int(classes[order[i]])
            if taken[c] >= caps[c]:
                continue
            taken[c] += 1
        if group >= 0:
            used.add(group)
        kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def hybrid(features: np.ndarray, uncertainty: np.ndarray, candidates: np.ndarray, labeled: np.ndarray,
           budget: int, preselect: float = 10.0, dup_threshold: float | None = 0.9,
           classes: np.ndarray | None = None, quota: dict[int, int] | int | None = None,
           device: str | torch.device = "auto", power: float = 1.0, groups: np.ndarray | None = None,
           density: float = 0.0, pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pick up to ``budget`` candidate rows; ``features`` [N, d] unit rows, ``uncertainty`` [N]
    (higher = more uncertain), ``classes`` [N] predicted class (needed with ``quota``), ``groups``
    [N] dedup group (-1: none), ``density`` the power of the typicality weight (0: none) measured
    within ``pool`` (bool [N], default candidates | labeled).
    Returns (rows in pick order, ``u^power × ρ^density × d`` of each pick when picked)."""
    dev = resolve_device(device)
    caps = quota_array(classes, quota) if quota is not None else None
    taken = np.zeros(len(caps), dtype=np.int64) if caps is not None else None
    order = np.flatnonzero(candidates)
    order = order[np.argsort(-uncertainty[order], kind="stable")]
    budget = int(min(budget, len(order)))
    labeled_rows = np.flatnonzero(labeled)
    limit = 1.0 - dup_threshold if dup_threshold is not None else -1.0
    picks: list[int] = []
    scores: list[float] = []
    used: set[int] = set()  # dedup groups picked from
    start = 0
    tranche = max(budget, int(np.ceil(preselect * budget)))
    while len(picks) < budget and start < len(order):
        rows = order[start:start + tranche]
        start += len(rows)
        x = gather(features, rows, dev)
        ref = np.concatenate([labeled_rows, np.asarray(picks, dtype=np.int64)])
        sim, _ = max_similarity(features, rows, ref, dev)
        mind = torch.from_numpy(np.minimum(1.0 - sim.astype(np.float64), 2.0)).to(dev)
        w = np.power(uncertainty[rows].astype(np.float64), power) + 1e-9
        if density:
            from curate.select.typiclust import density as typicality

            rho = typicality(features, rows, pool if pool is not None else candidates | labeled, device=dev)
            w = w * np.power(rho / rho.max(), density)
        weight = torch.from_numpy(w).to(dev)
        alive = mind > limit
        if groups is not None:
            alive &= ~torch.from_numpy(np.isin(groups[rows], list(used)) & (groups[rows] >= 0)).to(dev)
        if caps is not None:
            full = np.flatnonzero(taken >= caps)
            alive &= ~torch.from_numpy(np.isin(classes[rows], full)).to(dev)
        while len(picks) < budget and bool(alive.any()):
            value = torch.where(alive, weight * mind, torch.tensor(-1.0, dtype=torch.float64, device=dev))
            at = int(torch.argmax(value).item())
            picks.append(int(rows[at]))
            scores.append(float(value[at].item()))
            d = (1.0 - x @ x[at]).double()
            torch.minimum(mind, d, out=mind)
            alive &= mind > limit
            alive[at] = False
            if groups is not None and groups[rows[at]] >= 0:
                used.add(int(groups[rows[at]]))
                alive &= ~torch.from_numpy(groups[rows] == groups[rows[at]]).to(dev)
            if caps is not None:
                c = int(classes[rows[at]])
                taken[c] += 1
                if taken[c] >= caps[c]:
                    alive &= ~torch.from_numpy(classes[rows] == c).to(dev)
        tranche = max(tranche, budget - len(picks))
    return np.asarray(picks, dtype=np.int64), np.asarray(scores, dtype=np.float64)
