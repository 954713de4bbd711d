"""The ``outlier`` check, shared by images and texts: items far from their nearest neighbours in embedding space.

Score convention (as for every audit check): a float in [0, 1], higher = more likely the defect;
NaN = not judged (no neighbours). The flag is ``score >= threshold`` (a setting), so changing the
threshold never needs the embeddings again.

Rule: the kNN distance of an item is ``1 - mean(cosine similarity to its k nearest neighbours)``
(the item itself excluded). Distances are put on a robust scale taken from the dataset itself:
``z = (d - median) / spread`` with ``spread = (q90 - q50) / 1.2816`` (the upper half's width, which
is where outliers live and which a few outliers cannot move; 1.2816 is the 90th percentile of a
normal), and ``score = clip(z / 6, 0, 1)``. The default threshold 0.5 therefore flags items three
robust standard deviations farther from their neighbours than the typical item: a fixed share is
never flagged, so a clean dataset can have no outlier at all.
"""

from __future__ import annotations

import numpy as np

Z_FULL = 6.0  # a robust z of 6 gives score 1; the default threshold 0.5 is z = 3
_Q90 = 1.2815516  # the 90th percentile of a standard normal


def knn_distance(knn_sims: np.ndarray) -> np.ndarray:
    """``1 - mean`` of each row's finite similarities (``-inf``/NaN mark missing neighbours); NaN for none."""
    sims = np.asarray(knn_sims, dtype=np.float64)
    if sims.ndim == 1:
        sims = sims[:, None]
    ok = np.isfinite(sims)
    count = ok.sum(axis=1)
    total = np.where(ok, sims, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, 1.0 - total / np.maximum(count, 1), np.nan)


def outlier_scores(knn_sims: np.ndarray) -> np.ndarray:
    """Outlier score in [0, 1] per row of ``knn_sims`` ``[n, k]`` (cosine similarities to the k nearest
    neighbours, the item itself excluded; as ``curate.index.ann.search`` returns them minus the self match).

    Works for image and text embeddings alike: only the dataset's own distance distribution is used.
    """
    d = knn_distance(knn_sims)
    out = np.full(d.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(d)
    if ok.sum() < 3:
        return out
    q50, q90 = np.quantile(d[ok], [0.5, 0.9])
    spread = (q90 - q50) / _Q90
    if spread <= 1e-9:  # more than 40% tie at the median: fall back to the mean absolute deviation above it
        above = d[ok][d[ok] > q50]
        spread = float(np.mean(above - q50)) if above.size else 0.0
    spread = max(spread, 1e-6)
    z = (d[ok] - q50) / spread
    out[ok] = np.clip(z / Z_FULL, 0.0, 1.0)
    return out


def knn_sims(vectors: np.ndarray, k: int = 10, block: int = 4096) -> np.ndarray:
    """Brute-force cosine kNN similarities ``[n, k]`` excluding each item itself (small sets, tests and
    benchmarks; a workspace uses its ANN index). Rows are L2-normalised here."""
    x = np.asarray(vectors, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = x.shape[0]
    k_eff = min(k, max(n - 1, 0))
    out = np.full((n, k), -np.inf, dtype=np.float32)
    if k_eff == 0:
        return out
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = x[start:stop] @ x.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not its own neighbour
        part = np.partition(sims, n - k_eff, axis=1)[:, n - k_eff:]
        out[start:stop, :k_eff] = -np.sort(-part, axis=1)
    return out
