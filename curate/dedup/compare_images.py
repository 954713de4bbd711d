"""Which of two duplicate images is the original: pairwise votes for :mod:`curate.dedup.compare`.

Each image is read once into a :class:`Look` (a few numbers and a 32 x 32 grey shape). For a pair
``(x, y)`` the vote adds, for x (negated for y):

- **resolution** (weight 2): at least 15% more content pixels (pixels inside any uniform border),
  so a thumbnail or a crop loses;
- **border** (weight 2): at least 3% less of the area in a uniform border (letterbox, pillarbox, pad);
- **colour** (weight 2): colour over greyscale;
- **compression** (weight 1): a higher JPEG quality (estimated from the quantisation table; lossless
  formats count as 100), so a re-compressed copy loses;
- **detail** (weight 1): at least 15% more contrast-normalised Laplacian energy at the largest scale
  both share (a blurred or smoothed copy has less fine detail than its original);
- **tones** (weight 1): fewer damaged tones (empty grey levels inside the tonal range, the comb a
  brightness or contrast stretch leaves, plus clipped pixels), at least 5 points apart;
- **consensus** (weight 2, groups of three or more): closer to the group's per-pixel median shape
  (32 x 32 grey, normalised for brightness and contrast, each member flipped to match the best-ranked
  one): a watermarked, overlaid or brightened copy is an outlier, the original is what copies agree on.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps

WORK_SIDE = 256  # images are measured on a thumbnail this size (longest side)
SCALES = (32, 48, 64, 96, 128, 192, 256)  # detail is compared at the largest both reach
SHAPE = 32  # side of the consensus shape
COLOURED, GREY = 4.0, 1.5  # mean channel spread of a colour image, and the most a greyscale one shows
RESOLUTION, BORDER, COLOUR, COMPRESSION, DETAIL, TONES, CONSENSUS = 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0
# libjpeg's luminance table at quality 50 (its mean scales with the quality)
_LUMA50_MEAN = 57.625


@dataclass(frozen=True)
class Look:
    """What the votes read of one image."""

    pixels: float  # content pixels at full size (width * height less the border)
    border: float  # fraction of the area in a uniform border
    chroma: float  # mean spread between colour channels (0..255); ~0 for greyscale
    quality: float  # estimated JPEG quality, 100 for lossless formats
    detail: dict[int, float]  # contrast-normalised Laplacian energy of the content at each scale it reaches
    tones: float  # empty grey levels inside the tonal range (fraction) + clipped pixels (fraction)
    shape: np.ndarray  # SHAPE x SHAPE grey content, zero mean and unit deviation


def jpeg_quality(img: Image.Image) -> float:
    """libjpeg quality (1..100) that would give the image's luminance table; 100 when not a JPEG."""
    tables = getattr(img, "quantization", None)
    if img.format != "JPEG" or not tables:
        return 100.0
    scale = 100.0 * float(np.mean(tables[min(tables)])) / _LUMA50_MEAN
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return float(np.clip(quality, 1.0, 100.0))


