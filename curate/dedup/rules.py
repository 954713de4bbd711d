"""The duplicate rule, made explicit: which items does a threshold remove?

Given each item's best higher-priority neighbour (similarity and row):

- ``chain=True`` (the SemDeDup reference): an item is removed when its similarity to ANY
  higher-priority item exceeds the threshold, even if that item was itself removed. In a
  chain a~b~c with a and c unrelated, c is removed by b although b is gone: unique data is lost.
- ``chain=False`` (our default): an item is removed only when it duplicates a higher-priority
  item that is KEPT. Items are decided in priority order; when the best neighbour was
  removed, the item is compared exactly with the kept higher-priority items of its
  neighbourhood (own cluster, adjacent cluster across a boundary). Every removed item then
  has a kept copy above the threshold (same duplicate recall), and no more is removed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from curate.dedup.scoring import Neighbours
from curate.errors import CurateError


def check_thresholds(thresholds: tuple[float, ...]) -> None:
    """Cosine thresholds (``--threshold``, semantic and knn): at least one, each in [-1, 1]."""
    if not thresholds or not all(np.isfinite(t) and -1.0 <= t <= 1.0 for t in thresholds):
        raise CurateError(f"--threshold must be cosine similarities in [-1, 1], not {', '.join(map(str, thresholds))}")


def decide(nb: Neighbours, ranks: np.ndarray, threshold: float, chain: bool,
           neighbourhood: Callable[[int], np.ndarray], similarity: Callable[[int, np.ndarray], np.ndarray],
           forced: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(removed, duplicate_of)`` for every store row; ``duplicate_of`` is -1 when kept.

    ``forced`` marks rows removed beforehand (e.g. duplicates of another workspace): they
    never count as kept copies.
    """
    n = len(ranks)
    removed = np.zeros(n, dtype=bool) if forced is None else forced.copy()
    dup_of = np.full(n, -1, dtype=np.int64)
    candidates = np.flatnonzero((nb.max_sim > threshold) & ~removed)
    if chain:
        removed[candidates] = True
        dup_of[candidates] = nb.argmax[candidates]
        return removed, dup_of
    for i in candidates[np.argsort(ranks[candidates], kind="stable")]:
        j = nb.argmax[i]
        if not removed[j]:
            removed[i], dup_of[i] = True, j
            continue
        pool = neighbourhood(int(i))
        pool = pool[(ranks[pool] < ranks[i]) & ~removed[pool]]
        if len(pool):
            sims = similarity(int(i), pool)
            best = int(np.argmax(sims))
            if sims[best] > threshold:
                removed[i], dup_of[i] = True, pool[best]
    return removed, dup_of


def group_roots(removed: np.ndarray, dup_of: np.ndarray) -> np.ndarray:
    """The kept item each row's duplicate chain ends at (itself when kept)."""
    root = np.arange(len(removed))
    linked = removed & (dup_of >= 0)  # rows removed from outside (another workspace) stay alone
    root[linked] = dup_of[linked]
    for _ in range(64):  # chains under chain=True; path halving converges fast
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root
