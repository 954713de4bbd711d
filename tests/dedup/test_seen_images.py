"""Images as a person sees them (EXIF orientation, transparency, reduced JPEG decoding) and the
featureless guard of ``fuzzy``/``near`` verification.

Ground truth is planted: twins and look-alikes are built here from scikit-learn's sample photos,
flat colours and pictures drawn only in an alpha channel; expected sizes, pixels and colour
differences are computed here from the planted images, not read back from the code under test.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from curate.dedup import featureless as fl
from curate.dedup.near import NearConfig, NearDedup
from curate.ingest import ingest
from curate.io.images import BACKGROUND, INK, decode_image, open_image
from curate.io.tables import read_table
from curate.runner import run_stage
from curate.workspace import Workspace

ORIENTATION = 0x0112


def encoded(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def tagged(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encoded(img, "JPEG", quality=95, exif=exif.tobytes())


def alpha_only(picture: Image.Image, rgb: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """A flat ``rgb`` image whose picture lives in its alpha channel alone."""
    out = Image.new("RGBA", picture.size, (*rgb, 255))
    out.putalpha(picture.convert("L"))
    return out


def dedup(tmp_path, files: dict[str, bytes]):
    """Ingest ``files`` and run ``fuzzy``: (decision rows by id, verified pairs as {a, b} sets)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(folder)], progress=False)
    return ws, run_stage(ws, NearDedup(), NearConfig(signals=("exact", "phash")), progress=False)


def rows(result) -> dict[str, dict]:
    return {r["id"].rsplit("/", 1)[-1]: r for r in result.table.to_pylist()}


def matched(result) -> set[frozenset[str]]:
    """Pairs of file names that share a duplicate group."""
    by_id = rows(result)
    groups: dict[int, set[str]] = {}
    for name, r in by_id.items():
        if r["group"] is not None:
            groups.setdefault(r["group"], set()).add(name)
    return {frozenset((a, b)) for g in groups.values() for a in g for b in g if a < b}


# -- the decoder ---------------------------------------------------------------------------


def test_exif_orientation_is_applied_and_the_size_is_upright(photos):
    upright = photos["temple"]  # 200 x 150
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes, 150 x 200
    decoded = decode_image(tagged(stored, 6))
    assert decoded.image.size == upright.size == (decoded.width, decoded.height) == (200, 150)
    diff = np.abs(np.asarray(decoded.image, np.float32) - np.asarray(upright, np.float32)).mean()
    assert diff < 3.0  # JPEG quality 95 of the same pixels
    assert open_image(encoded(stored, "JPEG", quality=95)).size == (150, 200)  # no tag: as stored


TURNS = [(3, Image.Transpose.ROTATE_180), (8, Image.Transpose.ROTATE_270), (2, Image.Transpose.FLIP_LEFT_RIGHT)]


@pytest.mark.parametrize(("orientation", "stored_as"), TURNS)
def test_every_orientation_tag_is_undone(photos, orientation, stored_as):
    upright = photos["trees"]
    seen = open_image(tagged(upright.transpose(stored_as), orientation))  # the camera stored it turned, tagged
    assert seen.size == upright.size
    assert np.abs(np.asarray(seen, np.float32) - np.asarray(upright, np.float32)).mean() < 3.0


def test_a_broken_exif_block_keeps_the_pixels_and_deep_greys_are_scaled(photos):
    data = bytearray(tagged(photos["trees"], 6))
    at = data.find(b"Exif\0\0")
    data[at + 6:at + 14] = b"\xff" * 8  # the TIFF header of the EXIF block: garbage
    assert open_image(bytes(data)).size in (photos["trees"].size, photos["trees"].size[::-1])
    ramp = (np.arange(64, dtype=np.uint16)[None, :] * 1024).repeat(4, axis=0)  # 0 .. 64512
    deep = Image.fromarray(ramp.astype(np.int32), "I").convert("I;16")
    seen = np.asarray(open_image(encoded(deep), mode="L"), np.float32)
    assert seen.shape == (4, 64) and np.allclose(seen[0], ramp[0].astype(np.float64) * 255 / 65535, atol=1)


