"""The image copy check of ``near``/``fuzzy``: tone mapping, per-image calibrated bar, candidate cap.

Ground truth is planted: copies made here from real scans (scikit-learn's digits) and a real
photo (scikit-image's camera), and look-alike scans picked by their raw 8 x 8 correlation.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from curate.dedup import image_verify as iv
from curate.dedup.candidates import nearest_per_item
from curate.dedup.near import NearConfig, NearDedup
from curate.ingest import ingest
from curate.runner import run_stage
from curate.workspace import Workspace


def scan(pixels: np.ndarray, side: int = 96) -> Image.Image:
    grey = Image.fromarray((np.clip(pixels / 16.0, 0, 1) * 255).astype(np.uint8), "L")
    return grey.resize((side, side), Image.BICUBIC).convert("RGB")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def look_alikes(digits):
    """Pairs of different scans of one digit whose raw pixels correlate >= 0.93 (as alike as copies)."""
    out = []
    for d in (0, 1, 7):
        rows = np.flatnonzero(digits.target == d)[:60]
        x = digits.images[rows].reshape(len(rows), -1)
        x = x - x.mean(axis=1, keepdims=True)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        corr = x @ x.T
        np.fill_diagonal(corr, -1)
        i, j = np.unravel_index(np.argmax(corr), corr.shape)
        assert corr[i, j] >= 0.93
        out.append((rows[i], rows[j]))
    return out


def test_a_brightened_clipped_copy_is_matched_through_tone_mapping(digits):
    img = scan(digits.images[5])
    bright = ImageEnhance.Brightness(img).enhance(1.25)  # clips the strokes at 255
    a, b = iv.image_view(img), iv.image_view(bright)
    from curate.dedup.phash import aligned_similarity

    assert aligned_similarity(a.features, b.features) < 0.99  # clipping costs the plain score
    assert iv.copy_similarity(a, b) >= 0.995
    assert iv.copy_similarity(b, a) >= 0.995
    mapped = iv.tone_mapped(b.grey, a.grey)  # monotone: order of levels kept
    order = np.argsort(b.grey, axis=None, kind="stable")
    assert np.all(np.diff(mapped.ravel()[order]) >= -1e-6)


def test_look_alike_scans_fail_their_bar_and_their_copies_pass(digits, look_alikes):
    for i, j in look_alikes:
        a, b = scan(digits.images[i]), scan(digits.images[j])
        va, vb = iv.image_view(a), iv.image_view(b)
        bar = iv.pair_bar(iv.copy_floor(a, va), iv.copy_floor(b, vb), 0.9)
        assert bar > 0.95  # smooth scans: every copy of them scores high, so the bar is raised
        assert iv.copy_similarity(va, vb) < bar
        buf = io.BytesIO()
        a.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(5, resample=Image.BILINEAR).save(buf, "JPEG", quality=50)
        copy = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        vc = iv.image_view(copy)
        copy_bar = iv.pair_bar(iv.copy_floor(a, va), iv.copy_floor(copy, vc), 0.9)
        assert iv.copy_similarity(va, vc, copy_bar) >= copy_bar


def test_a_textured_photo_keeps_the_base_bar_and_its_rotated_crop_passes():
    from skimage import data

    photo = Image.fromarray(data.camera()).convert("RGB").crop((100, 50, 356, 306))
    w, h = photo.size
    copy = photo.rotate(7, resample=Image.BILINEAR).crop((14, 14, w - 14, h - 14))
    vp, vc = iv.image_view(photo), iv.image_view(copy)
    floor = iv.copy_floor(photo, vp)
    scan_floor = iv.copy_floor(scan(np.eye(8) * 16), iv.image_view(scan(np.eye(8) * 16)))
    assert floor < scan_floor  # texture loses more under the standard change than a smooth scan
    bar = iv.pair_bar(floor, iv.copy_floor(copy, vc), 0.9)
    assert iv.copy_similarity(vp, vc, bar) >= bar
    assert iv.pair_bar(0.5, 0.99, 0.9) == 0.9 and iv.pair_bar(1.0, 1.0, 0.9) == iv.MAX_BAR


def test_nearest_per_item_keeps_each_items_k_nearest_against_brute_force():
    rng = np.random.default_rng(3)
    n = 40
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.3])
    distance = rng.integers(0, 13, len(pairs))
    for k in (1, 3, 8):
        got = {tuple(p) for p in nearest_per_item(pairs, distance, k).tolist()}
        want = set()
        for item in range(n):
            mine = [(d, t, tuple(p)) for t, (p, d) in enumerate(zip(pairs.tolist(), distance.tolist())) if item in p]
            want |= {p for _, _, p in sorted(mine)[:k]}
        assert got == want


def test_near_on_look_alike_scans_removes_only_the_planted_copies(tmp_path, digits):
    """Scans of three digits, look-alikes included, four of them copied: exactly the planted pairs
    are matched (either member may stay where the copy is not degraded)."""
    folder = tmp_path / "img"
    folder.mkdir()
    rows = np.concatenate([np.flatnonzero(digits.target == d)[:12] for d in (0, 1, 7)])
    for r in rows.tolist():
        scan(digits.images[r]).save(folder / f"s{r:04d}.png")
    makers = {"flip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
              "bright": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
              "half": lambda im: im.resize((48, 48), Image.BILINEAR),
              "rot5": lambda im: im.rotate(5, resample=Image.BILINEAR)}
    planted = {}
    for (name, make), r in zip(makers.items(), rows[::9].tolist()):
        make(scan(digits.images[r])).save(folder / f"z{name}.png")
        planted[f"img/z{name}.png"] = f"img/s{r:04d}.png"
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(folder)], progress=False)
    result = run_stage(ws, NearDedup(), NearConfig(), progress=False)
    removed = {r["id"]: r["duplicate_of"] for r in result.table.to_pylist() if not r["kept"]}
    assert {frozenset(p) for p in removed.items()} == {frozenset(p) for p in planted.items()}
    assert removed["img/zhalf.png"] == planted["img/zhalf.png"]  # the degraded copy goes, not its original
