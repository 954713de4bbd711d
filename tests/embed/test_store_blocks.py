"""``StoredEmbeddings.blocks`` (``curate.vectors.blocks``): any store rows read from the memory map in
bounded blocks equal a brute-force fancy index of the map, as numpy or torch (CPU), with and without
unit normalisation; ``gather`` is the same rows in one new array."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from curate.embed.store import IdColumn, StoredEmbeddings
from curate.vectors import blocks, gather

N, D = 103, 12
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "vectors.npy"
    rng = np.random.default_rng(0)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(N, D))
    mm[:] = rng.normal(size=(N, D)) * rng.uniform(0.1, 3.0, size=(N, 1))  # not unit: normalising shows
    mm[7] = 0  # a zero row: the 1e-12 floor
    mm.flush()
    del mm
    vectors = np.load(path, mmap_mode="r")
    ids = IdColumn(pa.array([f"s{i}" for i in range(N)]))
    return StoredEmbeddings(vectors, ids, np.arange(N), np.ones(N, dtype=bool), {"fingerprint": "f"}, "s")


def brute(vectors, rows, unit):
    x = np.asarray(vectors)[np.asarray(rows, dtype=np.int64)].astype(np.float32)
    if unit:
        x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    return x


ROWS = {
    "empty": np.empty(0, dtype=np.int64),
    "one": np.array([7]),
    "run": np.arange(10, 60),  # consecutive: read as slices
    "unsorted": np.random.default_rng(1).permutation(N)[:70],
    "duplicates": np.array([3, 3, 99, 0, 3, 50, 51, 52, 50, 102]),
    "runs and gaps": np.r_[0:20, 40:41, 60:N],
    "descending": np.arange(N)[::-1].copy(),
    "range": range(17, 90),
    "all": range(N),
}


@pytest.mark.parametrize("rows", ROWS.values(), ids=ROWS.keys())
@pytest.mark.parametrize("block", [1, 7, 16, 1000])
@pytest.mark.parametrize("unit", [False, True])
@pytest.mark.parametrize("device", [None, CPU], ids=["numpy", "torch"])
def test_blocks_equal_a_fancy_index_of_the_memmap(store, rows, block, unit, device):
    want = brute(store.vectors, rows, unit)
    got = list(store.blocks(rows, device, block=block, unit=unit))
    assert [start for start, _ in got] == list(range(0, len(rows), block))
    parts = []
    for _, x in got:
        assert 1 <= len(x) <= block and x.shape[1] == D
        if device is None:
            assert isinstance(x, np.ndarray) and x.dtype == np.float32
        else:
            assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.device == CPU
            x = x.numpy()
        parts.append(x)
    joined = np.concatenate(parts) if parts else np.empty((0, D), dtype=np.float32)
    assert np.array_equal(joined, want)  # bit for bit
    whole = gather(store.vectors, rows, device, block=block, unit=unit)
    assert np.array_equal(whole if device is None else whole.numpy(), want) and len(whole) == len(rows)


@pytest.mark.parametrize("device", [None, CPU], ids=["numpy", "torch"])
def test_store_gather_is_unit_rows_in_any_order(store, device):
    rows = np.array([40, 2, 2, 7, 41, 42])
    got = store.gather(rows, device)
    assert np.array_equal(got if device is None else got.numpy(), brute(store.vectors, rows, unit=True))


def test_fp32_slices_are_views_in_blocks_and_copies_in_gather():
    x = np.random.default_rng(2).normal(size=(40, 5)).astype(np.float32)
    before = x.copy()
    (_, view), = blocks(x, range(5, 25), block=100)
    (_, tview), = blocks(x, range(5, 25), CPU, block=100)
    assert np.shares_memory(view, x) and np.shares_memory(tview.numpy(), x)  # read as they are: no copy
    (_, own), = blocks(x, range(5, 25), block=100, copy=True)
    (_, town), = blocks(x, range(5, 25), CPU, block=100, copy=True)
    assert not np.shares_memory(own, x) and not np.shares_memory(town.numpy(), x)
    for rows in (range(5, 25), np.arange(5, 25), np.array([3, 1])):
        for device in (None, CPU):
            out = gather(x, rows, device)
            out = out if device is None else out.numpy()
            assert not np.shares_memory(out, x)
            out[:] = 0
    for _, unit in blocks(x, range(40), block=16, unit=True):  # normalised out of place: x is never written
        assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(x, before)


def test_as_stored_blocks_keep_fp16(store):
    rows = np.array([9, 1, 2, 3, 50])
    widened = [x for _, x in store.blocks(rows, CPU, block=2)]
    assert all(x.dtype == torch.float32 for x in widened)
    (_, as_stored), = blocks(store.vectors, rows, CPU, widen=False)
    assert as_stored.dtype == torch.float16 and np.array_equal(as_stored.numpy(), store.vectors[rows])
    half = gather(store.vectors, np.array([]), CPU, widen=False)
    assert half.shape == (0, D) and half.dtype == torch.float16
    with pytest.raises(ValueError):
        next(blocks(store.vectors, rows, None, widen=False))
    with pytest.raises(ValueError):
        next(blocks(store.vectors, rows, CPU, block=0))


class CountingRows:
    """An array-like that records how many rows each read returns."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.reads = arr, arr.shape, arr.dtype, []

    def __getitem__(self, key):
        part = self.arr[key]
        self.reads.append(len(part))
        return part


@pytest.mark.parametrize("rows", [np.random.default_rng(3).permutation(N), range(N)], ids=["rows", "range"])
def test_reads_are_bounded_by_the_block(store, rows):
    counting = CountingRows(store.vectors)
    got = np.concatenate([x for _, x in blocks(counting, rows, block=16, unit=True)])
    assert max(counting.reads) <= 16 and sum(counting.reads) == N
    assert np.array_equal(got, brute(store.vectors, rows, unit=True))
    counting.reads.clear()
    got = np.concatenate([x.numpy() for _, x in blocks(counting, range(N), CPU, block=16)])
    assert max(counting.reads) <= 16 and np.array_equal(got, brute(store.vectors, range(N), unit=False))