def test_transparency_is_composited_on_the_background_so_an_alpha_picture_is_seen(photos):
    grey = np.asarray(photos["bloom"].convert("L"), np.float32) / 255.0
    for rgb in ((0, 0, 0), (40, 90, 200)):
        seen = np.asarray(open_image(encoded(alpha_only(photos["bloom"], rgb))), np.float32)
        expected = grey[..., None] * np.array(rgb, np.float32) + (1 - grey[..., None]) * np.array(BACKGROUND)
        assert np.abs(seen - expected).max() <= 1.0  # alpha compositing rounds to the nearest level
    # drawn in white, the white background would erase it: it is composited on black instead
    white = np.asarray(open_image(encoded(alpha_only(photos["bloom"], (255, 255, 255)))), np.float32)
    expected = grey[..., None] * 255.0 + (1 - grey[..., None]) * np.array(INK, np.float32)
    assert np.abs(white - expected).max() <= 1.0
    # a palette image with a transparent index
    pal = Image.new("P", (4, 2), 0)
    pal.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 1)
    seen = np.asarray(open_image(encoded(pal, transparency=0)))
    assert tuple(seen[0, 0]) == (200, 0, 0) and tuple(seen[1, 1]) == BACKGROUND


def test_a_large_jpeg_decodes_at_a_reduced_scale_and_keeps_its_full_size():
    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (1600, 2400, 3), dtype=np.uint8))
    data = encoded(big, "JPEG", quality=70)
    decoded = decode_image(data, min_side=256)
    # the largest DCT scale in (1/2, 1/4, 1/8) keeping both sides >= 256: 1/8 gives 200 px, 1/4 gives 400
    assert decoded.image.size == (600, 400)
    assert (decoded.width, decoded.height) == (2400, 1600)
    assert open_image(data).size == (2400, 1600)  # no min_side: full size
    assert open_image(encoded(big.resize((480, 320)), "PNG"), min_side=64).size == (480, 320)  # PNG: no draft


@pytest.mark.parametrize("data", [b"", b"not an image", encoded(Image.new("RGB", (64, 64)), "JPEG")[:200]])
def test_undecodable_bytes_are_a_value_error(data):
    with pytest.raises(ValueError):
        open_image(data)


# -- featureless measure -------------------------------------------------------------------


def test_featureless_means_near_uniform_not_dark_nor_smooth(photos):
    rng = np.random.default_rng(1)
    noisy = np.clip(128 + rng.normal(0, 3, (300, 400, 3)), 0, 255).astype(np.uint8)
    ramp = np.linspace(0.45, 0.55, 400)[None, :, None] * np.ones((300, 1, 3)) * 255
    dark = Image.fromarray((np.asarray(photos["temple"], np.float32) * 0.05).round().astype(np.uint8))
    featureless = {"solid": Image.new("RGB", (90, 60), (200, 30, 30)), "1x1": Image.new("RGB", (1, 1), (9, 9, 9)),
                   "noisy grey": Image.fromarray(noisy)}
    featured = {"faint ramp": Image.fromarray(ramp.astype(np.uint8)), "dark photo": dark,
                "2x1": Image.fromarray(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8))}
    for name, img in featureless.items():
        assert fl.uniformity(img).featureless, name
    for name, img in featured.items():
        assert not fl.uniformity(img).featureless, name
    u = fl.uniformity(featureless["solid"])
    assert np.allclose(u.colour, np.array([200, 30, 30]) / 255) and u.spread < 1e-9


def test_a_featureless_pair_is_decided_by_colour():
    red = fl.uniformity(Image.new("RGB", (40, 30), (200, 30, 30)))
    close = fl.uniformity(Image.new("RGB", (4, 3), (203, 30, 28)))  # 3 levels off: within 5
    far = fl.uniformity(Image.new("RGB", (40, 30), (200, 30, 60)))  # 30 levels off
    near_far = fl.uniformity(Image.new("RGB", (40, 30), (200, 30, 38)))  # 8 levels: only the loose bar
    score, ok = fl.featureless_pair(red, close)
    assert ok and score == pytest.approx(1 - 3 / 255)
    assert fl.featureless_pair(red, far) == (pytest.approx(1 - 30 / 255), False)
    assert not fl.featureless_pair(red, near_far)[1] and fl.featureless_pair(red, near_far, loose=True)[1]
    textured = fl.Uniformity(red.colour, 0.2)
    assert fl.featureless_pair(red, textured) == (0.0, False)
    assert fl.featureless_pair(textured, textured) is None  # the aligned check decides


