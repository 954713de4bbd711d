"""Which picks would be redundant: dedup groups when the dedup stage ran, else a pool-relative cosine.

A fixed cosine (0.9) misses near-copies in a space where copies sit at 0.8 and passes nothing
in one where distinct items sit at 0.95. Two sources, best first:

1. ``dedup_groups``: the latest dedup decision table groups a removed item with the item it
   duplicates (``duplicate_of``). A batch never holds two members of one group, nor a member
   of a group that holds a labeled item (the labeled item may itself be a removed copy).
2. ``relative_threshold``: without groups, a cosine derived from the pool itself: items closer
   than ``ratio`` × the median distance to the ``k``-th nearest neighbour (over a seeded sample)
   count as near-duplicates. The k-th neighbour (not the first) keeps a pool full of copies
   from calling its copies "typical neighbours"; k = 10, one per 100 items in smaller pools
   (the 10th neighbour of a 20-item pool is far away).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from curate.device import resolve_device
from curate.vectors import blocks, gather

AUTO = "auto"


def dedup_groups(table: pa.Table) -> np.ndarray:
    """Group index of every row of a dedup decision table (-1: in no group). An item and everything
    whose ``duplicate_of`` is its id share a group; references to other datasets (``name::id``) and
    unknown ids are ignored."""
    ids = table.column("id").to_pylist()
    n = len(ids)
    groups = np.full(n, -1, dtype=np.int64)
    if "duplicate_of" not in table.column_names:
        return groups
    index = {i: r for r, i in enumerate(ids)}
    parent = np.arange(n)

    def root(r: int) -> int:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = int(parent[r])
        return r

    linked = np.zeros(n, dtype=bool)
    for r, other in enumerate(table.column("duplicate_of").to_pylist()):
        k = index.get(other) if other is not None else None
        if k is None or k == r:
            continue
        parent[root(r)] = root(k)
        linked[r] = linked[k] = True
    for r in np.flatnonzero(linked):
        groups[r] = root(int(r))
    return groups


def blocked_by_labeled(groups: np.ndarray | None, labeled: np.ndarray) -> np.ndarray:
    """Rows whose dedup group holds a labeled item (bool, the labeled rows included)."""
    if groups is None:
        return np.zeros(len(labeled), dtype=bool)
    taken = np.unique(groups[labeled & (groups >= 0)])
    return (groups >= 0) & np.isin(groups, taken)


def relative_threshold(features: np.ndarray, members: np.ndarray, seed: int, k: int | None = None, ratio: float = 0.5,
                       sample: int = 1024, device: str | torch.device = "auto", block: int = 8192) -> float:
    """A cosine above which two pool items count as near-duplicates: ``1 - ratio × median d_k``,
    ``d_k`` the cosine distance of a sampled member to its ``k``-th nearest other member
    (blockwise over the members; sample × block at a time)."""
    rows = np.flatnonzero(members)
    if len(rows) < 2:
        return 1.0
    k = int(min(k if k is not None else np.clip(len(rows) // 100, 1, 10), len(rows) - 1))
    dev = resolve_device(device)
    probe = np.sort(np.random.default_rng(seed).choice(rows, size=min(sample, len(rows)), replace=False))
    q = gather(features, probe, dev)
    top = torch.full((len(probe), k + 1), -2.0, device=dev)
    for _, xb in blocks(features, rows, dev, block=block, copy=True):
        sims = q @ xb.T
        top = torch.cat([top, sims], dim=1).topk(k + 1, dim=1).values
    kth = 1.0 - top[:, k].double().cpu().numpy()  # column 0 is (about) the item itself
    return float(1.0 - ratio * np.median(kth))


def resolve_threshold(value: float | str | None, features: np.ndarray | None, members: np.ndarray, seed: int,
                      device: str | torch.device = "auto") -> float | None:
    """A fixed cosine as given, None (no check) as given, or ``auto``: :func:`relative_threshold`."""
    if value != AUTO:
        return value
    if features is None:
        return None
    return relative_threshold(features, members, seed, device=device)
