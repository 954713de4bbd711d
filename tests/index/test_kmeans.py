"""Spherical k-means: recovers separated clusters, deterministic per seed, samples only valid rows."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import CurateError
from curate.index import kmeans as km
from curate.index.assign import assign
from curate.index.kmeans import KMeansConfig, default_clusters, fit_spherical_kmeans, sample_rows


def clustered(n=4000, d=64, centres=20, noise=0.1, seed=0):
    """Unit fp16 rows around ``centres`` random unit centres (noise norm about ``noise``)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    truth = rng.integers(0, centres, n)
    x = c[truth] + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16), truth


def purity(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows whose found cluster's majority true label is their own (both directions)."""
    def one_way(a, b):
        return sum(np.bincount(b[a == c]).max() for c in np.unique(a)) / len(a)
    return min(one_way(found, truth), one_way(truth, found))


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_separated_clusters(backend, seed):
    x, truth = clustered(seed=seed)
    valid = np.ones(len(x), dtype=bool)
    valid[::50] = False
    x[~valid] = 0  # invalid rows are zero vectors in a store: they must not be sampled
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=20, seed=seed, backend=backend))
    assert cents.shape == (20, 64) and cents.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 1, atol=1e-5)
    labels = assign(x, cents, valid).labels
    assert purity(labels[valid], truth[valid]) >= 0.95


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_deterministic_for_a_seed(backend):
    x, _ = clustered(n=3000, noise=0.3, seed=5)
    cfg = KMeansConfig(clusters=30, sample=2000, seed=7, backend=backend)
    a = fit_spherical_kmeans(x, None, cfg)
    b = fit_spherical_kmeans(x, None, cfg)
    np.testing.assert_array_equal(a, b)
    c = fit_spherical_kmeans(x, None, KMeansConfig(clusters=30, sample=2000, seed=8, backend=backend))
    assert not np.array_equal(a, c)


def test_random_init_option_and_memmap_input(tmp_path):
    x, _ = clustered(n=2000)
    path = tmp_path / "v.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    cents = fit_spherical_kmeans(mm, None, KMeansConfig(clusters=10, init="random", backend="faiss"))
    assert cents.shape == (10, 64)
    with pytest.raises(ValueError):
        fit_spherical_kmeans(mm, None, KMeansConfig(clusters=10, init="bogus"))


def test_default_cluster_count():
    assert default_clusters(1) == 1
    assert default_clusters(10_000) == 100
    assert default_clusters(1_000_000, 200_000) == 1000
    assert default_clusters(10**12, 200_000) == 200_000 // 39  # bounded by the sample
    assert default_clusters(10**12, 10**9) == 50_000
    x, _ = clustered(n=3900)
    assert fit_spherical_kmeans(x, None, KMeansConfig(sample=390)).shape[0] == 10


def test_sample_rows_only_valid_sorted_seeded():
    rng = np.random.default_rng(0)
    valid = rng.random(100_000) < 0.3
    rows = sample_rows(valid, 5000, seed=3)
    assert len(rows) == 5000 == len(np.unique(rows))
    assert np.all(np.diff(rows) > 0) and valid[rows].all()
    np.testing.assert_array_equal(rows, sample_rows(valid, 5000, seed=3))
    np.testing.assert_array_equal(sample_rows(valid, 10**6, seed=3), np.flatnonzero(valid))
    # the chunked rank -> row mapping equals the direct one
    positions = np.sort(rng.choice(int(valid.sum()), 777, replace=False))
    np.testing.assert_array_equal(km._valid_rows_at(valid, positions, chunk=1000), np.flatnonzero(valid)[positions])


def test_auto_backend_without_faiss(monkeypatch):
    monkeypatch.setattr(km, "import_faiss", lambda: None)
    assert km.choose_backend(KMeansConfig(device="cpu")) == "torch"
    x, truth = clustered(n=2000, centres=5)
    cents = fit_spherical_kmeans(x, None, KMeansConfig(clusters=5, device="cpu"))
    assert purity(assign(x, cents).labels, truth) >= 0.95
    with pytest.raises(CurateError, match="FAISS is not installed"):
        fit_spherical_kmeans(x, None, KMeansConfig(clusters=5, backend="faiss"))


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_many_exact_duplicates(backend):
    """Fewer distinct points than clusters (a heavily duplicated pool) still yields k unit centroids."""
    base, _ = clustered(n=5, centres=5)
    x = np.repeat(base, 200, axis=0)
    cents = fit_spherical_kmeans(x, None, KMeansConfig(clusters=12, backend=backend))
    assert cents.shape == (12, 64) and np.isfinite(cents).all()
    assert len(np.unique(assign(x, cents).labels)) == 5


def test_bad_inputs():
    x, _ = clustered(n=100)
    with pytest.raises(CurateError, match="at least one valid"):
        fit_spherical_kmeans(x, np.zeros(100, dtype=bool))
    with pytest.raises(CurateError, match="cannot fit"):
        fit_spherical_kmeans(x, None, KMeansConfig(clusters=101))
    with pytest.raises(ValueError, match="backend"):
        fit_spherical_kmeans(x, None, KMeansConfig(clusters=2, backend="sklearn"))


def test_bf16_scored_lloyd_recovers_separated_clusters():
    x, truth = clustered(seed=3)
    cents = fit_spherical_kmeans(x, None, KMeansConfig(clusters=20, seed=3, backend="torch", screen=True))
    assert purity(assign(x, cents).labels, truth) >= 0.95
