"""FAISS index over a store: exact flat search, IVF recall, range search, precomputed list assignments,
fp16 storage, save/load, torch exact search."""

from __future__ import annotations

import json

import faiss
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


@pytest.mark.parametrize("kind,storage", [("flat", "fp16"), ("ivf", "fp16"), ("ivf", "fp32")])
def test_save_load_round_trip(tmp_path, kind, storage):
    x, valid = store(3000, seed=3)
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=16)) if kind == "ivf" else None
    idx = build_index(x, valid, kind=kind, centroids=cents, nprobe=4, storage=storage)
    assert idx.storage == (storage if kind == "ivf" else "fp32")  # a flat index is always fp32
    folder = tmp_path / "index" / "slug"
    save_index(idx, str(folder), {"store": "slug", "fingerprint": "abc"})
    meta = json.loads((folder / "index.json").read_text())
    assert meta["kind"] == kind and meta["count"] == valid.sum() and meta["dim"] == 32
    assert meta["store"] == "slug" and meta["rows"] == "rows.npy" and meta["storage"] == idx.storage
    assert meta["nprobe"] == (4 if kind == "ivf" else None)
    assert not [p for p in folder.iterdir() if TMP_MARK in p.name]
    loaded = load_index(str(folder))
    np.testing.assert_array_equal(loaded.rows, np.flatnonzero(valid))
    assert loaded.nprobe == idx.nprobe and loaded.kind == kind and loaded.storage == idx.storage
    q = x[1::50]
    for a, b in zip(search(idx, q, 5), search(loaded, q, 5)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(range_search(idx, q, 0.7), range_search(loaded, q, 0.7)):
        np.testing.assert_array_equal(a, b)
    if storage == "fp32":  # an index.json written before ``storage`` existed still loads, as fp32
        del meta["storage"]
        (folder / "index.json").write_text(json.dumps(meta))
        old = load_index(str(folder))
        assert old.storage == "fp32"
        np.testing.assert_array_equal(search(old, q, 5)[1], search(idx, q, 5)[1])
    # saving again over it works; a missing or inconsistent index is a clear error
    save_index(loaded, str(folder))
    np.save(folder / "rows.npy", np.arange(3))
    with pytest.raises(CurateError, match="inconsistent"):
        load_index(str(folder))
    with pytest.raises(CurateError, match="no finished index"):
        load_index(str(tmp_path / "nothing"))


def nearest_lists(x, cents, valid):
    """Nearest centroid of each row (float64), with the rows whose top-2 gap is a near tie made invalid."""
    s = x.astype(np.float64) @ cents.astype(np.float64).T
    top2 = -np.sort(-s, axis=1)[:, :2]
    return np.argmax(s, axis=1).astype(np.int64), valid & (top2[:, 0] - top2[:, 1] > 1e-4)


def list_rows(idx, list_id):
    """Store rows held in one inverted list of an IVF index."""
    inv = faiss.extract_index_ivf(idx.index).invlists
    size = inv.list_size(list_id)
    ids = faiss.rev_swig_ptr(inv.get_ids(list_id), size).copy() if size else np.empty(0, dtype=np.int64)
    return idx.rows[ids]


@pytest.mark.parametrize("storage", ["fp16", "fp32"])
def test_precomputed_assignments_equal_plain_add(storage):
    x, valid = store(3000, seed=6)
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=16))
    lists, valid = nearest_lists(x, cents, valid)
    lists[~valid] = -1  # ignored for invalid rows
    plain = build_index(x, valid, kind="ivf", centroids=cents, nprobe=16, storage=storage, block=500)
    pre = build_index(x, valid, kind="ivf", centroids=cents, nprobe=16, storage=storage, block=500,
                      assignments=lists)
    assert pre.storage == plain.storage == storage and pre.count == plain.count == valid.sum()
    for i in range(16):
        want = np.flatnonzero(valid & (lists == i))
        assert len(want) > 0
        np.testing.assert_array_equal(np.sort(list_rows(pre, i)), want)
        np.testing.assert_array_equal(np.sort(list_rows(plain, i)), want)
    # the coarse quantizer holds exactly our centroids (fp16 training did not replace them)
    quantizer = faiss.extract_index_ivf(pre.index).quantizer
    assert quantizer.ntotal == 16
    np.testing.assert_array_equal(quantizer.reconstruct_n(0, 16), cents.astype(np.float32))
    q = clustered(100, seed=7)
    for a, b in zip(search(pre, q, 10), search(plain, q, 10)):
        np.testing.assert_array_equal(a, b)
    want_s, want_r = brute_topk(x, valid, q, 10)  # nprobe = nlist: exact
    np.testing.assert_array_equal(search(pre, q, 10)[1], want_r)


