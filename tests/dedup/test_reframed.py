"""Re-framed image copies (borders, aspect changes, off-centre crops, thumbnails, overlays, two at once)
are found by ``near``; neighbouring tiles, other scans of one digit and renders of one template are not.

Ground truth is planted: copies made here from photos that scikit-image and scikit-learn ship, each
edit on its own original, so a pair found for the wrong reason shows as a wrong pair.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from curate.dedup import geometric
from curate.dedup import image_verify as iv
from curate.dedup.borders import border_box
from curate.dedup.candidates import WINDOW_BANDS, window_pairs
from curate.dedup.near import NearConfig, NearDedup
from curate.dedup.phash import window_hashes
from curate.ingest import ingest
from curate.runner import run_stage
from curate.workspace import Workspace


def photo(name: str, side: int = 192) -> Image.Image:
    from skimage import data
    from sklearn.datasets import load_sample_image

    arr = load_sample_image(name[8:] + ".jpg") if name.startswith("sklearn:") else getattr(data, name)()
    img = Image.fromarray(arr).convert("RGB")
    img.thumbnail((side, side))
    return img


def jpeg(img: Image.Image, quality: int = 85) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def pad_square(img: Image.Image, colour=(0, 0, 0)) -> Image.Image:
    w, h = img.size
    out = Image.new("RGB", (max(w, h), max(w, h)), colour)
    out.paste(img, ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
    return out


def stretch(img: Image.Image, f: float) -> Image.Image:
    return img.resize((round(img.size[0] * f), img.size[1]), Image.BILINEAR)


def crop(img: Image.Image, area: float, fx: float, fy: float) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * area**0.5), round(h * area**0.5)
    x, y = round((w - cw) * fx), round((h - ch) * fy)
    return img.crop((x, y, x + cw, y + ch))


def shrink(img: Image.Image, f: float) -> Image.Image:
    return img.resize((round(img.size[0] * f), round(img.size[1] * f)), Image.BILINEAR)


def caption(img: Image.Image, share: float = 0.1) -> Image.Image:
    img = img.copy()
    w, h = img.size
    band = round(h * share)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h - band, w, h), fill=(20, 20, 20))
    draw.text((4, h - band + 2), "(c) example.com", fill=(255, 255, 255))
    return img


def watermark(img: Image.Image, share: float = 0.1) -> Image.Image:
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    bw, bh = round(w * 0.45), round(h * share / 0.45)
    x, y = (w - bw) // 2, (h - bh) // 2
    draw.rectangle((x, y, x + bw, y + bh), fill=(255, 255, 255, 110))
    draw.text((x + 4, y + bh // 3), "WATERMARK", fill=(0, 0, 0, 200))
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def portrait(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.crop(((w - h * 2 // 3) // 2, 0, (w - h * 2 // 3) // 2 + h * 2 // 3, h))


# kind: (original's photo, how the original is cut from it, the edit)
EDITS = {
    "letterbox": ("astronaut", lambda im: im.crop((0, 30, 192, 162)), lambda im: pad_square(im)),
    "pillarbox": ("coffee", portrait, lambda im: jpeg(pad_square(im))),
    "coloured-border": ("chelsea", None, lambda im: jpeg(ImageOps.expand(im, border=18, fill=(40, 90, 200)))),
    "stretch10": ("rocket", None, lambda im: jpeg(stretch(im, 1.1))),
    "stretch25": ("immunohistochemistry", None, lambda im: jpeg(stretch(im, 0.75))),
    "crop60": ("sklearn:china", None, lambda im: jpeg(crop(im, 0.6, 1.0, 0.0))),
    "thumb6": ("camera", lambda im: photo("camera", 256), lambda im: jpeg(shrink(im, 1 / 6))),
    "watermark": ("retina", None, lambda im: jpeg(watermark(im))),
    "caption": ("sklearn:flower", None, lambda im: jpeg(caption(im))),
    "crop+stretch": ("coins", None, lambda im: jpeg(stretch(crop(im, 0.7, 0.0, 1.0), 1.2))),
    "letterbox+thumb": ("hubble_deep_field", lambda im: im.crop((0, 20, 192, 150)),
                        lambda im: pad_square(shrink(im, 0.32))),
}


@pytest.fixture(scope="module")
def reframed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reframed")
    folder = root / "img"
    folder.mkdir()
    planted = {}
    for kind, (name, cut, edit) in EDITS.items():
        original = photo(name) if cut is None else cut(photo(name))
        original.save(folder / f"{kind}-original.png")
        edit(original).save(folder / f"{kind}-copy.png")
        planted[kind] = frozenset({f"img/{kind}-original.png", f"img/{kind}-copy.png"})
    ws = Workspace(str(root / "ws"))
    ingest(ws, [str(folder)], progress=False)
    result = run_stage(ws, NearDedup(), NearConfig(), progress=False)
    removed = {frozenset((r["id"], r["duplicate_of"])) for r in result.table.to_pylist() if not r["kept"]}
    return planted, removed


@pytest.mark.parametrize("kind", list(EDITS))
def test_near_finds_each_reframed_copy(reframed_run, kind):
    planted, removed = reframed_run
    assert planted[kind] in removed


def test_near_removes_nothing_but_the_planted_reframed_copies(reframed_run):
    planted, removed = reframed_run
    assert removed <= set(planted.values())


def scan(pixels: np.ndarray, side: int = 96) -> Image.Image:
    grey = Image.fromarray((np.clip(pixels / 16.0, 0, 1) * 255).astype(np.uint8), "L")
    return grey.resize((side, side), Image.BICUBIC).convert("RGB")


def slide(title: str, lines: list[str], icon: int) -> Image.Image:
    """A render of one slide template: header and footer bars, bullets, an icon."""
    img = Image.new("RGB", (320, 240), (245, 245, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 320, 40), fill=(30, 60, 120))
    draw.text((12, 14), title, fill=(255, 255, 255))
    draw.rectangle((0, 222, 320, 240), fill=(200, 200, 200))
    draw.text((8, 226), "ACME Corp  |  Quarterly review", fill=(60, 60, 60))
    for k, line in enumerate(lines):
        y = 56 + 22 * k
        draw.ellipse((14, y + 3, 20, y + 9), fill=(30, 60, 120))
        draw.text((28, y), line, fill=(20, 20, 20))
    box = (230, 60, 300, 130)
    (draw.ellipse if icon == 0 else draw.rectangle)(box, fill=(200, 80, 40) if icon == 0 else (40, 160, 80))
    return img


SLIDES = [("Results", ["Revenue grew 12% year on year", "Margins held at 31%", "Two new regions opened"], 0),
          ("Roadmap", ["Ship the mobile app in Q3", "Hire four engineers", "Retire the legacy API"], 1),
          ("Results", ["Revenue grew 9% year on year", "Margins fell to 27%", "One region closed"], 1),
          ("Team", ["Alice leads design", "Bob leads platform", "Carol joins in May"], 1)]


@pytest.fixture(scope="module")
def look_alike_run(tmp_path_factory):
    """Neighbouring tiles of two photos, the most alike scans of four digits, four renders of one
    slide template, and one planted copy of a slide (cropped and stretched)."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("look-alikes") / "img"
    folder.mkdir()
    for name in ("gravel", "chelsea"):
        big = photo(name, 384)
        t = min(big.size) // 2
        for k, (x, y) in enumerate(((0, 0), (t, 0), (0, t), (t, t))):
            big.crop((x, y, x + t, y + t)).save(folder / f"tile-{name}-{k}.png")
    digits = load_digits()
    for d in (0, 2, 4, 6):
        rows = np.flatnonzero(digits.target == d)[:30]
        x = digits.images[rows].reshape(len(rows), -1)
        x = x - x.mean(axis=1, keepdims=True)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        corr = x @ x.T
        np.fill_diagonal(corr, -1)
        i, j = np.unravel_index(np.argmax(corr), corr.shape)
        scan(digits.images[rows[i]]).save(folder / f"digit-{d}-a.png")
        scan(digits.images[rows[j]]).save(folder / f"digit-{d}-b.png")
    for k, (title, lines, icon) in enumerate(SLIDES):
        slide(title, lines, icon).save(folder / f"slide-{k}.png")
    jpeg(stretch(crop(slide(*SLIDES[0]), 0.7, 1.0, 1.0), 1.2)).save(folder / "slide-0-copy.png")
    ws = Workspace(str(folder.parent / "ws"))
    ingest(ws, [str(folder)], progress=False)
    result = run_stage(ws, NearDedup(), NearConfig(), progress=False)
    return {frozenset((r["id"], r["duplicate_of"])) for r in result.table.to_pylist() if not r["kept"]}


