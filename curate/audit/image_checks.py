"""Per-image data-quality checks, computed from one decode of each image.

Score convention: every check gives a float in [0, 1], **higher = more likely the defect**; NaN means
the image could not be judged (it did not decode: the ``undecodable`` score is then 1). A flag is
``score >= threshold``, the threshold a field of :class:`ImageCheckConfig`, so stored scores can be
re-flagged under other thresholds without decoding anything again.

Each image is decoded once (:mod:`curate.io.images`: EXIF orientation applied, transparency
composited, large JPEGs decoded at a reduced DCT scale with ``draft``) into an RGB thumbnail of at
most ``THUMB`` pixels a side; the original width and height come from the header (after orientation).
The checks (see :mod:`curate.audit.image_features` for the measurements):

- ``blurry``: the blur of the image's own edges, estimated as a Gaussian sigma ``b`` in thumbnail pixels,
  as ``b / (b + 1.6)``. The gradient energy ``E(s)`` on the image's strongest structures is measured after
  re-blurring by s = 0.7, 1.4 and 2.8 px; structure already blurred by ``b`` loses energy as
  ``(b^2 + s^2) ** (-k / 2)``, where ``k`` depends on what it is (1 for a step edge, 3 for a thin line);
  ``log(E(s0) / E(s2)) / log(E(s0) / E(s1))`` cancels ``k``, the contrast and how much of the picture is
  edges, and is solved for ``b``. So blur is judged relative to the image's own content: a soft, low-contrast
  photo with some crisp detail, or a smooth illustration with a crisp title, is not blurry; a picture with
  no edges at all (a blank, a pure gradient) scores 0 (not a blurred copy of anything: see
  ``low-information``); a Gaussian-blurred copy is blurry. The default 0.5 is ``b`` = 1.6 px at 256 px.
- ``dark``: ``1 - p99.9 / 255`` of luma. Underexposure scales every tone down, the brightest ones
  included; a night scene with lit windows, stars or street lights keeps its highlights and is not
  dark (a style, not a defect).
- ``overexposed``: the larger of (a) washed out: the darkest tones lifted, ``p0.2`` of luma mapped from
  64 (0) to 224 (1) -- dark accents such as text keep a light design from counting; (b) blown out: the
  share of the image clipped (luma >= 250; full at 40%) times the share of the rest that is photographic
  (inside an unclipped 5 x 5 area and textured, not flat colour; full at 50%): a white page, chart or
  screenshot is mostly white too, but what is not white there is thin (text, lines) or flat (panels).
- ``low-information``: ``1 - sqrt(structure / 2%)`` clipped, where structure is the share of the
  thumbnail whose gradient (after a 1.4 px blur, so noise does not count) reaches 3 grey levels per
  pixel: a blank, a flat colour with noise or a smooth gradient has none; a page of text, a digit or a
  single word on a flat background has some.
- ``tiny``: ``1 - min(width, height) / 256`` clipped (header size); the default 0.75 is a side of 64 px or less.
- ``odd-aspect``: ``1 - short side / long side``; the default 0.7 is an aspect beyond 10:3.
- ``grayscale`` (informational): ``1 - p99.9(chroma) / 24`` clipped, chroma = max - min of R, G, B; the
  default 0.75 is no colour above 6 levels in 99.9% of pixels (JPEG chroma noise on a grey image stays
  below; a small colourful object on a dark sky is colour).
- ``undecodable``: 1 when the bytes did not decode (every other score is then NaN).
- ``outlier`` needs embeddings: :func:`curate.audit.outlier.outlier_scores` (same score convention).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

from curate.audit.image_features import ImageFeatures
from curate.audit.outlier import outlier_scores
from curate.io.images import decode_image

THUMB = 256  # thumbnail side the checks are calibrated on
MIN_POOLED = 256  # images from which worker processes pay for their start

__all__ = ["IMAGE_CHECKS", "INFORMATIONAL", "THUMB", "ImageCheckConfig", "ImageFeatures", "check_pool",
           "decode_features", "flags", "image_check_scores", "outlier_scores"]


@dataclass(frozen=True)
class ImageCheckConfig:
    """Flag thresholds on the scores (``score >= threshold`` flags); one field per check."""

    blurry: float = 0.5
    dark: float = 0.64
    overexposed: float = 0.42
    low_information: float = 0.5
    tiny: float = 0.75
    odd_aspect: float = 0.7
    grayscale: float = 0.75
    outlier: float = 0.5


# name -> score function of one decoded image; all of them read the same ImageFeatures
IMAGE_CHECKS: dict[str, Callable[[ImageFeatures], float]] = {
    "blurry": lambda f: f.blurry,
    "dark": lambda f: f.dark,
    "overexposed": lambda f: f.overexposed,
    "low-information": lambda f: f.low_information,
    "tiny": lambda f: f.tiny,
    "odd-aspect": lambda f: f.odd_aspect,
    "grayscale": lambda f: f.grayscale,
}
INFORMATIONAL = frozenset({"grayscale"})  # reported, not a defect


def decode_features(data: bytes, side: int = THUMB) -> ImageFeatures | None:
    """Decode ``data`` once (:func:`curate.io.images.decode_image`: upright, transparency composited,
    JPEGs drafted) into the thumbnail the checks read; ``None`` when it does not decode."""
    try:
        decoded = decode_image(data, min_side=side)
    except ValueError:
        return None
    rgb = decoded.image
    if max(rgb.size) <= side:
        return ImageFeatures(np.asarray(rgb), decoded.width, decoded.height)
    # only the grey picture is scaled smoothly to the calibrated side (a third of the work of scaling RGB);
    # the colour check reads a box-reduced RGB copy (a p99.9 of chroma needs no exact scale)
    grey = rgb.convert("L")
    grey.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    factor = max(rgb.size) // side
    colour = rgb.reduce(factor) if factor >= 2 else rgb
    return ImageFeatures(np.asarray(colour), decoded.width, decoded.height, luma=np.asarray(grey))


def _scores_of(data: bytes | None) -> tuple[float, ...]:
    feats = decode_features(data) if data else None
    if feats is None:
        return (np.nan,) * len(IMAGE_CHECKS) + (1.0,)
    return tuple(float(fn(feats)) for fn in IMAGE_CHECKS.values()) + (0.0,)


@contextlib.contextmanager
def check_pool(workers: int) -> Iterator[Executor | None]:
    """Worker processes for the image checks (None: check in this process).

    Processes, not threads: a check is many small NumPy / OpenCV steps whose Python glue holds the GIL, and
    two threads cost about 40% more CPU per image than one while running no faster (measured on the audit
    bench, 2 cores). Spawned, not forked: the caller may hold torch or other threads. Open one pool for a
    whole run (spawning takes a fraction of a second) and pass it to :func:`image_check_scores`.
    """
    if workers <= 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def image_check_scores(images: Iterable[bytes | None], config: ImageCheckConfig | None = None,
                       workers: int = 2, pool: Executor | None = None) -> dict[str, np.ndarray]:
    """Scores of every image check (plus ``undecodable``) for encoded images, in input order.

    ``config`` is accepted for symmetry with :func:`flags` (scores do not depend on thresholds).
    ``pool``: a :func:`check_pool` to check in; without one, ``workers`` > 1 opens one for this call when
    there are at least ``MIN_POOLED`` images (fewer are checked here: spawning would cost more).
    """
    del config
    items = images if isinstance(images, Sequence) else list(images)
    if pool is None and workers > 1 and len(items) >= MIN_POOLED:
        with check_pool(workers) as own:
            return image_check_scores(items, pool=own)
    names = [*IMAGE_CHECKS, "undecodable"]
    rows = list(pool.map(_scores_of, items, chunksize=16)) if pool is not None else list(map(_scores_of, items))
    table = np.array(rows, dtype=np.float32).reshape(len(rows), len(names))
    return {name: table[:, i].copy() for i, name in enumerate(names)}


def flags(scores: dict[str, np.ndarray], config: ImageCheckConfig | None = None) -> dict[str, np.ndarray]:
    """Boolean flags ``score >= threshold`` for every check present in ``scores`` (NaN: not flagged);
    ``undecodable`` is flagged whenever its score is 1. ``outlier`` scores may be added to ``scores``."""
    config = config or ImageCheckConfig()
    thresholds = {f.name.replace("_", "-"): getattr(config, f.name) for f in fields(config)}
    out: dict[str, np.ndarray] = {}
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float32)
        if name == "undecodable":
            out[name] = values >= 1.0
        elif name in thresholds:
            with np.errstate(invalid="ignore"):
                out[name] = np.nan_to_num(values, nan=-1.0) >= thresholds[name]
    return out
