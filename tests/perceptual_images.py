"""Real test pictures that installed packages ship, and the near-copy kinds applied to them:
scikit-learn's two sample photos (and crops of them that do not overlap) and one scan of each
digit, scaled up. Shared by the perceptual-embedder and perceptual-hash tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance

CROPS = {
    "china": {"top": (100, 20, 300, 220), "base": (40, 230, 240, 427), "trees": (450, 120, 640, 320),
              "lake": (260, 240, 450, 427)},
    "flower": {"bloom": (170, 80, 450, 360), "bokeh-tl": (0, 0, 170, 170), "bokeh-tr": (460, 0, 640, 180),
               "bokeh-bl": (0, 250, 170, 427)},
}


def _centre_crop(img: Image.Image, f: float) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * f), round(h * f)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


COPIES = {
    "flip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "crop90": lambda im: _centre_crop(im, 0.9),
    "crop85": lambda im: _centre_crop(im, 0.85),
    "crop80": lambda im: _centre_crop(im, 0.8),
    "rot+5": lambda im: im.rotate(5, resample=Image.BILINEAR),
    "rot-5": lambda im: im.rotate(-5, resample=Image.BILINEAR),
    "rot+10": lambda im: im.rotate(10, resample=Image.BILINEAR),
    "rot-10": lambda im: im.rotate(-10, resample=Image.BILINEAR),
    "jpeg50": lambda im: _jpeg(im, 50),
    "half": lambda im: im.resize((im.width // 2, im.height // 2), Image.BILINEAR),
    "bright": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
}


def real_images() -> dict[str, tuple[str, Image.Image]]:
    """name -> (source, RGB image): the photos, their disjoint crops and one scan per digit."""
    from sklearn.datasets import load_digits, load_sample_images

    sample = load_sample_images()
    out: dict[str, tuple[str, Image.Image]] = {}
    for path, pixels in zip(sample.filenames, sample.images):
        name = path.replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
        photo = Image.fromarray(pixels)
        out[name] = (f"{name}-full", photo)
        for part, box in CROPS[name].items():
            out[f"{name}:{part}"] = (name, photo.crop(box))
    digits = load_digits()
    for digit in range(10):
        scan = digits.images[int(np.flatnonzero(digits.target == digit)[0])]
        grey = Image.fromarray((np.clip(scan / 16.0, 0, 1) * 255).astype(np.uint8), "L")
        out[f"digit{digit}"] = ("digits", grey.resize((128, 128), Image.BICUBIC).convert("RGB"))
    return out


def negative_kind(a: str, b: str, images: dict) -> str | None:
    sa, sb = images[a][0], images[b][0]
    if sa == sb == "digits":
        return "other-digit"
    if sa == sb:
        return "same-photo-crops"
    if sa.split("-")[0] == sb.split("-")[0]:
        return None  # a photo and its own crop overlap
    if "digits" in (sa, sb):
        return "photo-vs-digit"
    return "other-photo"
