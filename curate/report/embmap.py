"""The 2-D map of the embedding store: a seeded sample projected onto its top two principal axes.

Each point is coloured by the sample's final fate (kept, exact / semantic duplicate, pruned,
quarantined) from :func:`curate.decisions.upstream`. Removed items are rare, so the sample
takes every removed item first (up to half of ``max_points``) and fills the rest with kept
ones; the legend counts what is drawn. Work is bounded by ``max_points`` x dim (PCA through
the dim x dim covariance), whatever the store size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.decisions import Upstream
from curate.embed.store import StoredEmbeddings
from curate.vectors import gather_numpy

FATES = ("kept", "exact-duplicate", "semantic-duplicate", "pruned", "quarantined")
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
        return "exact-duplicate" if code == "exact-duplicate" else "semantic-duplicate"
    return "pruned"


@dataclass(frozen=True)
class EmbeddingMap:
    xy: np.ndarray  # float32 [n, 2]
    fate: np.ndarray  # int8 [n], index into FATES
    manifest_rows: np.ndarray  # int64 [n]
    ids: list[str]  # sample id of each point
    total: int  # valid store rows
    explained: tuple[float, float]  # variance ratio of the two axes


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


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Projection of ``x`` [n, d] on its two main axes (signs fixed for determinism)."""
    x = x - x.mean(axis=0, keepdims=True)
    cov = (x.T @ x) / max(len(x) - 1, 1)
    values, vectors = np.linalg.eigh(cov.astype(np.float64))
    order = np.argsort(values)[::-1][:2]
    axes = vectors[:, order]
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    axes *= np.where(axes[np.abs(axes).argmax(axis=0), np.arange(2)] < 0, -1.0, 1.0)
    total = float(values.sum()) or 1.0
    ratios = tuple(float(values[o]) / total for o in order) + (0.0,) * (2 - len(order))
    return (x @ axes).astype(np.float32), (ratios[0], ratios[1])


def embedding_map(store: StoredEmbeddings, up: Upstream, max_points: int, seed: int) -> EmbeddingMap:
    """Sample, project and colour the store rows."""
    row_fate = fates(up)
    store_fate = row_fate[store.manifest_rows]
    rows = sample_for_map(store_fate, store.valid, max_points, seed)
    xy, explained = pca_2d(gather_numpy(store.vectors, rows)) if len(rows) else (np.zeros((0, 2)), (0.0, 0.0))
    return EmbeddingMap(xy, store_fate[rows], store.manifest_rows[rows].astype(np.int64),
                        [store.ids[r] for r in rows.tolist()], int(store.valid.sum()), explained)
