"""Which of two duplicate images is the original: pairwise votes for :mod:`curate.dedup.compare`.

Each image is read once into a :class:`Look` (a few numbers and a 32 x 32 grey shape). For a pair
``(x, y)`` the vote adds, for x (negated for y):

- **resolution** (weight 2): at least 15% more pixels (inside the bars for a letterboxed one), so a
  thumbnail or a crop loses; only between images of one shape (aspect ratios within 5%): a stretched
  copy's extra pixels are interpolated;
- **border** (weight 2): the letterboxed or pillarboxed one loses: it has bars (at least 3% more of the
  area) and the other's frame has the shape of its content (aspect ratios within 5%), its own frame not;
- **colour** (weight 2): colour over greyscale;
- **compression** (weight 1): a higher JPEG quality (estimated from the quantisation table; lossless
  formats count as 100), at least 10 apart, so a re-compressed copy loses;

and, between images of the same framing only (pixels within 15%), where what differs is the
treatment of the same pixels:

- **tones** first when one shows a strong comb (15 points more empty levels, twice as many) and the
  detail differs by less than 50%: see below;
- **detail** (weight 1, 2 from 50% more; only at equal compression, as JPEG ringing is not detail):
  at least 15% more contrast-normalised Laplacian energy (the median over 16 tiles, so an overlay is
  not detail) at the largest scale both share: a blurred or smoothed copy has less;
- else **tones** (weight 1): the one without the comb a brightness or contrast stretch leaves: empty
  levels inside the tonal range, at least 8 points more and 1.3 times as many (clipped pixels say
  nothing here: a blur or a JPEG softens an original's own clipped strokes);
- else detail again (weight 1) from 5% more;
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

    pixels: float  # width * height at full size
    content: float  # pixels inside the bars
    border: float  # fraction of the area in letterbox / pillarbox bars
    aspect: float  # width / height of the frame
    content_aspect: float  # width / height inside the bars
    chroma: float  # mean spread between colour channels (0..255); ~0 for greyscale
    quality: float  # estimated JPEG quality, 100 for lossless formats
    detail: dict[int, float]  # contrast-normalised Laplacian energy of the frame at each scale it reaches
    content_detail: dict[int, float]  # the same inside the bars
    gaps: float  # share of empty levels between the 1st and 99th percentile (mean over channels)
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
    """``(top, bottom, left, right)`` of the content inside a letterbox or pillarbox: bars on two
    opposite sides (within 25% or 2 px of each other's width) whose lines stay within ``tolerance``
    grey levels of the edge's own colour. A flat region on one side is content (sky, a black
    background), not a border; a featureless image keeps its whole box."""
    h, w = grey.shape

    def run(lines: np.ndarray) -> int:  # leading lines of one uniform colour
        colour = np.median(lines[0])
        flat = np.abs(lines - colour).max(axis=1) <= tolerance
        return len(flat) if flat.all() else int(np.argmin(flat))

    def bars(first: int, second: int, side: int) -> tuple[int, int]:
        paired = min(first, second) > 0 and abs(first - second) <= max(2, 0.25 * max(first, second))
        return (first, second) if paired and first + second < side - 2 else (0, 0)

    top, bottom = bars(run(grey), run(grey[::-1]), h)
    left, right = bars(run(grey.T), run(grey.T[::-1]), w)
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
    inside = full[int(top * fy):int(np.ceil(bottom * fy)), int(left * fx):int(np.ceil(right * fx))]
    return Look(pixels=float(width * height), content=float(width * height) * (1.0 - border), border=border,
                aspect=grey.shape[1] / grey.shape[0], content_aspect=(right - left) / (bottom - top), chroma=chroma,
                quality=quality, detail=_detail(grey), content_detail=_detail(shade), gaps=_gaps(inside),
                shape=_shape(shade))


def _gaps(rgb: np.ndarray) -> float:
    """The share of empty levels between the 1st and 99th percentile, a mean over channels."""
    out = []
    for c in range(rgb.shape[2]):
        hist = np.bincount(rgb[..., c].ravel(), minlength=256)
        cdf = np.cumsum(hist) / max(int(hist.sum()), 1)
        lo, hi = int(np.searchsorted(cdf, 0.01)), int(np.searchsorted(cdf, 0.99))
        out.append(float((hist[lo:hi + 1] == 0).mean()) if hi > lo else 0.0)
    return float(np.mean(out))


def _detail(grey: np.ndarray, blocks: int = 4) -> dict[int, float]:
    """Per scale s the content reaches: the median over ``blocks`` x ``blocks`` tiles of the RMS Laplacian,
    over the grey deviation (a median, so an overlay on a few tiles does not count as detail)."""
    out = {}
    for s in SCALES:
        if min(grey.shape) < s:
            break
        a = np.asarray(Image.fromarray(grey).resize((s, s), Image.BILINEAR), dtype=np.float64)
        lap = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4.0 * a[1:-1, 1:-1]
        side = (s - 2) // blocks
        tiles = lap[:side * blocks, :side * blocks].reshape(blocks, side, blocks, side)
        energy = np.sqrt((tiles ** 2).mean(axis=(1, 3)))
        out[s] = float(np.median(energy) / (a.std() + 1.0))
    return out


def _shape(grey: np.ndarray) -> np.ndarray:
    a = np.asarray(Image.fromarray(grey).resize((SHAPE, SHAPE), Image.BILINEAR), dtype=np.float64)
    return (a - a.mean()) / (a.std() + 1e-6)


def pair_vote(x: Look, y: Look) -> float:
    """The vote for x being the original of y (> 0) or y of x (< 0), without the consensus."""
    boxed_x, boxed_y = _letterboxed(x, y), _letterboxed(y, x)
    px, py = x.content if boxed_x else x.pixels, y.content if boxed_y else y.pixels
    ax, ay = x.content_aspect if boxed_x else x.aspect, y.content_aspect if boxed_y else y.aspect
    # more pixels of the same shape is more resolution (a thumbnail loses); of another shape it may be a
    # stretch, whose extra pixels are interpolated: no vote
    vote = RESOLUTION * _side(px >= 1.15 * py, py >= 1.15 * px) if _alike(ax, ay) else 0.0
    vote += BORDER * _side(boxed_y, boxed_x)
    vote += COLOUR * _side(x.chroma >= COLOURED and y.chroma < GREY, y.chroma >= COLOURED and x.chroma < GREY)
    vote += COMPRESSION * _side(x.quality - y.quality >= 10, y.quality - x.quality >= 10)
    if max(px, py) >= 1.15 * min(px, py):
        return vote  # other framings: detail and tones of different content say nothing
    detail_x = x.content_detail if boxed_x or boxed_y else x.detail
    detail_y = y.content_detail if boxed_x or boxed_y else y.detail
    shared = [s for s in SCALES if s in detail_x and s in detail_y]
    dx, dy = (detail_x[shared[-1]], detail_y[shared[-1]]) if shared and abs(x.quality - y.quality) < 10 else (1, 1)
    strong = _side(_combed(y, x, 0.15, 2.0), _combed(x, y, 0.15, 2.0))
    if strong and max(dx, dy) < 1.5 * min(dx, dy):  # a stretch moves the detail measure (clipping), not 50%
        return vote + TONES * strong
    if max(dx, dy) >= 1.15 * min(dx, dy):  # clearly sharper: a blur also fills the gaps between levels
        return vote + DETAIL * (_side(dx >= 1.15 * dy, dy >= 1.15 * dx) + _side(dx >= 1.5 * dy, dy >= 1.5 * dx))
    tones = _side(_combed(y, x), _combed(x, y))
    if tones:  # a stretch moves detail a little either way: the comb decides
        return vote + TONES * tones
    return vote + DETAIL * _side(dx >= 1.05 * dy, dy >= 1.05 * dx)


def _combed(a: Look, b: Look, more: float = 0.08, times: float = 1.3) -> bool:
    """a has the comb of empty levels that a brightness or contrast stretch leaves, b not: ``more`` of the
    levels empty, and ``times`` as many."""
    return a.gaps - b.gaps >= more and a.gaps >= times * b.gaps


def _side(a: bool, b: bool) -> float:
    return float(a) - float(b)


def _alike(p: float, q: float) -> bool:
    """Aspect ratios within 5% of each other."""
    return abs(np.log(p / q)) < np.log(1.05)


def _letterboxed(a: Look, b: Look) -> bool:
    """a is b with bars added: more of a's area is bars, b's frame has the shape of a's content, a's does not."""
    return a.border - b.border >= 0.03 and _alike(a.content_aspect, b.aspect) and not _alike(a.aspect, b.aspect)


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
