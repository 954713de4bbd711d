"""The bounded banded hash join and the image signatures it runs on, against brute force."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from curate.dedup import phash
from curate.dedup.candidates import MIN_BANDS, affordable_bands, hash_pairs
from curate.dedup.hash_search import as_pairs, join_load, near_hashes
from curate.dedup.signatures import Signatures, _signatures_of, signature


def _flipped(h: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    out = h.copy()
    for k in range(len(out)):
        for b in rng.choice(64, bits, replace=False):
            out[k] ^= np.uint64(1) << np.uint64(int(b))
    return out


def _brute(query, base, owner, max_distance):
    best = {}
    for i, q in enumerate(query.tolist()):
        for j, h in enumerate(base.tolist()):
            d = (q ^ h).bit_count()
            if owner[j] != i and d <= max_distance:
                key = (i, int(owner[j]))
                best[key] = min(best.get(key, 99), d)
    return best


@pytest.mark.parametrize("budget", [10**9, 50])  # one block, and blocks of a few queries each
def test_near_hashes_finds_every_pair_a_complete_band_set_allows(budget):
    rng = np.random.default_rng(0)
    originals = rng.integers(0, 2**63, 60, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 60, dtype=np.uint64)
    copies = _flipped(originals[:30], 5, rng)  # 5 bits off: 6 bands make them meet
    query = np.concatenate([originals, copies])
    owner = np.r_[np.arange(90), np.arange(90)]
    base = np.concatenate([query, _flipped(query, 3, rng)])  # each item has a second hash
    i, o, d = near_hashes(query, base, owner, 5, bands=6, budget=budget)
    got = {(a, b): c for a, b, c in zip(i.tolist(), o.tolist(), d.tolist())}
    assert got == _brute(query, base, owner, 5)
    assert {(k, 60 + k) for k in range(30)} <= set(got)  # the planted copies
    pairs, dist = as_pairs(i, o, d)
    assert (pairs[:, 0] < pairs[:, 1]).all() and len({tuple(p) for p in pairs.tolist()}) == len(pairs)
    for (a, b), x in zip(pairs.tolist(), dist.tolist()):
        assert x == min(got.get((a, b), 99), got.get((b, a), 99))


def test_affordable_bands_are_exact_when_small_and_bounded_when_large(monkeypatch):
    import curate.dedup.candidates as candidates

    rng = np.random.default_rng(1)
    small = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    assert affordable_bands(small, small, 12) == 13  # every pair within 12 bits meets
    assert affordable_bands(small, small, 12, most=6) == 6
    # a skewed hash (every key shares its high bits): the measured load, not the uniform estimate, decides
    skewed = small & np.uint64(0x00000000FFFFFFFF)
    monkeypatch.setattr(candidates, "SEARCH_BUDGET", 2_000_000)
    uniform = affordable_bands(small, small, 12)
    assert MIN_BANDS <= affordable_bands(skewed, skewed, 12) < uniform <= 13
    chosen = affordable_bands(small, small, 12)
    assert join_load(small, small, chosen) <= 2_000_000 or chosen == MIN_BANDS
    assert affordable_bands(skewed, skewed, 12) == MIN_BANDS or \
        join_load(skewed, skewed, affordable_bands(skewed, skewed, 12)) <= 2_000_000


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_signature_hashes_match_the_phash_functions_and_the_mirror_hash_is_the_mirrors(photos):
    img = photos["bloom"]
    canonical, coefficients, windows, mirror = signature(_png(img))
    seen = Image.open(io.BytesIO(_png(img))).convert("RGB")
    seen.thumbnail((256, 256))
    assert canonical == phash.image_hash(seen)
    assert np.array_equal(windows, phash.window_hashes(seen))
    assert mirror == phash.window_hashes(ImageOps.mirror(seen))[0]
    assert np.linalg.norm(coefficients) == pytest.approx(1.0, abs=1e-5)
    assert signature(b"not an image") is None and signature(None) is None


def test_hash_pairs_find_a_mirrored_and_a_rotated_copy_but_not_other_photos(photos):
    names = sorted(photos)
    imgs = [photos[n] for n in names] + [ImageOps.mirror(photos[names[0]]),
                                         photos[names[1]].rotate(3, resample=Image.BILINEAR)]
    got = _signatures_of([_png(i) for i in imgs])
    sig = Signatures(np.ones(len(got), bool), np.array([g[0] for g in got], np.uint64), np.stack([g[1] for g in got]),
                     np.stack([g[2] for g in got]), np.array([g[3] for g in got], np.uint64))
    pairs, _ = hash_pairs(sig, 12)
    found = {tuple(p) for p in pairs.tolist()}
    n = len(names)
    assert (0, n) in found and (1, n + 1) in found
    assert not {p for p in found if p[1] < n}  # the distinct photos propose nothing


def test_image_signatures_in_worker_processes_equal_those_made_here(tmp_path, photos):
    import pyarrow as pa

    from curate.dedup.pictures import Pictures
    from curate.dedup.signatures import image_signatures
    from curate.runner import progress_bar

    paths = []
    for k, (name, img) in enumerate(sorted(photos.items()) * 3):
        path = tmp_path / f"{k}-{name}.png"
        img.resize((60 + 7 * k, 50 + 5 * k)).save(path)
        paths.append(str(path))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    paths.append(str(tmp_path / "broken.png"))
    manifest = pa.table({"kind": ["image"] * len(paths), "source": paths, "source_kind": ["file"] * len(paths),
                         "offset": [None] * len(paths), "length": [None] * len(paths),
                         "text": [None] * len(paths)})
    pictures = Pictures(manifest, lambda **k: progress_bar(False, **k))
    rows = np.arange(len(paths))[::-1].copy()  # any order: results follow the rows asked for
    here = image_signatures(pictures, rows, workers=1)
    pooled = image_signatures(pictures, rows, workers=2, min_pooled=1)
    assert here.have.tolist() == pooled.have.tolist() == [False] + [True] * (len(paths) - 1)
    for field in ("canonical", "coefficients", "windows", "mirror"):
        assert np.array_equal(getattr(here, field), getattr(pooled, field))
    assert len(set(here.canonical[1:].tolist())) >= len(photos)  # resized copies may share one


def test_image_pairs_verified_in_worker_processes_score_as_here(tmp_path, photos):
    import pyarrow as pa

    from curate.dedup.near import NearConfig
    from curate.dedup.pictures import Pictures
    from curate.dedup.verify import Verifier, image_pair_scores
    from curate.runner import progress_bar

    paths = []
    for name, img in sorted(photos.items())[:3]:
        for k, copy in enumerate((img, img.resize((img.width // 2, img.height // 2)), img.rotate(4))):
            path = tmp_path / f"{name}-{k}.png"
            copy.save(path)
            paths.append(str(path))
    manifest = pa.table({"kind": ["image"] * len(paths), "source": paths, "source_kind": ["file"] * len(paths),
                         "offset": [None] * len(paths), "length": [None] * len(paths),
                         "text": [None] * len(paths)})
    pictures = Pictures(manifest, lambda **k: progress_bar(False, **k))
    verifier = Verifier(["image"] * len(paths), [None] * len(paths), pictures, NearConfig(), edit=False)
    a, b = np.triu_indices(len(paths), 1)
    here = image_pair_scores(verifier, a, b, workers=1)
    pooled = image_pair_scores(verifier, a, b, workers=2, min_pooled=1)
    assert np.array_equal(here[1], pooled[1]) and np.allclose(here[0], pooled[0])
    copies = {(i, j) for i, j in zip(a.tolist(), b.tolist()) if i // 3 == j // 3}
    assert {(i, j) for i, j, ok in zip(a.tolist(), b.tolist(), here[1].tolist()) if ok} == copies


@pytest.mark.parametrize("shape", [(64, 85), (256, 64), (3, 5), (1, 1)])
def test_separable_blur_equals_the_renormalised_gaussian_matrices(shape):
    a = np.random.default_rng(2).random(shape, dtype=np.float32)
    for sigma in (1.0, 4.0):
        reference = phash._gauss_matrix(shape[0], sigma) @ a @ phash._gauss_matrix(shape[1], sigma).T
        assert np.abs(phash._blur(a, sigma) - reference).max() < 2e-6