@pytest.mark.parametrize("guard", ["tile", "digit", "slide"])
def test_near_does_not_match_look_alikes(look_alike_run, guard):
    wrong = {p for p in look_alike_run if any(i.split("/")[-1].startswith(guard) for i in p)}
    if guard == "slide":  # the planted copy of slide 0 is the one pair allowed
        wrong -= {frozenset({"img/slide-0.png", "img/slide-0-copy.png"})}
    assert not wrong


def test_a_reframed_copy_of_a_template_render_is_still_found(look_alike_run):
    assert frozenset({"img/slide-0.png", "img/slide-0-copy.png"}) in look_alike_run


@pytest.mark.xfail(strict=True, reason="known limit: renders that differ in under 15% of the area (a short "
                   "title and three short lines) look like an overlaid copy to the geometric check")
def test_renders_differing_in_a_small_area_are_not_matched():
    a = iv.image_view(slide(*SLIDES[0]))
    b = iv.image_view(slide("Team", ["Alice leads design", "Bob leads platform", "Carol joins in May"], 0))
    score = iv.reframed_similarity(a, b)
    assert score is None or score < 0.9


def test_consensus_rejects_template_renders_and_neighbouring_tiles_directly():
    a, b = iv.image_view(slide(*SLIDES[0])), iv.image_view(slide(*SLIDES[2]))  # same layout, other text
    score = iv.reframed_similarity(a, b)
    assert score is None or score < 0.9
    big = photo("astronaut", 256)
    left, right = iv.image_view(big.crop((0, 0, 128, 128))), iv.image_view(big.crop((128, 0, 256, 128)))
    assert iv.reframed_similarity(left, right) is None
    copy = iv.image_view(jpeg(stretch(crop(big, 0.65, 0.2, 0.9), 0.85)))
    assert iv.reframed_similarity(iv.image_view(big), copy) >= 0.97