def content_box(grey: np.ndarray, tolerance: float = 4.0) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the content inside a uniform border: edge lines whose pixels
    stay within ``tolerance`` grey levels of the edge's own colour are trimmed. A featureless image
    keeps its whole box."""
    h, w = grey.shape

    def run(lines: np.ndarray) -> int:  # leading lines of one uniform colour
        colour = np.median(lines[0])
        flat = np.abs(lines - colour).max(axis=1) <= tolerance
        return len(flat) if flat.all() else int(np.argmin(flat))

    top, bottom = run(grey), run(grey[::-1])
    left, right = run(grey.T), run(grey.T[::-1])
    if top + bottom >= h - 2 or left + right >= w - 2:
        return 0, h, 0, w
    return top, h - bottom, left, w - right


def look(data: bytes) -> Look:
    """The :class:`Look` of an encoded image (EXIF orientation applied); raises on unreadable bytes."""
    with Image.open(io.BytesIO(data)) as raw:
        quality = jpeg_quality(raw)
        width, height = raw.size
        if raw.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated a quarter turn: the sides swap
            width, height = height, width
        raw.draft("RGB", (2 * WORK_SIDE, 2 * WORK_SIDE))
        img = ImageOps.exif_transpose(raw).convert("RGB")
    full = np.asarray(img)
    img.thumbnail((WORK_SIDE, WORK_SIDE))
    rgb = np.asarray(img, dtype=np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    top, bottom, left, right = content_box(grey)
    border = 1.0 - (bottom - top) * (right - left) / grey.size
    content, shade = rgb[top:bottom, left:right], grey[top:bottom, left:right]
    chroma = float((content.max(axis=2) - content.min(axis=2)).mean())
    fy, fx = full.shape[0] / grey.shape[0], full.shape[1] / grey.shape[1]
    tones = _tone_damage(full[int(top * fy):int(np.ceil(bottom * fy)), int(left * fx):int(np.ceil(right * fx))])
    return Look(pixels=float(width * height) * (1.0 - border), border=border, chroma=chroma, quality=quality,
                detail=_detail(shade), tones=tones, shape=_shape(shade))


def _tone_damage(rgb: np.ndarray) -> float:
    """Mean over channels of: the share of empty levels between the 1st and 99th percentile, plus the
    share of pixels at 0 or 255."""
    out = []
    for c in range(rgb.shape[2]):
        hist = np.bincount(rgb[..., c].ravel(), minlength=256)
        cdf = np.cumsum(hist) / max(hist.sum(), 1)
        lo, hi = int(np.searchsorted(cdf, 0.01)), int(np.searchsorted(cdf, 0.99))
        gaps = float((hist[lo:hi + 1] == 0).mean()) if hi > lo else 0.0
        out.append(gaps + float(hist[0] + hist[255]) / max(hist.sum(), 1))
    return float(np.mean(out))


def _detail(grey: np.ndarray) -> dict[int, float]:
    out = {}
    for s in SCALES:
        if min(grey.shape) < s:
            break
        a = np.asarray(Image.fromarray(grey).resize((s, s), Image.BILINEAR), dtype=np.float64)
        lap = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4.0 * a[1:-1, 1:-1]
        out[s] = float(lap.std() / (a.std() + 1.0))
    return out


def _shape(grey: np.ndarray) -> np.ndarray:
    a = np.asarray(Image.fromarray(grey).resize((SHAPE, SHAPE), Image.BILINEAR), dtype=np.float64)
    return (a - a.mean()) / (a.std() + 1e-6)


def pair_vote(x: Look, y: Look) -> float:
    """The vote for x being the original of y (> 0) or y of x (< 0), without the consensus."""
    def side(a: bool, b: bool) -> float:
        return float(a) - float(b)

    vote = RESOLUTION * side(x.pixels >= 1.15 * y.pixels, y.pixels >= 1.15 * x.pixels)
    vote += BORDER * side(y.border - x.border >= 0.03, x.border - y.border >= 0.03)
    vote += COLOUR * side(x.chroma >= COLOURED and y.chroma < GREY, y.chroma >= COLOURED and x.chroma < GREY)
    vote += COMPRESSION * side(x.quality - y.quality >= 10, y.quality - x.quality >= 10)
    shared = [s for s in SCALES if s in x.detail and s in y.detail]
    if shared:
        dx, dy = x.detail[shared[-1]], y.detail[shared[-1]]
        vote += DETAIL * side(dx >= 1.15 * dy, dy >= 1.15 * dx)
    vote += TONES * side(y.tones - x.tones >= 0.05, x.tones - y.tones >= 0.05)
    return vote


class ImageCopies:
    """Votes between images, each read once (``fetch``: manifest row dict -> bytes; default
    ``PayloadFetcher().fetch``)."""

    def __init__(self, manifest: pa.Table, fetch: Callable[[dict], Any] | None = None) -> None:
        if fetch is None:
            from curate.embed.payloads import PayloadFetcher

            fetch = PayloadFetcher().fetch
        self.manifest, self.fetch = manifest, fetch
        self.looks: dict[int, Look | None] = {}

    def look(self, row: int) -> Look | None:
        if row not in self.looks:
            try:
                data = self.fetch(self.manifest.slice(row, 1).to_pylist()[0])
                self.looks[row] = look(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else None
            except Exception:  # unreadable now: it loses to every readable member, the dedup goes on
                self.looks[row] = None
        return self.looks[row]

    def votes(self, rows: np.ndarray) -> np.ndarray:
        """Antisymmetric (k, k) votes between ``rows`` (``[i, j] > 0``: row i is the original of row j)."""
        looks = [self.look(int(r)) for r in rows]
        k = len(rows)
        out = np.zeros((k, k))
        for i in range(k):
            for j in range(i + 1, k):
                if looks[i] is not None and looks[j] is not None:
                    out[i, j] = pair_vote(looks[i], looks[j])
                else:
                    out[i, j] = 100.0 * (float(looks[i] is not None) - float(looks[j] is not None))
                out[j, i] = -out[i, j]
        readable = [i for i, lk in enumerate(looks) if lk is not None]
        if len(readable) >= 3:
            far = _consensus_distance([looks[i].shape for i in readable])
            gap = far[None, :] - far[:, None]  # > 0: the row is closer than the column
            closer = np.sign(gap) * (np.abs(gap) >= 0.05)
            out[np.ix_(readable, readable)] += CONSENSUS * closer
        return out


def _consensus_distance(shapes: list[np.ndarray]) -> np.ndarray:
    """RMS distance of each shape (flipped when that matches the first one better) to the per-pixel
    median of them all."""
    reference = shapes[0]
    oriented = []
    for s in shapes:
        flipped = s[:, ::-1]
        oriented.append(flipped if np.mean((flipped - reference) ** 2) < np.mean((s - reference) ** 2) else s)
    stack = np.stack(oriented)
    median = np.median(stack, axis=0)
    return np.sqrt(((stack - median) ** 2).mean(axis=(1, 2)))
