"""Verification at scale: pairs in an order that keeps each image's views cached, and a pair's copy
floors measured from the pictures decoded for its views (each image decoded once per verification).

Expectations are independent of the code under test: an LRU cache is simulated here over a planted
graph whose items are a hidden chain, and decodes are counted on real JPEGs cut from a sample photo.
"""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import pyarrow as pa
from PIL import Image

from curate.dedup.near import NearConfig
from curate.dedup.pictures import Pictures
from curate.dedup.verify import Verifier, locality_order, verify


def lru_misses(a: np.ndarray, b: np.ndarray, order: np.ndarray, size: int) -> int:
    """Views built by an LRU cache of ``size`` views verifying the pairs in ``order``."""
    cache: OrderedDict[int, None] = OrderedDict()
    misses = 0
    for i in order.tolist():
        for item in (int(a[i]), int(b[i])):
            if item in cache:
                cache.move_to_end(item)
                continue
            misses += 1
            cache[item] = None
            if len(cache) > size:
                cache.popitem(last=False)
    return misses


def test_locality_order_is_a_permutation_that_builds_each_view_once():
    """Items on a hidden chain, each paired with its next three, rows shuffled: in row order a cache of
    50 views rebuilds views again and again; in locality order each view is built once."""
    rng = np.random.default_rng(0)
    n = 3000
    row_of = rng.permutation(n)  # chain position -> manifest row
    x = np.concatenate([np.arange(n - k) for k in (1, 2, 3)])
    y = x + np.repeat([1, 2, 3], [n - 1, n - 2, n - 3])
    a, b = np.minimum(row_of[x], row_of[y]), np.maximum(row_of[x], row_of[y])
    keys = np.lexsort((b, a))
    a, b = a[keys], b[keys]  # verify's row order
    which = np.arange(len(a))
    order = locality_order(a, b, which)
    assert sorted(order.tolist()) == which.tolist()
    assert lru_misses(a, b, which, 50) > 2 * n  # row order: most pairs rebuild a view
    assert lru_misses(a, b, order, 50) == n
    subset = which[::2]
    assert sorted(locality_order(a, b, subset).tolist()) == subset.tolist()
    assert locality_order(a, b, which[:1]).tolist() == [0]
    assert locality_order(a, b, which[:0]).tolist() == []


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_a_pair_decodes_each_image_once_and_the_order_changes_no_verdict(tmp_path):
    """Copies (re-encoded, resized) and different crops of a photo: each image is decoded once for its
    view and floor, and verifying the pairs in any order gives the same scores and verdicts."""
    from sklearn.datasets import load_sample_images

    china = Image.fromarray(load_sample_images().images[0])
    crops = [china.crop(box) for box in ((0, 0, 300, 220), (320, 0, 620, 220), (0, 230, 300, 420),
                                         (330, 230, 630, 420))]
    images = [jpeg(c) for c in crops] + [jpeg(crops[0], 60), jpeg(crops[2].resize((225, 142)))]
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    manifest = pa.table({"id": [f"{i}.jpg" for i in range(len(paths))], "kind": ["image"] * len(paths),
                         "source": paths, "source_kind": ["imagefolder"] * len(paths),
                         "offset": pa.nulls(len(paths), pa.int64()), "length": pa.nulls(len(paths), pa.int64())})
    config = NearConfig()
    found = {(a, b): {"phash"} for a in range(len(paths)) for b in range(a + 1, len(paths))}

    decoded: list[int] = []

    class Counting(Pictures):
        def decode(self, row):
            decoded.append(row)
            return super().decode(row)

    pictures = Counting(manifest, bar=lambda **kw: kw["iterable"])
    pairs = verify(found, Verifier(["image"] * len(paths), [None] * len(paths), pictures, config, edit=True))
    assert sorted(decoded) == list(range(len(paths)))  # views and floors: one decode per image
    assert {(int(a), int(b)) for a, b in zip(pairs.a, pairs.b)} == {(0, 4), (2, 5)}

    # the same pairs verified one by one in reversed row order, caches cold: same scores and verdicts
    fresh = Pictures(manifest, bar=lambda **kw: kw["iterable"])
    one_by_one = Verifier(["image"] * len(paths), [None] * len(paths), fresh, config, edit=True)
    expected = {k: one_by_one.image_pair(*k) for k in sorted(found, reverse=True)}
    assert {(int(a), int(b)): float(s) for a, b, s in zip(pairs.a, pairs.b, pairs.score)} == {
        k: np.float32(v[0]) for k, v in expected.items() if v[1]}
