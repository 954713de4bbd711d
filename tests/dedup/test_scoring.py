"""Within-cluster + across-boundary scoring against a brute-force reading of the rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate.dedup.scoring import Neighbours, merge_max, within_clusters


def brute(x: np.ndarray, labels: np.ndarray, ranks: np.ndarray, links: tuple[np.ndarray, np.ndarray]):
    """Per row: best similarity to a higher-ranked row of its own cluster, of a cluster it is
    linked to, or of a row linked into its cluster (float64, full matrix: tests only)."""
    n = len(x)
    sims = x.astype(np.float64) @ x.astype(np.float64).T
    allowed = labels[:, None] == labels[None, :]
    for row, target in zip(*links):
        allowed[row, labels == target] = True  # the row sees the target cluster ...
        allowed[labels == target, row] = True  # ... and the target cluster sees the row
    allowed &= ranks[None, :] < ranks[:, None]
    sims = np.where(allowed, sims, -np.inf)
    arg = sims.argmax(axis=1)
    best = sims[np.arange(n), arg]
    return best, np.where(np.isfinite(best), arg, -1)


def data(seed: int, n: int = 300, d: int = 16, k: int = 7):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[1::3] = x[0::3][: len(x[1::3])] + 0.1 * rng.standard_normal((len(x[1::3]), d))  # near-copies
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = rng.integers(0, k, n)
    labels[1::6] = labels[0::6][: len(labels[1::6])]  # half of the near-copies share the cluster
    ranks = rng.permutation(n)
    rows = rng.choice(n, 40, replace=False)
    links = (np.repeat(rows, 2), (np.repeat(labels[rows], 2) + np.tile([1, 2], 40)) % k)  # 2 other clusters each
    members = np.argsort(labels, kind="stable")
    offsets = np.searchsorted(labels[members], np.arange(k + 1))
    return x, labels, ranks, links, members, offsets


@pytest.mark.parametrize("batch_rows", [1, 64, 10_000])  # one cluster per batch .. all in one batch
@pytest.mark.parametrize("seed", [0, 1])
def test_within_and_across_match_brute_force(batch_rows, seed):
    x, labels, ranks, links, members, offsets = data(seed)
    got = within_clusters(x, members, offsets, ranks, torch.device("cpu"), batch_rows=batch_rows, links=links)
    best, arg = brute(x, labels, ranks, links)
    np.testing.assert_allclose(got.max_sim, best, atol=1e-5)
    differ = got.argmax != arg  # only on an exact tie
    assert np.allclose(np.sum(x[differ] * x[got.argmax[differ]], axis=1), best[differ], atol=1e-5)


def test_screened_within_is_exact_above_the_floor():
    x, labels, ranks, links, members, offsets = data(3)
    exact = within_clusters(x, members, offsets, ranks, torch.device("cpu"), links=links)
    fast = within_clusters(x, members, offsets, ranks, torch.device("cpu"), links=links, exact_above=0.8)
    high = exact.max_sim >= 0.8
    assert high.sum() > 20  # the planted near-copies
    np.testing.assert_allclose(fast.max_sim[high], exact.max_sim[high], atol=1e-5)
    low = ~high & np.isfinite(exact.max_sim)
    assert np.all(np.abs(fast.max_sim[low] - exact.max_sim[low]) <= 1 / 64)
    assert np.array_equal(np.isfinite(fast.max_sim), np.isfinite(exact.max_sim))


def test_merge_max_with_repeated_rows():
    into = Neighbours(np.array([0.5, -np.inf, 0.9], dtype=np.float32), np.array([7, -1, 8]))
    merge_max(into, np.array([0, 0, 1, 1, 2]), np.array([0.6, 0.7, 0.2, 0.1, 0.95], dtype=np.float32),
              np.array([1, 2, 3, -1, 4]))
    np.testing.assert_allclose(into.max_sim, [0.7, 0.2, 0.95])
    np.testing.assert_array_equal(into.argmax, [2, 3, 4])
