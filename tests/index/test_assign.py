"""Blockwise centroid assignment: equals brute force, independent of block size, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from curate.index.assign import assign, cluster_members


def unit(rng, n, d, dtype=np.float16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(dtype)


def brute(x, cents, top):
    s = x.astype(np.float32) @ cents.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :top]
    return np.take_along_axis(s, ids, axis=1), ids


def test_matches_brute_force_top2():
    rng = np.random.default_rng(0)
    x, cents = unit(rng, 3000, 48), unit(rng, 37, 48, np.float32)
    got = assign(x, cents, top=2, device="cpu")
    sims, ids = brute(x, cents, 2)
    np.testing.assert_array_equal(got.labels, np.argmax(x.astype(np.float32) @ cents.T, axis=1))
    np.testing.assert_array_equal(got.centroid_ids, ids)
    np.testing.assert_allclose(got.sims, sims, atol=1e-5)
    assert got.labels.dtype == np.int32 and got.centroid_ids.dtype == np.int32 and got.sims.dtype == np.float32
    assert np.all(got.sims[:, 0] >= got.sims[:, 1])


def test_block_size_does_not_matter():
    rng = np.random.default_rng(1)
    x, cents = unit(rng, 1000, 32), unit(rng, 25, 32, np.float32)
    a = assign(x, cents, block=7, top=3)
    b = assign(x, cents, block=10_000, top=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroid_ids, b.centroid_ids)
    np.testing.assert_allclose(a.sims, b.sims, atol=1e-6)


def test_invalid_rows_and_top_above_k():
    rng = np.random.default_rng(2)
    x, cents = unit(rng, 50, 16), unit(rng, 2, 16, np.float32)
    valid = np.ones(50, dtype=bool)
    valid[[3, 10]] = False
    got = assign(x, cents, valid, top=4)
    assert got.sims.shape == (50, 4)
    assert (got.labels[[3, 10]] == -1).all() and (got.centroid_ids[[3, 10]] == -1).all()
    assert np.isnan(got.sims[[3, 10]]).all()
    ok = got.centroid_ids[valid]
    assert set(np.unique(ok[:, :2])) <= {0, 1} and (ok[:, 2:] == -1).all()
    assert np.isneginf(got.sims[valid][:, 2:]).all()


def test_cluster_members():
    labels = np.array([2, 0, -1, 2, 1, 0, 2, -1], dtype=np.int32)
    order, offsets = cluster_members(labels)
    np.testing.assert_array_equal(offsets, [0, 2, 3, 6])
    np.testing.assert_array_equal(order, [1, 5, 4, 0, 3, 6])  # stable: store order within a cluster
    order, offsets = cluster_members(labels, k=5)
    np.testing.assert_array_equal(offsets, [0, 2, 3, 6, 6, 6])
    order, offsets = cluster_members(np.full(4, -1, dtype=np.int32))
    assert len(order) == 0 and list(offsets) == [0]
    with pytest.raises(ValueError):
        cluster_members(labels, k=2)


class CountingRows:
    """An array stand-in that records how many rows each read asked for."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.reads = arr, arr.shape, arr.dtype, []

    def __getitem__(self, key):
        part = self.arr[key]
        self.reads.append(len(part))
        return part


def test_memmap_assign_reads_blockwise(tmp_path):
    n, d, k, block = 200_000, 64, 512, 16_384
    path = tmp_path / "vectors.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, d))
    rng = np.random.default_rng(3)
    for start in range(0, n, 50_000):
        mm[start:start + 50_000] = unit(rng, 50_000, d)
    mm.flush()
    del mm
    vectors = np.load(path, mmap_mode="r")
    cents = unit(rng, k, d, np.float32)

    tracemalloc.start()
    got = assign(vectors, cents, block=block, device="cpu")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outputs = got.labels.nbytes + got.sims.nbytes + got.centroid_ids.nbytes
    assert peak < outputs + 4 * block * (d + k) * 2  # never N x k (= 400 MB here)
    assert peak < n * k * 4 / 20

    counting = CountingRows(vectors)
    again = assign(counting, cents, block=block)
    assert max(counting.reads) <= block and sum(counting.reads) == n
    np.testing.assert_array_equal(again.labels, got.labels)
    sample = rng.choice(n, 500, replace=False)
    np.testing.assert_array_equal(got.labels[sample], np.argmax(vectors[sample].astype(np.float32) @ cents.T, axis=1))


def test_screened_keeps_the_nearest_and_its_exact_similarity():
    """bf16 screening (where fast) may only swap centroids that score within 1/64; sims[:, 0] stays exact."""
    rng = np.random.default_rng(5)
    x, cents = unit(rng, 4000, 64), unit(rng, 300, 64, np.float32)
    exact_sims, exact_ids = brute(x, cents, 4)
    got = assign(x, cents, top=4, screen=True, block=1000)
    chosen = np.sum(x.astype(np.float32) * cents[got.labels], axis=1)
    np.testing.assert_allclose(got.sims[:, 0], chosen, atol=1e-5)
    assert np.all(chosen >= exact_sims[:, 0] - 1 / 64)
    far_apart = exact_sims[:, 0] - exact_sims[:, 1] > 2 / 64
    np.testing.assert_array_equal(got.labels[far_apart], exact_ids[far_apart, 0])
    assert np.all(np.abs(got.sims - exact_sims) <= 1 / 64 + 1e-6)
