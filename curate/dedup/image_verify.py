"""Is one image a copy of another? The verified score of a pair and the bar it must clear.

:func:`curate.dedup.phash.aligned_similarity` measures shared structure under the best
alignment. Three additions turn it into a decision that holds on real data:

- **Tone.** Brightness, contrast, gamma and clipping change an image's grey levels, not its
  structure, yet clipping flattens bright strokes and costs a brightened copy of a scanned digit
  up to 0.09 of similarity. The pair is scored again after the grey levels of one image are mapped
  onto the other's distribution (quantile mapping, from the image with fewer saturated pixels onto
  the one with more, which reproduces the clipping); the score is the better of the two.
- **A bar calibrated per image.** How high a copy scores depends on the image. A smooth,
  low-resolution picture (an 8 x 8 scan scaled up) scores 0.995 or more against any copy of itself,
  and other scans of the same digit reach 0.95-0.98; a textured photo scores 0.93-0.99 against its
  rotated or cropped copies while different photos stay below 0.92. So each image measures its
  *copy floor*: its score against a standard strong change of itself (rotated 6 degrees, an 88%
  centre crop, 70% of the size, JPEG quality 40), harsher than the copies a dataset holds. A pair
  must clear ``max(base, 1 - FLOOR_SLACK * (1 - floor))`` (at most ``MAX_BAR``) with the lower
  floor of its two images: a copy may lose ``FLOOR_SLACK`` times what that change costs the image.
- **Re-framed copies.** A pair the alignment cannot explain (an off-centre crop, a stretch, a
  letterbox, a thumbnail, an overlay) is checked by geometric consensus on the border-trimmed images
  (:mod:`curate.dedup.geometric`), against the same calibrated bar.
- **A cheap screen.** The coarse alignment of a pair (one matrix-vector product over the cached
  coarse stack, with and without the tone mapping) rejects pairs far below their bar before the
  fine search runs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from curate.dedup import geometric
from curate.dedup.borders import trim_borders
from curate.dedup.phash import (
    _COARSE_PROBE,
    _PROBE,
    AlignFeatures,
    _centred,
    _sample,
    align_features,
    aligned_similarity,
    band_pass,
    grey_thumbnail,
)

__all__ = ["FLOOR_SLACK", "ImageView", "coarse_similarity", "copy_floor", "copy_similarity", "framed_view",
           "image_view", "pair_bar", "reframed_similarity", "tone_mapped"]

FLOOR_SLACK = 1.5  # a copy may lose this many times what the standard change costs its image
MAX_BAR = 0.99  # the calibrated bar never asks more than this
SCREEN_MARGIN = 0.06  # the fine search runs only when the coarse score is within this of the bar (copies
# measured at most 0.021 above their coarse score)
TONE_CHANGE = 0.03  # tone distributions this close at every quantile need no mapping: not searched
PERTURB = (6.0, 0.88, 0.7, 40)  # the standard change: rotation (degrees), centre crop, size, JPEG quality
_QUANTILES = np.linspace(0.0, 1.0, 65)
SATURATED = 1.5 / 255  # grey levels this close to an image's darkest or brightest count as saturated


@dataclass(frozen=True)
class ImageView:
    """What verification needs of one image, computed once: alignment features, the grey
    thumbnail, its saturated share and its tone distribution (for tone mapping)."""

    features: AlignFeatures
    grey: np.ndarray
    saturated: float
    levels: np.ndarray  # the grey levels at quantiles 0, 1/64, ..., 1: its tone distribution
    ranks: np.ndarray  # each pixel's mid-quantile among the thumbnail's levels (what tone mapping maps)
    ordered: np.ndarray  # the thumbnail's grey levels, sorted (what other images are mapped onto)
    detail: np.ndarray  # the border-trimmed grey image at its decoded size, uint8 (geometric consensus)
    bordered: bool = False  # whether trimming removed a border (then :func:`framed_view` is the trimmed image's)
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # its keypoints and framed view, once made


def _saturated(grey: np.ndarray) -> float:
    lo, hi = float(grey.min()), float(grey.max())
    return float(np.mean(grey <= lo + SATURATED) + np.mean(grey >= hi - SATURATED))


def _probe_features(thumb: np.ndarray) -> AlignFeatures:
    """The probed side of :func:`aligned_similarity` only (no coarse stack): cheap to recompute."""
    probe = _centred(_sample(thumb, _PROBE))
    coarse = _centred(_sample(thumb, _COARSE_PROBE))
    norm = float(np.linalg.norm(coarse))
    return AlignFeatures(thumb, probe, (coarse / norm if norm > 1e-12 else coarse).astype(np.float32), None,
                         float(thumb.std()) < 1e-4, float(np.linalg.norm(probe)) < 1e-4 * np.sqrt(len(probe)))


def _perturbed(img: Image.Image) -> Image.Image:
    """The standard strong change of an image (applied at its own resolution, as copies are made)."""
    angle, crop, size, quality = PERTURB
    img = img.rotate(angle, resample=Image.BILINEAR)
    w, h = img.size
    cw, ch = max(1, round(w * crop)), max(1, round(h * crop))
    img = img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
    img = img.resize((max(1, round(cw * size)), max(1, round(ch * size))), Image.BILINEAR)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def image_view(img: Image.Image, trim: bool = True) -> ImageView:
    """The :class:`ImageView` of an image (``trim``: with the view of its border-trimmed self, if any)."""
    grey = grey_thumbnail(img)
    trimmed = trim_borders(img) if trim else img
    return ImageView(align_features(band_pass(grey)), grey, _saturated(grey), np.quantile(grey, _QUANTILES),
                     _mid_ranks(grey), np.sort(grey, axis=None), np.asarray(trimmed.convert("L"), dtype=np.uint8),
                     trimmed is not img)


def framed_view(view: ImageView) -> ImageView | None:
    """The view of the border-trimmed image (None when the image has no border), made on first use: only
    pairs the alignment misses ask for it."""
    if not view.bordered:
        return None
    if "framed" not in view.cache:
        view.cache["framed"] = image_view(Image.fromarray(view.detail), trim=False)
    return view.cache["framed"]


def copy_floor(img: Image.Image, view: ImageView) -> float:
    """The image's score against the standard strong change of itself (``PERTURB``). Above
    ``1 - (1 - MAX_BAR) / FLOOR_SLACK`` every floor gives the same bar, so the search stops there."""
    enough = 1.0 - (1.0 - MAX_BAR) / FLOOR_SLACK
    probe = _probe_features(band_pass(grey_thumbnail(_perturbed(img))))
    return float(aligned_similarity(view.features, probe, enough=enough))


def pair_bar(floor_a: float, floor_b: float, base: float) -> float:
    """The score a pair must reach: ``base``, raised for images whose copies all score high."""
    calibrated = 1.0 - FLOOR_SLACK * (1.0 - min(floor_a, floor_b))
    return float(max(base, min(calibrated, MAX_BAR)))


def _mid_ranks(grey: np.ndarray) -> np.ndarray:
    """Each pixel's quantile in ``(0, 1)``: the middle of its level's share (equal levels, equal rank)."""
    _, inverse, counts = np.unique(grey, return_inverse=True, return_counts=True)
    quantile = (np.cumsum(counts) - counts / 2) / grey.size
    return quantile[inverse].reshape(grey.shape)


def _mapped(ranks: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    return np.interp(ranks, (np.arange(ordered.size) + 0.5) / ordered.size, ordered).astype(np.float32)


def tone_mapped(grey: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``grey`` with its levels mapped onto ``reference``'s distribution (monotone; equal levels
    stay equal, so flat regions get no noise)."""
    return _mapped(_mid_ranks(grey), np.sort(reference, axis=None))


