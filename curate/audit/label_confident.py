"""Confident learning over row blocks: class thresholds, the calibrated confident joint, prune by noise rate.

Follows Northcutt et al. (2021) and cleanlab's ``find_label_issues`` default, written for arrays that
do not fit in memory twice:

- threshold of class j = the mean probability of j over the items labelled j (2 when no item is, so
  nothing is counted into it; at least 2e-6);
- confident joint ``C[i, j]``: items labelled i whose probability of j reaches j's threshold (less
  1e-6); with several such classes the row's argmax; every diagonal at least 1;
- calibrated: each row scaled to the number of items labelled i, rounded keeping row totals, and a
  zero diagonal raised to 1 at the expense of that column's off-diagonal counts;
- prune by noise rate: for each off-diagonal cell (i, j), the ``C[i, j]`` items labelled i with the
  largest ``p_j - p_i`` are candidates (every item tied at the cut is), and the candidates the model
  agrees with (``p_i + 1e-6 >= max`` of the other classes) are dropped.

The joint needs two passes over the rows (thresholds, then counts); the pruning a third, one given
class at a time, which reads that class's rows in chunks of at most ``block_rows`` and keeps only the
largest margins per cell between the chunks. Results do not depend on ``block_rows``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

EPS = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON
ABSENT = 2.0  # threshold of a class no item is labelled with

Take = Callable[[np.ndarray], np.ndarray]  # rows (item positions) -> their probabilities


def class_thresholds(labels: np.ndarray, self_conf: np.ndarray, k: int) -> np.ndarray:
    """Mean self-confidence per class over the labelled items (``labels >= 0``)."""
    lab = labels >= 0
    counts = np.bincount(labels[lab], minlength=k)
    sums = np.bincount(labels[lab], weights=self_conf[lab], minlength=k)
    thr = np.full(k, ABSENT)
    np.divide(sums, counts, out=thr, where=counts > 0)
    return np.maximum(thr, 2 * EPS)


def joint_block(probs: np.ndarray, labels: np.ndarray, argmax: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Confident-joint counts (flat ``i * k + j``) of one block of rows."""
    k = probs.shape[1]
    confident = probs >= (thr - EPS).astype(probs.dtype, copy=False)
    many = confident.sum(axis=1)
    guess = np.where(many > 1, argmax, confident.argmax(axis=1))
    keep = (many > 0) & (labels >= 0)
    return np.bincount(labels[keep] * k + guess[keep], minlength=k * k)


def round_rows(x: np.ndarray) -> np.ndarray:
    """Round each row to integers keeping its (rounded) total: largest remainders move first."""
    ints = np.round(x)
    short = np.round(x.sum(axis=1)) - ints.sum(axis=1)
    for row in np.flatnonzero(short):
        rest = x[row] - ints[row]
        step = 1 if short[row] > 0 else -1
        order = np.argsort(rest, kind="stable")
        order = order[::-1] if step > 0 else order
        ints[row, order[: int(abs(short[row]))]] += step
    return ints.astype(np.int64)


def calibrate(joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Rows scaled to the label counts and rounded; a zero diagonal raised to 1 (cleanlab's order)."""
    joint = joint.astype(np.float64)
    np.fill_diagonal(joint, np.maximum(np.diagonal(joint), 1))
    scaled = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-100) * label_counts[:, None]
    cal = round_rows(scaled)
    # keep at least one item per class, taken evenly from the column's other non-zero counts
    cols = cal.T.astype(np.float64)  # rows: estimated true class, columns: given label
    diag = np.diagonal(cols).copy()
    raised = np.maximum(diag, 1)
    if np.any(raised != diag):
        per = np.maximum(np.count_nonzero(cols, axis=0) - 1.0, 1.0)
        cols = np.maximum(cols - (raised - diag) / per, 0)
        np.fill_diagonal(cols, raised)
        cal = round_rows(cols).T
    return cal


def prune_by_noise_rate(
    take: Take, labels: np.ndarray, prune: np.ndarray, agrees: np.ndarray, block_rows: int
) -> np.ndarray:
    """Items picked by prune-by-noise-rate (``prune[i, j]`` = how many labelled i to take for j)."""
    n, k = labels.shape[0], prune.shape[0]
    issue = np.zeros(n, dtype=bool)
    lab = labels >= 0
    order = np.flatnonzero(lab)[np.argsort(labels[lab], kind="stable")]
    ends = np.cumsum(np.bincount(labels[lab], minlength=k))
    starts = ends - np.bincount(labels[lab], minlength=k)
    for i in range(k):
        rows = order[starts[i] : ends[i]]
        need = prune[i].copy()
        need[i] = 0
        cols = np.flatnonzero(need > 0)
        if rows.size <= 1 or cols.size == 0:
            continue
        need = np.minimum(need[cols], rows.size)
        chunks = [rows[a : a + block_rows] for a in range(0, rows.size, block_rows)]
        top, margins = None, None
        for chunk in chunks:
            p = take(chunk)
            margins = p[:, cols].astype(np.float64) - p[:, i : i + 1].astype(np.float64)
            top = margins if top is None else np.concatenate([top, margins])
            m = int(need.max())
            if top.shape[0] > m:
                top = -np.partition(-top, m - 1, axis=0)[:m]
        cut = -np.sort(-top, axis=0)[need - 1, np.arange(cols.size)]
        for chunk in chunks:
            if len(chunks) > 1:
                p = take(chunk)
                margins = p[:, cols].astype(np.float64) - p[:, i : i + 1].astype(np.float64)
            issue[chunk] = (margins >= cut).any(axis=1)
    return issue & ~agrees
