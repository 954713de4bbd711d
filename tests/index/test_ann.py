"""FAISS index over a store: exact flat search, IVF recall, range search, save/load, torch exact search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curate.errors import CurateError
from curate.index import kmeans as km
from curate.index.ann import build_index, exact_search, load_index, range_search, save_index, search
from curate.index.kmeans import KMeansConfig, fit_spherical_kmeans
from curate.io.atomic import TMP_MARK


def clustered(n, d=32, centres=20, noise=0.6, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d)) / np.sqrt(d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16)


def brute_topk(base, valid, queries, k):
    s = queries.astype(np.float64) @ base.astype(np.float64).T
    s[:, ~valid] = -np.inf
    rows = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, rows, axis=1), rows


def store(n=3000, seed=0, invalid_every=17):
    x = clustered(n, seed=seed)
    valid = np.ones(n, dtype=bool)
    valid[::invalid_every] = False
    x[~valid] = 0
    return x, valid


def test_flat_search_equals_brute_force():
    x, valid = store()
    idx = build_index(x, valid, kind="auto")
    assert idx.kind == "flat" and idx.count == valid.sum()
    q = clustered(200, seed=9)
    sims, rows = search(idx, q, 10, block=33)
    want_s, want_r = brute_topk(x, valid, q, 10)
    np.testing.assert_array_equal(rows, want_r)
    np.testing.assert_allclose(sims, want_s, atol=1e-5)
    # more neighbours than entries: padded with -1 / -inf
    small = build_index(x[:5], None)
    s, r = search(small, q[:3], 8)
    assert (r[:, 5:] == -1).all() and np.isneginf(s[:, 5:]).all() and (r[:, :5] >= 0).all()


def test_ivf_recall_on_clustered_data():
    x = clustered(20_000, seed=1)
    cents = fit_spherical_kmeans(x, None, KMeansConfig(clusters=64, sample=10_000))
    idx = build_index(x, None, kind="ivf", centroids=cents, nprobe=8)
    assert idx.kind == "ivf" and idx.nlist == 64 and idx.nprobe == 8
    q = x[::97]
    _, rows = search(idx, q, 10)
    _, want = brute_topk(x, np.ones(len(x), dtype=bool), q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, want)])
    assert recall >= 0.95
    # auto switches to IVF above flat_limit and fits its own quantizer
    auto = build_index(x, None, flat_limit=10_000, kmeans=KMeansConfig(clusters=32, sample=5000))
    assert auto.kind == "ivf" and auto.nlist == 32 and auto.nprobe == 16


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_range_search_equals_brute_force_pairs(kind):
    x, valid = store(4000, seed=2)
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=32)) if kind == "ivf" else None
    idx = build_index(x, valid, kind=kind, centroids=cents, nprobe=8)
    q = x[:300]
    lims, sims, rows = range_search(idx, q, 0.8, block=64)
    assert lims.shape == (301,) and lims[-1] == len(sims) == len(rows)
    s = q.astype(np.float32) @ x.astype(np.float32).T
    found = expected = 0
    for i in range(len(q)):
        hits = set(np.flatnonzero((s[i] > 0.8) & valid))
        got = rows[lims[i]:lims[i + 1]]
        assert len(set(got)) == len(got) and set(got) <= hits
        if kind == "flat":
            assert set(got) == hits
        found, expected = found + len(got), expected + len(hits)
        seg = sims[lims[i]:lims[i + 1]]
        assert np.all(np.diff(seg) <= 0)
        np.testing.assert_allclose(seg, s[i, got], atol=1e-5)
    assert expected > 10 * len(q) and found >= 0.95 * expected  # IVF visits nprobe of 32 cells


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_save_load_round_trip(tmp_path, kind):
    x, valid = store(3000, seed=3)
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=16)) if kind == "ivf" else None
    idx = build_index(x, valid, kind=kind, centroids=cents, nprobe=4)
    folder = tmp_path / "index" / "slug"
    save_index(idx, str(folder), {"store": "slug", "fingerprint": "abc"})
    meta = json.loads((folder / "index.json").read_text())
    assert meta["kind"] == kind and meta["count"] == valid.sum() and meta["dim"] == 32
    assert meta["store"] == "slug" and meta["rows"] == "rows.npy"
    assert meta["nprobe"] == (4 if kind == "ivf" else None)
    assert not [p for p in folder.iterdir() if TMP_MARK in p.name]
    loaded = load_index(str(folder))
    np.testing.assert_array_equal(loaded.rows, np.flatnonzero(valid))
    assert loaded.nprobe == idx.nprobe and loaded.kind == kind
    q = x[1::50]
    for a, b in zip(search(idx, q, 5), search(loaded, q, 5)):
        np.testing.assert_array_equal(a, b)
    # saving again over it works; a missing or inconsistent index is a clear error
    save_index(loaded, str(folder))
    np.save(folder / "rows.npy", np.arange(3))
    with pytest.raises(CurateError, match="inconsistent"):
        load_index(str(folder))
    with pytest.raises(CurateError, match="no finished index"):
        load_index(str(tmp_path / "nothing"))


def test_exact_search_torch():
    x, valid = store(1500, seed=4)
    q = clustered(100, seed=5)
    want_s, want_r = brute_topk(x, valid, q, 7)
    for block, cache in [(64, 0), (10_000, 1 << 30)]:
        s, r = exact_search(x, q, 7, valid=valid, block=block, cache_bytes=cache, device="cpu")
        np.testing.assert_array_equal(r, want_r)
        np.testing.assert_allclose(s, want_s, atol=1e-5)
    s, r = exact_search(x[:4], q[:2], 6, valid=np.array([True, False, True, True]))
    assert (r[:, 3:] == -1).all() and np.isneginf(s[:, 3:]).all() and not (r == 1).any()


def test_without_faiss(monkeypatch):
    monkeypatch.setattr(km, "import_faiss", lambda: None)
    x, valid = store(200)
    with pytest.raises(CurateError, match="FAISS is not installed"):
        build_index(x, valid)
    s, r = exact_search(x, x[:3], 2, valid=valid)
    assert r.shape == (3, 2)
