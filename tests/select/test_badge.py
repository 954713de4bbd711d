"""BADGE: the factorised distances equal the explicit C·d gradient embeddings, and the picks
equal a brute-force k-means++ on those embeddings with the same random draws."""

import numpy as np
import torch

from curate.select.badge import badge, gradient_factors, squared_distances


def explicit_gradients(probs, h):
    """g_i = (onehot(yhat_i) - p_i) ⊗ h_i, materialised: [N, C·d]."""
    onehot = np.eye(probs.shape[1])[probs.argmax(1)]
    return np.einsum("nc,nd->ncd", onehot - probs, h).reshape(len(probs), -1)


def brute_force_kmeanspp(g, budget, rng):
    """The reference BADGE seeding: first the largest norm, then draws proportional to D²."""
    picks = [int(np.argmax((g * g).sum(1)))]
    d2 = np.full(len(g), np.inf)
    for _ in range(budget - 1):
        d2 = np.minimum(d2, ((g - g[picks[-1]]) ** 2).sum(1))
        d2[picks] = 0.0
        cdf = np.cumsum(d2)
        u = rng.random() * cdf[-1]
        picks.append(min(int(np.searchsorted(cdf, u, side="right")), len(g) - 1))
    return picks


def data(n=40, c=4, d=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, c))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs.astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


def test_factorised_distances_equal_the_explicit_gradient_embedding():
    probs, h = data()
    g = explicit_gradients(probs.astype(np.float64), h.astype(np.float64))
    q = torch.from_numpy(gradient_factors(probs))
    ht = torch.from_numpy(h)
    sq = ((q * q).sum(1) * (ht * ht).sum(1)).double()
    np.testing.assert_allclose(sq.numpy(), (g * g).sum(1), rtol=1e-5)
    for at in (0, 7, 39):
        got = squared_distances(q, ht, sq, at, 0, len(probs)).numpy()
        want = ((g - g[at]) ** 2).sum(1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_badge_picks_equal_brute_force_kmeanspp():
    for seed in range(3):
        probs, h = data(seed=seed)
        g = explicit_gradients(probs.astype(np.float64), h.astype(np.float64))
        want = brute_force_kmeanspp(g, 12, np.random.default_rng(seed))
        got, scores = badge(probs, h, np.ones(len(probs), bool), 12, np.random.default_rng(seed), "cpu", block=7)
        assert got.tolist() == want
        assert scores[0] == np.float64(scores[0]) and np.isclose(scores[0], (g[want[0]] ** 2).sum(), rtol=1e-5)
        assert len(set(got.tolist())) == 12


def test_badge_only_picks_candidates_and_handles_duplicates():
    probs, h = data(n=20)
    probs[10:] = probs[:10]  # exact duplicates: zero distance once their twin is picked
    h[10:] = h[:10]
    cand = np.ones(20, bool)
    cand[3] = False
    picks, _ = badge(probs, h, cand, 15, np.random.default_rng(0), "cpu")
    assert 3 not in picks.tolist() and len(set(picks.tolist())) == 15
    # 10 distinct points: a twin of a pick has D² = 0, so it is drawn only after all 10 are picked
    assert len({p % 10 for p in picks[:10].tolist()}) == 10