def _roles(a: ImageView, b: ImageView) -> tuple[ImageView, AlignFeatures | None]:
    """(reference, the other's probe after tone mapping onto it): the more saturated image is the
    reference. None instead of the probe when the two tone distributions agree within ``TONE_CHANGE``
    at every 1/64 quantile (then the mapping would change nothing)."""
    ref, other = (a, b) if a.saturated >= b.saturated else (b, a)
    if float(np.max(np.abs(ref.levels - other.levels))) < TONE_CHANGE:
        return ref, None
    return ref, _probe_features(band_pass(_mapped(other.ranks, ref.ordered)))


def _coarse(a: AlignFeatures, b: AlignFeatures) -> float:
    if a.flat_thumb or b.flat_probe:
        return 1.0 if a.flat_thumb and b.flat_probe else 0.0
    return float(np.max(a.coarse_stack @ b.coarse_probe))


def coarse_similarity(a: ImageView, b: ImageView, enough: float | None = None) -> float:
    """The better coarse alignment score of the pair, plain or tone-mapped (a cheap lower estimate).
    The tone-mapped one is computed only when the plain one is below ``enough`` (when given)."""
    plain = _coarse(a.features, b.features)
    if enough is not None and plain >= enough:
        return float(np.clip(plain, 0.0, 1.0))
    ref, mapped = _roles(a, b)
    return float(np.clip(plain if mapped is None else max(plain, _coarse(ref.features, mapped)), 0.0, 1.0))


