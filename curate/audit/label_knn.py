"""Label errors from embeddings alone: the neighbours' labels stand in for a model's out-of-sample predictions.

For item r, every neighbour that is labelled, is not r itself and has a finite similarity votes for
its label with weight ``max(similarity, 0)`` (only the ``k`` most similar such neighbours when ``k``
is given). Pseudo probabilities ``p = (votes + w * prior) / (total + w)``, where ``prior`` is the
label frequency over labelled items and ``w`` the row's mean vote weight (one average neighbour's
worth of smoothing, so no class is impossible). Rows without a positive vote are not judged (score
NaN, never flagged, suggested label -1). The rows then go through the same audit as model
predictions (:func:`curate.audit.labels.audit_blocks`), built block by block from the neighbour
arrays, so memory stays O(block_rows * classes).

The neighbour search is the caller's (``curate.index``, FAISS, ...): ``neighbour_ids`` [n, m]
(-1 = none) and ``neighbour_sims`` [n, m] (cosine similarity; -inf/NaN = none).
"""

from __future__ import annotations

import numpy as np

from curate.audit.labels import LabelAudit, LabelAuditError, audit_blocks, auto_block_rows, check_labels


def _check_neighbours(ids, sims) -> tuple[np.ndarray, np.ndarray]:
    ids, sims = np.asarray(ids), np.asarray(sims)
    if ids.ndim != 2 or sims.shape != ids.shape:
        raise LabelAuditError(
            f"neighbour_ids and neighbour_sims must be 2-D of one shape [items, k], got {ids.shape} and {sims.shape}"
        )
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise LabelAuditError(f"neighbour_ids must be integer item positions (-1 = none), got {ids.dtype}")
    if ids.size and not np.issubdtype(sims.dtype, np.floating):
        raise LabelAuditError(f"neighbour_sims must be floats, got {sims.dtype}")
    n = ids.shape[0]
    bad = (ids < -1) | (ids >= n)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise LabelAuditError(f"neighbour_ids[{row}, {col}] = {ids[row, col]} is not an item position (0..{n - 1})")
    return ids, sims


def neighbour_votes(
    ids: np.ndarray, sims: np.ndarray, rows: np.ndarray, labels: np.ndarray, num_classes: int, k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted label votes [len(rows), num_classes] of the neighbours of ``rows``, and voters per row."""
    ids = ids.astype(np.int64, copy=False)
    sims = sims.astype(np.float64)
    nbr_label = np.where(ids >= 0, labels[np.maximum(ids, 0)], -1)
    ok = (nbr_label >= 0) & (ids != rows[:, None]) & np.isfinite(sims)
    if k is not None and k < ids.shape[1]:
        rank = np.where(ok, sims, -np.inf)
        keep = np.zeros_like(ok)
        np.put_along_axis(keep, np.argpartition(-rank, k - 1, axis=1)[:, :k], True, axis=1)
        ok &= keep
    weight = np.where(ok, np.maximum(sims, 0.0), 0.0)
    local = np.broadcast_to(np.arange(rows.size)[:, None], ids.shape)
    flat = local[ok] * num_classes + nbr_label[ok]
    votes = np.bincount(flat, weights=weight[ok], minlength=rows.size * num_classes)
    return votes.reshape(rows.size, num_classes), ok.sum(axis=1)


def knn_label_quality(
    neighbour_ids,
    neighbour_sims,
    labels,
    *,
    num_classes: int | None = None,
    k: int | None = None,
    flag_by: str = "union",
    block_rows: int | None = None,
) -> LabelAudit:
    """Label audit from a kNN graph (see the module doc); ``num_classes`` defaults to ``max(labels) + 1``."""
    ids, sims = _check_neighbours(neighbour_ids, neighbour_sims)
    n = ids.shape[0]
    labels = check_labels(labels, n, num_classes)
    classes = int(num_classes if num_classes is not None else (labels.max() + 1 if n else 0))
    if classes < 2:
        raise LabelAuditError(f"a label audit needs at least 2 classes, got {classes}")
    if k is not None and k < 1:
        raise LabelAuditError(f"k must be at least 1, got {k}")
    lab = labels >= 0
    prior = np.bincount(labels[lab], minlength=classes).astype(np.float64)
    prior /= max(prior.sum(), 1.0)

    def pseudo(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        votes, voters = neighbour_votes(ids[rows], sims[rows], rows, labels, classes, k)
        total = votes.sum(axis=1, keepdims=True)
        smooth = total / np.maximum(voters, 1)[:, None]  # one average voter's weight
        probs = (votes + smooth * prior) / np.where(total > 0, total + smooth, 1.0)
        probs[total[:, 0] <= 0] = prior
        return probs, total[:, 0] > 0

    rows_per_block = block_rows or auto_block_rows(classes)
    judged = np.zeros(n, dtype=bool)
    for a in range(0, n, rows_per_block):
        judged[a : a + rows_per_block] = pseudo(np.arange(a, min(a + rows_per_block, n)))[1]
    return audit_blocks(
        n,
        classes,
        lambda a, b: pseudo(np.arange(a, b))[0],
        lambda rows: pseudo(np.asarray(rows))[0],
        np.where(judged, labels, -1),
        flag_by=flag_by,
        block_rows=rows_per_block,
        judged=judged,
    )
