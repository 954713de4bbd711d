"""Data for bench_audit_checks.py: clean items of several origins and planted defects, all built offline
from what installed packages ship (scikit-image and scikit-learn pictures, PIL drawings, docstrings,
package metadata, licence files, gettext catalogues of the system).

Images, four origins (every clean item also gets one copy per defect kind):

- ``photos`` (tuning origin): crops of scikit-image's astronaut, coffee, chelsea, rocket, camera,
  brick, coins and moon at several scales and aspects, 200-640 px, JPEG q80-95 or PNG.
- ``photos-heldout``: the same treatment of scikit-learn's china and flower and scikit-image's
  retina, immunohistochemistry, motorcycle, hubble deep field, gravel, grass and clock.
- ``scans``: handwritten digits (scikit-learn) printed as ink on tinted paper and scanned (blurred a
  little, noise, slight rotation), crops of scikit-image's text and page scans, the horse silhouette,
  the Shepp-Logan phantom, binary blobs.
- ``synthetic``: PIL drawings: shapes on gradients, bar and line charts, light and dark UI
  screenshots, pastel flat illustrations, smooth-gradient posters with a crisp title, minimal designs
  (one word or one icon on a flat background).

Clean look-alikes are part of the clean sets (variant in the name): night scenes (the photo darkened
with lights kept), soft-focus (sharp + blurred blend, low contrast), low-contrast, high-key (bright,
not clipped), dark-mode screenshots, pastel illustrations, smooth gradients with crisp shapes.

Planted image defects: ``blurry`` (Gaussian, sigma 1.5-4 px at 256 px), ``dark`` (tones x 0.1-0.3),
``overexposed`` (photos: exposure pushed until 50-75% of the picture clips, or blended 55-80% towards
white; scans and drawings are always blended: pushing a white page clips nothing new), ``low-information``
(contrast collapsed to 2-5%, a flat colour with noise, or a smooth two-colour gradient with noise),
``tiny`` (longest side 16-60 px), ``odd-aspect`` (a 3.5:1 to 8:1 strip), ``grayscale`` (stored as RGB
or as an L-mode file), ``undecodable`` (truncated or random bytes).
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

IMAGE_DEFECTS = ("blurry", "dark", "overexposed", "low-information", "tiny", "odd-aspect", "grayscale", "undecodable")
PHOTOS = {
    "photos": ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "coins", "moon"),
    "photos-heldout": ("sklearn:china", "sklearn:flower", "retina", "immunohistochemistry", "stereo_motorcycle",
                       "hubble_deep_field", "gravel", "grass", "clock"),
}


# -- clean images -----------------------------------------------------------------------------------------------


def _photo(name: str) -> Image.Image:
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name.split(":")[1] + ".jpg")).convert("RGB")
    from skimage import data

    arr = getattr(data, name)()
    arr = arr[0] if isinstance(arr, tuple) else arr
    return Image.fromarray(arr).convert("RGB")


def _random_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    aspect = rng.choice((1.0, 4 / 3, 3 / 4, 3 / 2, 16 / 9, 2 / 3))
    scale = rng.uniform(0.45, 1.0)
    cw = min(w, int(min(w, h * aspect) * scale))
    ch = min(h, int(cw / aspect))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = img.crop((x, y, x + cw, y + ch))
    long_side = rng.randint(200, 640)
    f = long_side / max(crop.size)
    if f < 1:
        crop = crop.resize((max(1, round(crop.width * f)), max(1, round(crop.height * f))), Image.LANCZOS)
    return crop


def _night(img: Image.Image, rng: random.Random) -> Image.Image:
    """A night scene: tones pushed far down, a few lights (windows, lamps, stars) at full brightness."""
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = (a ** 2.2) * 0.35
    out = Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
    d = ImageDraw.Draw(out)
    w, h = out.size
    for _ in range(rng.randint(4, 14)):
        r = rng.randint(1, max(2, w // 60))
        x, y = rng.randint(0, w - 1), rng.randint(0, h - 1)
        colour = rng.choice(((255, 240, 200), (255, 255, 255), (255, 210, 120)))
        d.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return out.filter(ImageFilter.GaussianBlur(0.6))


def _soft_focus(img: Image.Image, rng: random.Random) -> Image.Image:
    """Orton-style soft focus: sharp and blurred blended, contrast lowered."""
    scale = max(img.size) / 256
    blurred = img.filter(ImageFilter.GaussianBlur(rng.uniform(3, 6) * scale))
    mixed = Image.blend(img, blurred, rng.uniform(0.35, 0.55))
    return ImageEnhance.Contrast(mixed).enhance(rng.uniform(0.5, 0.7))


def _low_contrast(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(rng.uniform(0.3, 0.45))


def _high_key(img: Image.Image, rng: random.Random) -> Image.Image:
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = 0.25 + 0.72 * a ** rng.uniform(0.45, 0.6)  # bright, but nothing clipped and dark accents kept
    return Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))


PHOTO_VARIANTS = {"plain": None, "night": _night, "soft-focus": _soft_focus, "low-contrast": _low_contrast,
                  "high-key": _high_key}


def photos(origin: str, n: int, rng: random.Random) -> list[tuple[str, Image.Image]]:
    names = PHOTOS[origin]
    sources = {name: _photo(name) for name in names}
    out = []
    variants = list(PHOTO_VARIANTS)
    for i in range(n):
        name = names[i % len(names)]
        img = _random_crop(sources[name], rng)
        variant = variants[i % len(variants)] if i >= len(names) else "plain"
        if PHOTO_VARIANTS[variant] is not None:
            img = PHOTO_VARIANTS[variant](img, rng)
        out.append((f"{name.replace('sklearn:', '')}-{variant}", img))
    return out


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _digit_scan(digit_img: np.ndarray, rng: random.Random) -> Image.Image:
    side = rng.choice((96, 128, 160))
    ink = Image.fromarray((np.clip(digit_img / 16.0, 0, 1) * 255).astype(np.uint8), "L").resize((side, side),
                                                                                              Image.BICUBIC)
    a = np.asarray(ink, dtype=np.float32) / 255.0
    a = 1.0 / (1.0 + np.exp(-(a - 0.45) * 60))  # ink is a sharp-edged stroke, not a grey blur
    paper = np.array(rng.choice(((246, 242, 230), (250, 250, 245), (238, 236, 240), (252, 248, 236))), np.float32)
    ink_c = np.array(rng.choice(((20, 30, 90), (15, 15, 20), (40, 40, 60))), np.float32)
    rgb = paper * (1 - a[..., None]) + ink_c * a[..., None]
    rgb += np.random.default_rng(rng.randint(0, 2**31)).normal(0, 3.0, rgb.shape)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    img = img.rotate(rng.uniform(-4, 4), resample=Image.BILINEAR, fillcolor=tuple(int(c) for c in paper))
    return img.filter(ImageFilter.GaussianBlur(0.5))


def scans(n: int, rng: random.Random) -> list[tuple[str, Image.Image]]:
    from skimage import data
    from sklearn.datasets import load_digits

    digits = load_digits()
    pages = {"text": Image.fromarray(data.text()).convert("RGB"), "page": Image.fromarray(data.page()).convert("RGB")}
    others = {
        "horse": Image.fromarray((~data.horse()).astype(np.uint8) * 255).convert("RGB"),
        "phantom": Image.fromarray((data.shepp_logan_phantom() * 255).astype(np.uint8)).convert("RGB"),
        "blobs": Image.fromarray(data.binary_blobs(length=256, rng=rng.randint(0, 999)).astype(np.uint8) * 255
                                 ).convert("RGB"),
    }
    out = []
    for i in range(n):
        kind = i % 5
        if kind in (0, 1):
            idx = rng.randrange(len(digits.images))
            out.append((f"digit{digits.target[idx]}", _digit_scan(digits.images[idx], rng)))
        elif kind in (2, 3):
            name = "text" if kind == 2 else "page"
            img = pages[name]
            w, h = img.size
            cw, ch = rng.randint(w // 2, w), rng.randint(h // 2, h)
            x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
            out.append((name, img.crop((x, y, x + cw, y + ch))))
        else:
            name = rng.choice(sorted(others))
            img = others[name]
            if name == "horse":
                img = img.resize((rng.randint(160, 400), rng.randint(160, 330)), Image.LANCZOS)
            out.append((name, img))
    return out


def _gradient(w: int, h: int, c0, c1, rng: random.Random, radial: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if radial:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / math.hypot(w, h)
    else:
        ang = rng.uniform(0, math.pi)
        t = (xx * math.cos(ang) + yy * math.sin(ang))
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
    t = np.clip(t, 0, 1)[..., None]
    return np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t


def _rand_colour(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return tuple(rng.randint(lo, hi) for _ in range(3))


def _shapes(rng: random.Random) -> Image.Image:
    w, h = rng.choice(((320, 240), (256, 256), (400, 300), (300, 400)))
    img = Image.fromarray(_gradient(w, h, _rand_colour(rng), _rand_colour(rng), rng, rng.random() < 0.5
                                    ).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(3, 9)):
        x0, y0 = rng.randint(0, w - 20), rng.randint(0, h - 20)
        x1, y1 = x0 + rng.randint(15, w // 2), y0 + rng.randint(15, h // 2)
        fn = rng.choice((d.rectangle, d.ellipse))
        fn((x0, y0, x1, y1), fill=_rand_colour(rng), outline=_rand_colour(rng) if rng.random() < 0.5 else None)
    return img


def _chart(rng: random.Random) -> Image.Image:
    w, h = rng.choice(((400, 300), (480, 320), (360, 270)))
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = _font(12)
    d.line((40, 20, 40, h - 30), fill=(0, 0, 0), width=1)
    d.line((40, h - 30, w - 10, h - 30), fill=(0, 0, 0), width=1)
    for i in range(5):
        y = h - 30 - i * (h - 60) // 4
        d.line((36, y, 40, y), fill=(0, 0, 0))
        d.text((5, y - 6), str(i * 25), fill=(60, 60, 60), font=font)
    n = rng.randint(4, 9)
    if rng.random() < 0.5:
        bw = (w - 60) // n
        for i in range(n):
            top = rng.randint(30, h - 40)
            d.rectangle((45 + i * bw, top, 45 + (i + 1) * bw - 6, h - 31), fill=_rand_colour(rng, 30, 220))
            d.text((45 + i * bw, h - 25), f"Q{i + 1}", fill=(0, 0, 0), font=font)
    else:
        for _ in range(rng.randint(1, 3)):
            pts = [(45 + i * (w - 60) // (n - 1), rng.randint(30, h - 40)) for i in range(n)]
            d.line(pts, fill=_rand_colour(rng, 0, 200), width=2)
    d.text((w // 3, 4), rng.choice(("Revenue by quarter", "Latency (ms)", "Users", "Accuracy vs epochs")),
           fill=(0, 0, 0), font=_font(14))
    return img


_WORDS = ("settings", "account", "profile", "search", "upload", "download", "report", "dataset", "images",
          "texts", "curate", "filter", "export", "history", "billing", "team", "members", "invite", "save",
          "cancel", "delete", "open", "project", "status", "running", "done", "failed", "queued")


def _screenshot(rng: random.Random, dark: bool) -> Image.Image:
    w, h = rng.choice(((480, 300), (400, 300), (512, 320), (360, 640)))
    bg = (30, 30, 34) if dark else (255, 255, 255)
    fg = (225, 225, 230) if dark else (20, 20, 25)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    bar = (45, 45, 52) if dark else (240, 242, 245)
    d.rectangle((0, 0, w, 36), fill=bar)
    d.text((12, 10), "curate - " + rng.choice(_WORDS), fill=fg, font=_font(16))
    y = 50
    while y < h - 30:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 8)))
        d.text((16, y), line, fill=fg, font=_font(rng.choice((12, 13, 14))))
        if rng.random() < 0.2:
            accent = _rand_colour(rng, 60, 200)
            d.rounded_rectangle((w - 110, y - 3, w - 16, y + 19), radius=6, fill=accent)
            d.text((w - 98, y), rng.choice(_WORDS), fill=(255, 255, 255), font=_font(12))
        y += rng.randint(20, 30)
    return img


def _pastel(rng: random.Random) -> Image.Image:
    w, h = rng.choice(((320, 320), (400, 300), (300, 400)))
    img = Image.new("RGB", (w, h), _rand_colour(rng, 225, 250))
    d = ImageDraw.Draw(img)
    for _ in range(rng.randint(4, 10)):
        x0, y0 = rng.randint(-20, w - 20), rng.randint(-20, h - 20)
        r = rng.randint(20, w // 3)
        fn = rng.choice((d.ellipse, d.rectangle))
        fn((x0, y0, x0 + r, y0 + r), fill=_rand_colour(rng, 150, 235))
    d.text((w // 5, h - 40), rng.choice(("spring sale", "hello", "welcome", "new in")), fill=_rand_colour(rng, 30, 110),
           font=_font(26))
    return img


def _smooth_poster(rng: random.Random) -> Image.Image:
    w, h = rng.choice(((320, 420), (400, 300), (300, 300)))
    arr = _gradient(w, h, _rand_colour(rng), _rand_colour(rng), rng, radial=rng.random() < 0.5)
    img = Image.fromarray(arr.astype(np.uint8))
    glow = Image.new("L", (w, h), 0)
    gd = ImageDraw.Draw(glow)
    gd.ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=255)
    glow = glow.filter(ImageFilter.GaussianBlur(w / 10))
    img = Image.composite(Image.new("RGB", (w, h), _rand_colour(rng)), img, glow)
    d = ImageDraw.Draw(img)
    d.text((w // 8, h // 10), rng.choice(("SUMMER", "Night Drive", "Chill", "AURORA")), fill=(255, 255, 255),
           font=_font(rng.randint(28, 44)))
    return img


def _minimal(rng: random.Random) -> Image.Image:
    """A minimal design: one word or one icon on a flat background (the look-alike of a blank image)."""
    w, h = rng.choice(((320, 240), (400, 300), (256, 256)))
    bg = _rand_colour(rng, 200, 255) if rng.random() < 0.6 else _rand_colour(rng, 0, 60)
    fg = _rand_colour(rng, 0, 70) if sum(bg) > 300 else _rand_colour(rng, 190, 255)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.5:
        d.text((w // 4, h // 2 - 20), rng.choice(("Hello", "Open", "404", "Thanks!", "Soon")), fill=fg, font=_font(36))
    else:
        r = rng.randint(18, 40)
        d.ellipse((w // 2 - r, h // 2 - r, w // 2 + r, h // 2 + r), outline=fg, width=4)
        d.line((w // 2 - r // 2, h // 2, w // 2 + r // 2, h // 2), fill=fg, width=4)
    return img


SYNTHETIC = {"shapes": _shapes, "minimal": _minimal, "chart": _chart, "screenshot": lambda r: _screenshot(r, False),
             "dark-mode": lambda r: _screenshot(r, True), "pastel": _pastel, "smooth-poster": _smooth_poster}


def synthetic(n: int, rng: random.Random) -> list[tuple[str, Image.Image]]:
    kinds = list(SYNTHETIC)
    return [(kinds[i % len(kinds)], SYNTHETIC[kinds[i % len(kinds)]](rng)) for i in range(n)]


def clean_images(origin: str, n: int, seed: int) -> list[tuple[str, Image.Image]]:
    rng = random.Random(f"{origin}-{seed}")
    if origin in PHOTOS:
        return photos(origin, n, rng)
    if origin == "scans":
        return scans(n, rng)
    return synthetic(n, rng)


# -- planted defects -------------------------------------------------------------------------------------------


def _scale(img: Image.Image) -> float:
    return max(1.0, max(img.size) / 256)


def _srgb_to_linear(a: np.ndarray) -> np.ndarray:
    return a ** 2.2


def plant(img: Image.Image, kind: str, rng: random.Random, photo: bool = False) -> Image.Image | bytes:
    """A defective copy of ``img`` (bytes for ``undecodable``)."""
    if kind == "blurry":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4.0) * _scale(img)))
    if kind == "dark":
        a = np.asarray(img, dtype=np.float32) * rng.uniform(0.1, 0.3)
        return Image.fromarray(a.astype(np.uint8))
    if kind == "overexposed":
        a = np.asarray(img, dtype=np.float32) / 255.0
        lin = _srgb_to_linear(a)
        luma = lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        # photos: exposure pushed until 50-75% of the picture clips; pictures on a white background and
        # drawings are washed out instead (pushing a white page clips nothing new; pushing flat saturated
        # colours only clips a channel)
        if photo and rng.random() < 0.5 and float(np.median(a)) < 0.85:
            gain = 1.0 / max(1e-4, float(np.quantile(luma, 1.0 - rng.uniform(0.5, 0.75))))
            a = np.clip(lin * gain, 0, 1) ** (1 / 2.2)
        else:
            alpha = rng.uniform(0.55, 0.8)
            a = a * (1 - alpha) + alpha
        return Image.fromarray((a * 255 + 0.5).astype(np.uint8))
    if kind == "low-information":
        w, h = img.size
        nrng = np.random.default_rng(rng.randint(0, 2**31))
        mode = rng.randrange(3)
        if mode == 0:
            a = np.asarray(img, dtype=np.float32)
            mean = a.mean(axis=(0, 1))
            a = mean + (a - mean) * rng.uniform(0.02, 0.05)
        elif mode == 1:
            a = np.broadcast_to(np.asarray(_rand_colour(rng), np.float32), (h, w, 3)).copy()
        else:
            c0 = np.asarray(_rand_colour(rng), np.float32)
            c1 = np.clip(c0 + nrng.normal(0, 40, 3), 0, 255)
            a = _gradient(w, h, c0, c1, rng, radial=rng.random() < 0.5)
        a = a + nrng.normal(0, rng.uniform(0.5, 3.0), a.shape)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if kind == "tiny":
        side = rng.randint(16, 60)
        f = side / max(img.size)
        return img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))), Image.LANCZOS)
    if kind == "odd-aspect":
        w, h = img.size
        aspect = rng.uniform(3.5, 8.0)
        if rng.random() < 0.5:  # a horizontal strip
            sh = max(8, int(w / aspect))
            y = rng.randint(0, max(0, h - sh))
            return img.crop((0, y, w, min(h, y + sh)))
        sw = max(8, int(h / aspect))
        x = rng.randint(0, max(0, w - sw))
        return img.crop((x, 0, min(w, x + sw), h))
    if kind == "grayscale":
        grey = img.convert("L")
        return grey if rng.random() < 0.5 else grey.convert("RGB")
    if kind == "undecodable":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        return data[: len(data) // rng.randint(3, 8)] if rng.random() < 0.7 else bytes(
            rng.getrandbits(8) for _ in range(2048))
    raise ValueError(kind)


def encode(img: Image.Image, rng: random.Random) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if rng.random() < 0.7:
        img.save(buf, "JPEG", quality=rng.randint(80, 95))
        return buf.getvalue(), "jpg"
    img.save(buf, "PNG")
    return buf.getvalue(), "png"


def build_images(origins, per_origin: int, root: Path, seed: int = 0) -> list[dict]:
    """Write clean images and one planted copy per defect kind of each; returns one record per file."""
    records = []
    for origin in origins:
        rng = random.Random(f"plant-{origin}-{seed}")
        folder = root / origin
        folder.mkdir(parents=True, exist_ok=True)
        for i, (name, img) in enumerate(clean_images(origin, per_origin, seed)):
            arr = np.asarray(img.convert("RGB"), dtype=np.int16)
            grey = bool((arr.max(axis=2) - arr.min(axis=2)).max() <= 2)  # a grey picture: grayscale is right
            items = [("clean", img)] + [(kind, plant(img, kind, rng, origin in PHOTOS)) for kind in IMAGE_DEFECTS]
            for kind, item in items:
                if isinstance(item, bytes):
                    data, ext = item, "jpg"
                else:
                    data, ext = encode(item, rng)
                path = folder / f"{i:04d}-{name}-{kind}.{ext}"
                path.write_bytes(data)
                records.append({"origin": origin, "kind": kind, "variant": name, "path": str(path),
                                "grey_source": grey})
    return records