def copy_similarity(a: ImageView, b: ImageView, bar: float | None = None) -> float:
    """The better of the plain and the tone-mapped aligned similarity, in ``[0, 1]``. With ``bar``,
    a pair whose coarse score is more than ``SCREEN_MARGIN`` below it is not searched finely (the
    coarse score is returned), and the search stops once the bar is reached."""
    if bar is not None:
        coarse = coarse_similarity(a, b, enough=bar - SCREEN_MARGIN)
        if coarse < bar - SCREEN_MARGIN:
            return coarse
    plain = aligned_similarity(a.features, b.features, enough=bar)
    if bar is not None and plain >= bar:
        return plain
    ref, mapped = _roles(a, b)
    return plain if mapped is None else max(plain, aligned_similarity(ref.features, mapped, enough=bar))


def _keypoints(view: ImageView) -> geometric.Keypoints:
    if "keypoints" not in view.cache:
        view.cache["keypoints"] = geometric.keypoints(view.detail)
    return view.cache["keypoints"]


FRAMING_GAIN = 0.05  # trimmed views are compared only when trimming brings the aspect ratios this much closer


def _aspect(shape: tuple[int, ...]) -> float:
    return float(np.log(shape[1] / shape[0]))


def _framing_explains(a: ImageView, b: ImageView) -> bool:
    """Whether trimming the borders reconciles the two images' shapes (a letterbox or pillarbox) by
    at least ``FRAMING_GAIN`` in log aspect ratio. Two images trimmed alike (scans of digits on black)
    gain nothing: their trimmed views would drop the placement that tells look-alikes apart."""
    whole = abs(_aspect(a.grey.shape) - _aspect(b.grey.shape))
    trimmed = abs(_aspect(a.detail.shape) - _aspect(b.detail.shape))
    return trimmed < whole - FRAMING_GAIN


def reframed_similarity(a: ImageView, b: ImageView, bar: Callable[[], float] | None = None,
                        lowest: float | None = None) -> float | None:
    """For a pair the alignment cannot explain: its similarity after the crop / stretch / scale their
    keypoints agree on, one image inside the other (:func:`curate.dedup.geometric.consensus_similarity`),
    or, with no such map, the copy similarity of the border-trimmed views when trimming reconciles
    their shapes (a letterboxed thumbnail has too few keypoints). None when neither applies. ``bar``:
    the pair's bar, asked for only when needed (it may cost a copy floor); ``lowest``: trimmed views
    whose coarse score is below it are not searched. Keypoints are computed once per view, on first use."""
    if a.features.flat_thumb or b.features.flat_thumb:
        return None
    score = geometric.consensus_similarity(a.detail, b.detail, _keypoints(a), _keypoints(b))
    if score is not None or not (a.bordered or b.bordered) or not _framing_explains(a, b):
        return score
    fa, fb = framed_view(a) or a, framed_view(b) or b
    if lowest is not None and coarse_similarity(fa, fb, enough=lowest) < lowest:
        return None
    return copy_similarity(fa, fb, None if bar is None else bar())
