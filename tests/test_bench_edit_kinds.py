"""The edit-robustness matrix's edits (benchmarks/_edit_kinds.py) and copy rotation (benchmarks/_matrix_data.py):
every kind at every strength changes its input, stays within its stated bounds and is the same for the same seed."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _edit_kinds import IMAGE_EDITS, STRENGTHS, TEXT_EDITS  # noqa: E402
from _matrix_data import _changing_copy, assignments, cells  # noqa: E402

PROSE = ('The "quick" brown fox jumps over the lazy dog, and the dog returns the favour. It is a simple '
         "example - used to show every letter of the alphabet. Each value of the first list is set by default. "
         "Small files should be read in one call, large files in chunks.")


def _image() -> Image.Image:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:300]
    arr = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.float32) + rng.normal(0, 10, (240, 300, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_kind_counts_meet_the_matrix_brief():
    assert len(IMAGE_EDITS) >= 20 and len(TEXT_EDITS) >= 12
    for edits in (IMAGE_EDITS, TEXT_EDITS):
        for group, fn, names in edits.values():
            assert callable(fn) and group and len(names) == len(STRENGTHS)


@pytest.mark.parametrize("kind", list(IMAGE_EDITS))
def test_image_edit_changes_pixels_keeps_bounds_and_is_seeded(kind):
    img = _image()
    for level in range(3):
        fn = IMAGE_EDITS[kind][1]
        a, b = fn(img, level, random.Random(7)), fn(img, level, random.Random(7))
        assert a.mode == "RGB" and min(a.size) >= 40
        assert a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
        assert a.size != img.size or not np.array_equal(np.asarray(a), np.asarray(img))
        aspect = (a.width / a.height) / (img.width / img.height)
        if kind in ("stretch", "mark+stretch"):
            assert 1.0 < max(aspect, 1 / aspect) <= 1.25 + 1e-2
        if kind == "crop-offcentre":
            assert a.width * a.height >= 0.6 * img.width * img.height - 2 * (img.width + img.height)


def test_image_edits_get_stronger():
    img = _image()
    area = {lv: np.prod(IMAGE_EDITS["downscale"][1](img, lv, random.Random(0)).size) for lv in range(3)}
    assert area[0] > area[1] > area[2]
    diff = [np.abs(np.asarray(IMAGE_EDITS["noise"][1](img, lv, random.Random(0)), dtype=float)
                   - np.asarray(img, dtype=float)).mean() for lv in range(3)]
    assert diff[0] < diff[1] < diff[2]


@pytest.mark.parametrize("kind", list(TEXT_EDITS))
def test_text_edit_changes_text_and_is_seeded(kind):
    fn = TEXT_EDITS[kind][1]
    for level in range(3):
        a, b = fn(PROSE, level, random.Random(3)), fn(PROSE, level, random.Random(3))
        assert a == b and a != PROSE and a.strip()


def test_truncate_keeps_the_stated_share():
    for level, keep in enumerate((0.9, 0.75, 0.6)):
        out = TEXT_EDITS["truncate"][1](PROSE, level, random.Random(0))
        assert PROSE.startswith(out) and 0.8 * keep * len(PROSE) <= len(out) <= keep * len(PROSE) + 1


def test_rotation_gives_every_cell_its_copies_on_different_originals():
    for modality in ("images", "texts"):
        plan = assignments(60, modality, 4, seed=0)
        per_cell = Counter((k, lv) for _, k, lv in plan)
        assert set(per_cell) == set(cells(modality)) and set(per_cell.values()) == {4}
        originals = {}
        for g, k, lv in plan:
            originals.setdefault((k, lv), set()).add(g)
        assert all(len(gs) == 4 for gs in originals.values())
        assert plan == assignments(60, modality, 4, seed=0) != assignments(60, modality, 4, seed=1)


def test_an_edit_that_changes_nothing_passes_to_the_next_original():
    grey = _image().convert("L").convert("RGB")
    g, copy = _changing_copy([grey, _image()], 0, IMAGE_EDITS["greyscale"][1], 1, "s")
    assert g == 1 and not np.array_equal(np.asarray(copy), np.asarray(_image()))
    g, copy = _changing_copy(["no listed word here", PROSE], 0, TEXT_EDITS["synonyms"][1], 2, "s")
    assert g == 1 and copy != PROSE