def test_assignments_decide_the_list():
    x, valid = store(2000, seed=8)
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=8))
    lists, _ = nearest_lists(x, cents, valid)
    planted = np.flatnonzero(valid)[[3, 100, 500, 1200]]
    lists[planted] = (lists[planted] + 3) % 8  # deliberately not the nearest centroid
    lists[~valid] = 99  # out of range, but on invalid rows: not indexed, not checked
    idx = build_index(x, valid, kind="ivf", centroids=cents, nprobe=1, assignments=lists)
    where = np.full(len(x), -1)
    for i in range(8):
        rows = list_rows(idx, i)
        assert (where[rows] == -1).all()  # each row in exactly one list
        where[rows] = i
    np.testing.assert_array_equal(where[valid], lists[valid])
    assert (where[~valid] == -1).all()
    # with nprobe = 1 a planted row's own vector probes its nearest list, where the row is not
    _, got = search(idx, x[planted].astype(np.float32), 1)
    assert not (got[:, 0] == planted).any()


def test_bad_assignments_raise():
    x, valid = store(500, seed=9)
    cents = fit_spherical_kmeans(x, valid, KMeansConfig(clusters=4))
    good = np.zeros(len(x), dtype=np.int64)
    bad = [good[:-1], good.astype(np.float32), good[:, None]]  # wrong length, not integers, 2-d
    for a in bad:
        with pytest.raises(ValueError, match="shape"):
            build_index(x, valid, kind="ivf", centroids=cents, assignments=a)
    for value in (4, -1):
        a = good.copy()
        a[np.flatnonzero(valid)[7]] = value
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            build_index(x, valid, kind="ivf", centroids=cents, assignments=a)
    with pytest.raises(ValueError, match="centroids"):
        build_index(x, valid, kind="ivf", assignments=good)
    with pytest.raises(ValueError, match="storage"):
        build_index(x, valid, kind="ivf", centroids=cents, storage="int8")


def test_fp16_storage_is_exact_on_rounded_vectors_and_half_the_size(tmp_path):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4000, 128)).astype(np.float32)  # fp32 input: the index rounds it to fp16
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cents = x[rng.choice(len(x), 16, replace=False)]
    lists, _ = nearest_lists(x, cents, np.ones(len(x), dtype=bool))
    idx16 = build_index(x, None, kind="ivf", centroids=cents, nprobe=16, assignments=lists)
    idx32 = build_index(x, None, kind="ivf", centroids=cents, nprobe=16, storage="fp32")
    q = rng.standard_normal((200, 128)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k = 10
    ref = q.astype(np.float64) @ x.astype(np.float16).astype(np.float64).T
    order = np.argsort(-ref, axis=1, kind="stable")[:, :k + 1]
    ref_s = np.take_along_axis(ref, order, axis=1)
    sims, rows = search(idx16, q, k)
    np.testing.assert_allclose(sims, ref_s[:, :k], atol=1e-3)
    gaps = -np.diff(ref_s, axis=1)  # gaps[:, j]: between ranks j and j + 1
    clear = (gaps[:, :k] > 1e-3) & np.concatenate([np.ones((len(q), 1), bool), gaps[:, :k - 1] > 1e-3], axis=1)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(rows[clear], order[:, :k][clear])
    # the fp32 index sees the unrounded vectors: differs from the fp16 one by fp16 rounding only
    np.testing.assert_allclose(search(idx32, q, k)[0], sims, atol=2e-3)
    sizes = {}
    for name, idx in (("fp16", idx16), ("fp32", idx32)):
        save_index(idx, str(tmp_path / name))
        sizes[name] = (tmp_path / name / "faiss.index").stat().st_size
    assert 0.45 < sizes["fp16"] / sizes["fp32"] < 0.56, sizes


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
