"""The 2-D map of the embedding store: a seeded sample laid out so that neighbours stay neighbours.

Each point is coloured by the sample's final fate (kept, exact / semantic duplicate, pruned,
quarantined) from :func:`curate.decisions.upstream`. Removed items are rare, so the sample
takes every removed item first (up to half of ``max_points``) and fills the rest with kept
ones; the legend counts what is drawn. The layout (:mod:`curate.report.layout`) keeps each
point's nearest neighbours near it, where PCA would pile clusters that differ along minor axes
on top of each other. Work is bounded by ``max_points`` (kNN in row blocks, then a force layout
over ``max_points`` x 15 edges), whatever the store size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.decisions import Upstream
from curate.embed.store import StoredEmbeddings
from curate.report.layout import LayoutConfig, neighbour_layout
from curate.vectors import gather

# near-duplicate: removed by dedup for any reason but identical bytes (semantic-, near-duplicate)
FATES = ("kept", "exact-duplicate", "near-duplicate", "pruned", "quarantined")
FATE_COLORS = ("#4c78a8", "#f58518", "#e45756", "#b279a2", "#9d9d9d")


def fates(up: Upstream) -> np.ndarray:
    """Index into :data:`FATES` for every manifest row, from the upstream reasons."""
    out = np.zeros(len(up.kept), dtype=np.int8)
    for i, reason in enumerate(up.reasons):
        if reason is not None:
            out[i] = FATES.index(fate_of(reason))
    return out


def fate_of(reason: str) -> str:
    """``"dedup: exact-duplicate"`` -> exact-duplicate, ``"prune: ..."`` -> pruned, ..."""
    stage, _, detail = reason.partition(": ")
    code = detail.split(":", 1)[0]
    if stage == "quarantined" or code == "quarantined":
        return "quarantined"
    if stage == "dedup":
        return "exact-duplicate" if code == "exact-duplicate" else "near-duplicate"
    return "pruned"


@dataclass(frozen=True)
class EmbeddingMap:
    xy: np.ndarray  # float32 [n, 2]
    fate: np.ndarray  # int8 [n], index into FATES
    manifest_rows: np.ndarray  # int64 [n]
    ids: list[str]  # sample id of each point
    total: int  # valid store rows


def sample_for_map(store_fate: np.ndarray, valid: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Sorted store rows to draw: removed ones first (up to half the budget), then kept ones."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(valid)
    removed, kept = rows[store_fate[rows] != 0], rows[store_fate[rows] == 0]
    take = min(len(removed), max(max_points // 2, max_points - len(kept)))
    pick_removed = rng.choice(removed, size=take, replace=False) if take < len(removed) else removed
    room = max_points - take
    pick_kept = rng.choice(kept, size=room, replace=False) if room < len(kept) else kept
    return np.sort(np.concatenate([pick_removed, pick_kept]).astype(np.int64))


def embedding_map(store: StoredEmbeddings, up: Upstream, max_points: int, seed: int) -> EmbeddingMap:
    """Sample, project and colour the store rows."""
    row_fate = fates(up)
    store_fate = row_fate[store.manifest_rows]
    rows = sample_for_map(store_fate, store.valid, max_points, seed)
    xy = neighbour_layout(gather(store.vectors, rows), LayoutConfig(seed=seed))
    return EmbeddingMap(xy, store_fate[rows], store.manifest_rows[rows].astype(np.int64),
                        store.ids.take(rows), int(store.valid.sum()))
