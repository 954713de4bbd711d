"""The offline demo dataset: scikit-learn's handwritten digits as 64x64 image files.

Layout ``DIR/images/{train,test}/<digit>/<n>.{jpg,png}`` (one image in five goes to
test), plus planted problems listed in ``DIR/ground_truth.json`` with paths relative to
``DIR/images`` (so manifest ids are ``images/<path>``):

- ``exact_copies``: byte-identical copies (a few cross from train into test: leakage);
- ``near_copies``: re-encoded, resized or cropped copies (not byte-identical);
- ``corrupt``: zero-byte, truncated, random-bytes and not-an-image files.
"""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 64


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    exact_copies: int = 30
    cross_split_copies: int = 4
    near_copies_per_transform: int = 15
    test_every: int = 5


def build_demo(folder: str | os.PathLike, config: DemoConfig = DemoConfig(), progress: bool = False) -> dict:
    """Write the demo dataset into ``folder`` and return its ground truth.

    The ground-truth file is written last; a folder that already has one is complete
    and is reused as it is, so the quick start can be rerun.
    """
    from sklearn.datasets import load_digits

    top = Path(folder)
    if (top / "ground_truth.json").exists():
        return json.loads((top / "ground_truth.json").read_text())
    if top.exists() and any(top.iterdir()):
        from curate.errors import CurateError

        raise CurateError(f"demo folder {top} is not empty and holds no finished demo: remove it or pick another")
    root = top / "images"
    rng = random.Random(config.seed)
    digits = load_digits()
    originals: list[tuple[str, Image.Image, int]] = []
    from curate.runner import progress_bar

    pairs = progress_bar(progress, iterable=list(zip(digits.images, digits.target)), desc="demo", unit=" images")
    for n, (pixels, target) in enumerate(pairs):
        split = "test" if n % config.test_every == config.test_every - 1 else "train"
        fmt = "png" if n % 3 == 2 else "jpg"
        rel = f"{split}/{target}/{n:04d}.{fmt}"
        img = _render(pixels, n)
        _write(root / rel, _encode(img, fmt))
        originals.append((rel, img, int(target)))

    truth: dict = {"source_count": len(originals), "exact_copies": [], "near_copies": [], "corrupt": []}
    train = [o for o in originals if o[0].startswith("train/")]
    for k, (rel, _, target) in enumerate(rng.sample(train, config.exact_copies)):
        split = "test" if k < config.cross_split_copies else "train"
        copy = f"{split}/{target}/{9000 + k}{Path(rel).suffix}"
        _write(root / copy, (root / rel).read_bytes())
        truth["exact_copies"].append({"path": copy, "of": rel})

    transforms = {"reencode": _reencode, "resize": _resize, "crop": _crop}
    picks = rng.sample(train, config.near_copies_per_transform * len(transforms))
    for k, (rel, img, target) in enumerate(picks):
        name = list(transforms)[k % len(transforms)]
        copy = f"train/{target}/{9500 + k}.jpg"
        _write(root / copy, _encode(transforms[name](img), "jpg", quality=80))
        truth["near_copies"].append({"path": copy, "of": rel, "transform": name})

    good = (root / originals[0][0]).read_bytes()
    png = (root / originals[2][0]).read_bytes()
    corrupt = {
        "train/0/9900.jpg": (b"", "zero-byte"),
        "train/1/9901.jpg": (good[: len(good) // 2], "truncated-jpeg"),
        "train/2/9902.png": (png[: len(png) // 2], "truncated-png"),
        "train/3/9903.jpg": (bytes(rng.getrandbits(8) for _ in range(700)), "random-bytes"),
        "train/4/9904.png": (b"this is a text file with an image name\n", "not-an-image"),
    }
    for rel, (data, defect) in corrupt.items():
        _write(root / rel, data)
        truth["corrupt"].append({"path": rel, "defect": defect})
    truth["file_count"] = sum(1 for p in root.rglob("*") if p.is_file())
    (top / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def _render(pixels: np.ndarray, n: int) -> Image.Image:
    """Digit ``n`` in a dark ink over its own smooth random colour background.

    The digits are 8x8 scans with 16 grey levels: many different scans of a digit are
    near-identical, so in grey they would be near-duplicates of each other. A background
    drawn per image makes different scans different images, while planted copies keep
    the background of their original.
    """
    rng = np.random.default_rng(1000 + n)
    digit = np.clip(pixels / 16.0, 0.0, 1.0)
    digit = np.asarray(Image.fromarray((digit * 255).astype(np.uint8), "L").resize((SIZE, SIZE), Image.BICUBIC),
                       dtype=np.float32)[..., None] / 255.0
    coarse = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    background = np.asarray(Image.fromarray(coarse, "RGB").resize((SIZE, SIZE), Image.BICUBIC), dtype=np.float32) / 255
    ink = rng.random(3).astype(np.float32) * 0.3
    rgb = background * (1.0 - digit) + ink * digit
    return Image.fromarray((rgb * 255).clip(0, 255).astype(np.uint8), "RGB")


def _encode(img: Image.Image, fmt: str, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG")
    else:
        img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _reencode(img: Image.Image) -> Image.Image:
    return Image.open(io.BytesIO(_encode(img, "jpg", quality=55))).convert("RGB")


def _resize(img: Image.Image) -> Image.Image:
    return img.resize((48, 48), Image.BILINEAR)


def _crop(img: Image.Image) -> Image.Image:
    """A light crop: 3 px (about 5%) off each side, resized back."""
    return img.crop((3, 3, SIZE - 3, SIZE - 3)).resize((SIZE, SIZE), Image.BILINEAR)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