def test_border_box_finds_letterbox_pillarbox_and_coloured_frames():
    img = photo("astronaut", 120)  # 120 x 120
    assert border_box(img) == (0, 0, 120, 120)
    boxed = pad_square(img.crop((0, 20, 120, 100)))  # letterbox: 20 rows above and below
    assert border_box(boxed) == (0, 20, 120, 100)
    framed = jpeg(ImageOps.expand(img, border=(7, 11, 7, 11), fill=(200, 30, 30)))
    left, top, right, bottom = border_box(framed)
    # JPEG subsamples colour: the frame's edge smears by a pixel or two
    assert abs(left - 7) <= 3 and abs(top - 11) <= 3 and abs(right - 127) <= 3 and abs(bottom - 131) <= 3
    flat = Image.new("RGB", (50, 40), (90, 90, 90))
    assert border_box(flat) == (0, 0, 50, 40)  # featureless: left whole


def test_window_hashes_pair_an_off_centre_crop_and_a_letterbox_with_their_originals():
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "sklearn:china")
    originals = [photo(n, 160) for n in names]
    copies = [jpeg(crop(originals[0], 0.6, 1.0, 0.0)), pad_square(originals[1], (255, 255, 255)),
              jpeg(crop(originals[2], 0.6, 0.5, 1.0)), jpeg(stretch(crop(originals[3], 0.7, 0.0, 1.0), 1.1))]
    windows = np.stack([window_hashes(im) for im in originals + copies])
    pairs = {tuple(p) for p in window_pairs(windows, 12).tolist()}
    planted = {(k, len(names) + k) for k in range(len(copies))}
    assert planted <= pairs


def test_keypoints_are_capped():
    img = np.asarray(photo("gravel", 256).convert("L"))
    config = geometric.ConsensusConfig(max_keypoints=50)
    assert 0 < len(geometric.keypoints(img, config).points) <= 50


def test_window_pairs_find_every_pair_within_the_guaranteed_distance_against_brute_force():
    rng = np.random.default_rng(5)
    n, per = 60, 7
    windows = rng.integers(0, 2**63, (n, per), dtype=np.int64).astype(np.uint64)
    for k in range(0, n, 3):  # plant: item k+1's trimmed hash is near one of item k's hashes
        flips = rng.choice(64, size=int(rng.integers(0, WINDOW_BANDS)), replace=False)
        windows[k + 1, 0] = windows[k, int(rng.integers(0, per))] ^ np.uint64(sum(1 << int(f) for f in flips))
    got = {tuple(p) for p in window_pairs(windows, WINDOW_BANDS - 1).tolist()}
    want = set()
    for i in range(n):
        for j in range(n):
            if i != j and min(bin(int(windows[i, 0]) ^ int(h)).count("1") for h in windows[j]) <= WINDOW_BANDS - 1:
                want.add((min(i, j), max(i, j)))
    assert len(want) >= n // 3 and got == want
