"""Releasing a memory-mapped store's pages: resident memory drops, the data stays readable."""

import mmap

import numpy as np
import pytest

from curate.index.pages import release

pytestmark = pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="needs madvise(MADV_DONTNEED)")


def resident_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * mmap.PAGESIZE / 2**20


def test_release_drops_the_mapped_pages_and_keeps_the_data(tmp_path):
    want = np.random.default_rng(0).normal(size=(40_000, 256)).astype(np.float16)  # 20 MB
    np.save(tmp_path / "v.npy", want)
    x = np.load(tmp_path / "v.npy", mmap_mode="r")
    before = resident_mb()
    total = float(x.sum(dtype=np.float64))  # touches every page
    assert resident_mb() - before > 15
    release(x[100:200])  # a view of the map releases the whole map
    assert resident_mb() - before < 5
    assert float(x.sum(dtype=np.float64)) == total and np.array_equal(x[123], want[123])


def test_release_leaves_plain_arrays_alone():
    x = np.arange(10.0)
    release(x)
    release(x[2:5])
    assert x.sum() == 45.0
