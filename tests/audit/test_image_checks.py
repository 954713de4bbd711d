"""Image checks: each planted defect is flagged and its clean look-alike is not.

Pictures: scikit-image's astronaut, coffee, chelsea and rocket (scaled to 256 px), PIL drawings made
here. Decisions worth stating:

- blurry is judged against the image's own edges: a Gaussian-blurred photo is flagged; a smooth-gradient
  illustration with a crisp title and a soft-focus, low-contrast photo (sharp detail under a glow) are not.
- dark is underexposure: every tone scaled down, the brightest ones included. A night scene whose lights
  stay bright is a style and is not flagged.
- overexposed is a photo pushed until much of it clips, or washed out towards white; a white-background
  screenshot or chart, and a bright (high-key) photo that clips nothing, are not.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from curate.audit.image_checks import (
    IMAGE_CHECKS,
    ImageCheckConfig,
    check_pool,
    decode_features,
    flags,
    image_check_scores,
)
from curate.audit.outlier import knn_sims, outlier_scores

skdata = pytest.importorskip("skimage.data")


def _photo(name: str, side: int = 256) -> Image.Image:
    img = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    img.thumbnail((side, side), Image.LANCZOS)
    return img


def _enc(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _scores(*images) -> dict[str, np.ndarray]:
    return image_check_scores([im if isinstance(im, bytes) or im is None else _enc(im) for im in images], workers=1)


def _flags(*images) -> dict[str, np.ndarray]:
    return flags(_scores(*images))


def _gradient_poster() -> Image.Image:
    w, h = 300, 240
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx / w)[..., None]
    arr = np.array([30, 60, 160], np.float32) * (1 - t) + np.array([240, 120, 60], np.float32) * t
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.text((30, 30), "SUMMER NIGHTS", fill=(255, 255, 255), font=_font(30))
    d.ellipse((180, 120, 260, 200), fill=(250, 230, 90))
    return img


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _screenshot() -> Image.Image:
    img = Image.new("RGB", (400, 300), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 400, 34), fill=(240, 242, 245))
    d.text((10, 8), "curate - settings", fill=(20, 20, 25), font=_font(16))
    for i, y in enumerate(range(50, 280, 26)):
        d.text((16, y), "dataset images texts export history " * (1 + i % 2), fill=(20, 20, 25), font=_font(13))
    d.rounded_rectangle((290, 100, 385, 122), radius=6, fill=(40, 110, 220))
    return img


# -- blurry --------------------------------------------------------------------------------------------


def test_blurry_flags_a_blurred_photo_not_a_smooth_illustration_or_a_soft_focus_photo():
    astronaut = _photo("astronaut")
    blurred = astronaut.filter(ImageFilter.GaussianBlur(3))
    soft = ImageEnhance.Contrast(Image.blend(astronaut, astronaut.filter(ImageFilter.GaussianBlur(5)), 0.45)
                                 ).enhance(0.55)
    gradient_only = Image.fromarray(np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (200, 1)))
    f = _flags(blurred, astronaut, _gradient_poster(), soft, gradient_only)["blurry"]
    assert f.tolist() == [True, False, False, False, False]


def test_blur_score_grows_with_the_blur_and_ignores_contrast():
    coffee = _photo("coffee")
    s = _scores(*[coffee.filter(ImageFilter.GaussianBlur(r)) for r in (0, 1.5, 3, 5)],
                ImageEnhance.Contrast(coffee).enhance(0.3))["blurry"]
    assert s[0] < s[1] < s[2] < s[3]
    assert abs(s[4] - s[0]) < 0.1  # a low-contrast copy is not blurrier


# -- dark / overexposed --------------------------------------------------------------------------------


def _night(img: Image.Image) -> Image.Image:
    a = (np.asarray(img, dtype=np.float32) / 255.0) ** 2.2 * 0.3
    out = Image.fromarray((a * 255).astype(np.uint8))
    d = ImageDraw.Draw(out)
    for x, y in ((40, 60), (120, 30), (200, 90), (60, 180), (220, 200)):
        d.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 240, 200))  # street lights
    return out


def test_dark_flags_underexposure_not_a_night_scene_with_lights():
    coffee = _photo("coffee")
    dark = Image.fromarray((np.asarray(coffee, dtype=np.float32) * 0.22).astype(np.uint8))
    f = _flags(dark, coffee, _night(_photo("rocket")))["dark"]
    assert f.tolist() == [True, False, False]


def _push(img: Image.Image, clipped: float) -> Image.Image:
    lin = (np.asarray(img, dtype=np.float32) / 255.0) ** 2.2
    luma = lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    gain = 1.0 / np.quantile(luma, 1.0 - clipped)
    return Image.fromarray((np.clip(lin * gain, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8))


def test_overexposed_flags_blown_and_washed_out_photos_not_white_pages_or_high_key():
    chelsea = _photo("chelsea")
    washed = Image.blend(chelsea, Image.new("RGB", chelsea.size, (255, 255, 255)), 0.7)
    high_key = Image.fromarray((255 * (0.25 + 0.72 * (np.asarray(chelsea) / 255.0) ** 0.5)).astype(np.uint8))
    page = Image.fromarray(skdata.page()).convert("RGB")
    f = _flags(_push(chelsea, 0.6), washed, chelsea, _screenshot(), high_key, page)["overexposed"]
    assert f.tolist() == [True, True, False, False, False, False]


# -- low information, size, aspect, grayscale -----------------------------------------------------------


def test_low_information_flags_blanks_not_a_minimal_design_or_a_scanned_page():
    rng = np.random.default_rng(0)
    flat = Image.fromarray(np.clip(np.full((200, 300, 3), (90, 140, 200), np.float32)
                                   + rng.normal(0, 2.5, (200, 300, 3)), 0, 255).astype(np.uint8))
    ramp = Image.fromarray(np.tile(np.linspace(80, 200, 300, dtype=np.uint8), (200, 1))).convert("RGB")
    minimal = Image.new("RGB", (320, 240), (250, 250, 245))
    ImageDraw.Draw(minimal).text((100, 100), "Thanks!", fill=(20, 20, 20), font=_font(36))
    page = Image.fromarray(skdata.page()[20:120, 40:240])  # a few lines of a scanned page
    f = _flags(flat, ramp, minimal, page, _photo("rocket"))["low-information"]
    assert f.tolist() == [True, True, False, False, False]


def test_tiny_and_odd_aspect_use_the_header_size():
    rocket = _photo("rocket", 640)
    f = _flags(rocket.resize((40, 30)), rocket, rocket.crop((0, 100, 640, 180)), rocket.resize((320, 180)))
    assert f["tiny"].tolist() == [True, False, False, False]
    assert f["odd-aspect"].tolist() == [False, False, True, False]


def test_grayscale_flags_grey_pictures_however_stored_not_sepia_or_colour_on_black():
    astronaut = _photo("astronaut")
    grey = astronaut.convert("L")
    g = np.asarray(grey, dtype=np.float32)[..., None]
    sepia = Image.fromarray(np.clip(g * np.array([1.07, 0.92, 0.72], np.float32), 0, 255).astype(np.uint8))
    stars = Image.new("RGB", (256, 256), (0, 0, 0))
    d = ImageDraw.Draw(stars)
    for x, y, c in ((40, 40, (255, 120, 60)), (180, 60, (90, 140, 255)), (120, 200, (255, 230, 120))):
        d.ellipse((x - 5, y - 5, x + 5, y + 5), fill=c)
    f = _flags(_enc(grey.convert("RGB"), "JPEG", quality=85), grey, sepia, astronaut, stars)["grayscale"]
    assert f.tolist() == [True, True, False, False, False]


# -- decoding ----------------------------------------------------------------------------------------------


def test_undecodable_is_flagged_never_raised():
    good = _enc(_photo("coffee"), "JPEG", quality=90)
    s = _scores(good[: len(good) // 3], b"not an image at all", b"", None, good)
    f = flags(s)
    assert f["undecodable"].tolist() == [True, True, True, True, False]
    for name in IMAGE_CHECKS:
        assert np.isnan(s[name][:4]).all()
        assert not f[name][:4].any()


def test_exif_orientation_and_reduced_jpeg_decode():
    img = _photo("rocket", 640).resize((1600, 400))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    data = _enc(img, "JPEG", quality=90, exif=exif)
    feats = decode_features(data)
    assert (feats.width, feats.height) == (400, 1600)
    assert feats.luma.shape[0] > feats.luma.shape[1] and max(feats.luma.shape) == 256  # the calibrated side
    assert feats.rgb.shape[0] > feats.rgb.shape[1] and max(feats.rgb.shape[:2]) < 2 * 256  # box-reduced colour


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "1", "CMYK", "I;16"])
def test_every_mode_decodes(mode):
    img = _photo("chelsea")
    if mode == "I;16":
        arr = (np.asarray(img.convert("L"), dtype=np.uint16) * 257)
        conv = Image.fromarray(arr)
        data = _enc(conv, "PNG")
    else:
        conv = img.convert(mode)
        data = _enc(conv, "TIFF" if mode == "CMYK" else "PNG")
    s = _scores(data)
    assert s["undecodable"][0] == 0 and np.isfinite(s["blurry"][0])


def test_flags_follow_the_config_without_rescoring():
    s = _scores(_photo("coffee").filter(ImageFilter.GaussianBlur(1.5)))
    score = float(s["blurry"][0])
    assert flags(s, ImageCheckConfig(blurry=score))["blurry"][0]
    assert not flags(s, ImageCheckConfig(blurry=score + 0.01))["blurry"][0]


def test_worker_processes_give_the_same_scores():
    images = [_enc(_photo(n)) for n in ("astronaut", "coffee", "chelsea", "rocket")] + [b"not an image", None]
    one = image_check_scores(images, workers=1)
    with check_pool(2) as pool:
        assert pool is not None
        two = image_check_scores(iter(images), pool=pool)  # any iterable, in input order
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    assert two["undecodable"].tolist() == [0, 0, 0, 0, 1, 1]


# -- outlier (shared with texts) ----------------------------------------------------------------------------


def test_outlier_scores_flag_far_items_only():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32))
    clean = np.concatenate([c + 0.15 * rng.normal(size=(50, 32)) for c in centres])
    far = rng.normal(size=(4, 32)) * 1.0
    s = outlier_scores(knn_sims(np.concatenate([clean, far]), k=5))
    assert (s[-4:] >= 0.5).all()
    assert (s[:-4] >= 0.5).mean() <= 0.02
    assert np.isnan(outlier_scores(np.full((2, 3), -np.inf))).all()