# -- through fuzzy dedup -------------------------------------------------------------------


def test_flat_images_match_only_their_own_colour(tmp_path):
    files = {
        "red.png": encoded(Image.new("RGB", (80, 60), (200, 30, 30))),
        "red-copy.jpg": encoded(Image.new("RGB", (64, 48), (200, 30, 30)), "JPEG", quality=60),
        "blue.png": encoded(Image.new("RGB", (80, 60), (30, 30, 200))),
        "grey.png": encoded(Image.new("RGB", (80, 60), (128, 128, 128))),
        "green-1x1.png": encoded(Image.new("RGB", (1, 1), (10, 200, 30))),
        "green-3x2.png": encoded(Image.new("RGB", (3, 2), (10, 200, 30))),
        "white-1x1.png": encoded(Image.new("RGB", (1, 1), (255, 255, 255))),
        "black-1x1.png": encoded(Image.new("RGB", (1, 1), (0, 0, 0))),
    }
    _, result = dedup(tmp_path, files)
    assert matched(result) == {frozenset(("red.png", "red-copy.jpg")), frozenset(("green-1x1.png", "green-3x2.png"))}
    assert result.table.num_rows == len(files)
    # the perceptual hash proposed flat images of other colours too; verification refused them
    assert result.meta["candidates_by_signal"]["phash"] > result.meta["verified"] == 2


def test_an_alpha_only_picture_matches_its_twin_not_another_alpha_picture(tmp_path, photos):
    bloom = alpha_only(photos["bloom"])
    twin = alpha_only(photos["bloom"].resize((224, 168), Image.BILINEAR))  # a thumbnail copy, other bytes
    other = alpha_only(photos["temple"])
    third = alpha_only(photos["trees"], (255, 255, 255))  # drawn in white
    files = {"bloom.png": encoded(bloom), "bloom-small.png": encoded(twin), "temple.png": encoded(other),
             "trees.png": encoded(third)}
    _, result = dedup(tmp_path, files)
    assert matched(result) == {frozenset(("bloom.png", "bloom-small.png"))}


def test_an_exif_rotated_twin_matches_upright_not_its_raw_pixels(tmp_path, photos):
    upright = photos["temple"]
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    files = {"upright.jpg": encoded(upright, "JPEG", quality=90), "tagged.jpg": tagged(stored, 6),
             "raw.jpg": encoded(stored, "JPEG", quality=85), "lake.jpg": encoded(photos["lake"], "JPEG")}
    _, result = dedup(tmp_path, files)
    assert matched(result) == {frozenset(("upright.jpg", "tagged.jpg"))}


def test_an_undecodable_image_is_never_a_duplicate_and_every_id_is_decided(tmp_path, photos):
    good = encoded(photos["trees"], "JPEG", quality=90)
    files = {"trees.jpg": good, "trees-copy.jpg": encoded(photos["trees"], "JPEG", quality=60),
             "broken.jpg": good[: len(good) // 2], "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
             "later-broken.jpg": encoded(photos["trees"], "JPEG", quality=75),
             "flat.png": encoded(Image.new("RGB", (8, 8), (0, 0, 0)))}
    folder = tmp_path / "images"
    ws, _ = dedup(tmp_path, files)
    (folder / "later-broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 100)  # unreadable when dedup decodes
    (folder / "flat.png").write_bytes(b"")
    result = run_stage(ws, NearDedup(), NearConfig(signals=("exact", "phash"), image_similarity=0.9), progress=False)
    by_name = rows(result)
    assert set(by_name) == set(files)
    assert matched(result) == {frozenset(("trees.jpg", "trees-copy.jpg"))}
    for name in ("broken.jpg", "garbage.png"):  # quarantined at ingest
        assert not by_name[name]["kept"] and by_name[name]["reason"].startswith("quarantined")
    for name in ("later-broken.jpg", "flat.png"):  # decoded at dedup: never matched, kept
        assert by_name[name]["kept"] and by_name[name]["duplicate_of"] is None
    pairs = read_table(ws.decisions("dedup").join(f"{result.run_id}-pairs.parquet"))
    ends = {n.rsplit("/", 1)[-1] for n in pairs.column("a").to_pylist() + pairs.column("b").to_pylist()}
    assert ends == {"trees.jpg", "trees-copy.jpg"}
