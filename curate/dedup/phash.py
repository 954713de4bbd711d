"""Perceptual hashes for near-copy candidates, and an aligned pairwise check to verify them.

Two tools for image near-copy dedup without any model:

- :func:`image_hash` turns an image into a 64-bit DCT hash of a canonical form that a
  horizontal flip, re-encoding, resizing, brightness changes and light crops or rotations
  barely move; :func:`candidate_pairs` finds every pair of hashes within a Hamming
  distance without comparing all pairs (the 64 bits are split into bands: two hashes
  within distance ``d`` agree on at least one of ``d + 1`` bands, so sorting by each band
  finds them all; each candidate is then checked with the exact distance).
- :func:`aligned_similarity` is the precise, pairwise check: it compares small grey
  band-passed thumbnails of two images over a grid of alignments (identity or mirror, a
  range of scales, small rotations and shifts, then a finer search around the best) and
  returns the best normalised correlation. Copies that were flipped, cropped by up to 20%
  or rotated by up to 10 degrees score near 1; different images score far lower (the
  measured margins are in tests/dedup/test_phash.py).

The hash canonical form is perceptual-v2's structure (see curate/embed/perceptual.py),
unwhitened: a ``64 x 64`` grey thumbnail (squashed to a square) is blurred, and over three
nested centre squares (100%, 90%, 81% of the side, Hann-windowed so borders count
little) the 2-D DCT is taken, with the mirror-symmetric part of the image in the even
horizontal frequencies and the magnitude of its antisymmetric part in the odd ones, so a
flipped image has the same form. The 64 lowest frequencies (DC dropped) give the bits:
each is set when its coefficient is above the median of its half (the even or the odd
frequencies), so about half the bits are set for any image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from curate.embed.perceptual_form import PerceptualForm
from curate.io.images import visible

__all__ = [
    "HASH_BITS",
    "AlignFeatures",
    "align_features",
    "align_thumbnail",
    "aligned_similarity",
    "band_keys",
    "band_pass",
    "candidate_pairs",
    "canonical_coefficients",
    "frame_hashes",
    "grey_thumbnail",
    "hamming",
    "hash_bands",
    "hash_of_coefficients",
    "image_hash",
    "image_hashes",
    "mirrored",
    "popcount",
    "window_hashes",
]

HASH_BITS = 64
HASH_THUMB = 64  # side of the square grey thumbnail a hash is computed from
HASH_FREQS = 9  # the hash bits are the 64 lowest of these x these DCT frequencies (DC dropped)
HASH_SCALES = (1.0, 0.9, 0.81)  # centre squares the canonical form pools over
HASH_BLUR = 2.0  # Gaussian sigma (thumbnail pixels) before the DCT

# aligned_similarity: thumbnails, probe disc and search grid.
ALIGN_SIDE = 64  # the shorter side of an aligned thumbnail (aspect ratio kept)
PROBE_RADIUS = 0.3  # probe disc radius, in units of the shorter side
PROBE_POINTS = 21  # probe grid points across the disc diameter
BAND = (1.0, 4.0)  # difference-of-Gaussians sigmas (thumbnail pixels): detail, not gradients
SCALES = tuple(float(s) for s in np.geomspace(0.78, 1.28, 9))
ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)
SHIFTS = (-0.05, 0.0, 0.05)

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


def _grey(img: Image.Image) -> Image.Image:
    """8-bit luma (BT.601), whatever the mode; transparency composited as a person sees it
    (:func:`curate.io.images.visible`)."""
    img = visible(img)
    return img.convert("L") if img.mode == "RGB" else img


@lru_cache(maxsize=2048)  # one per side length and sigma: thumbnails take any side of 64-256 px
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """Row-normalised Gaussian smoothing matrix (edges renormalised, so no dark border)."""
    x = np.arange(n, dtype=np.float64)
    d = (x[:, None] - x[None, :]) / sigma
    k = np.where(np.abs(d) <= 4.0, np.exp(-0.5 * d**2), 0.0)  # cut at 4 sigma: no float32 denormals
    return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


@lru_cache(maxsize=8)
def _gauss_taps(sigma: float) -> np.ndarray:
    """The Gaussian's taps out to 4 sigma (as :func:`_gauss_matrix` cuts it), unnormalised."""
    r = int(np.floor(4.0 * sigma + 1e-9))
    k = np.arange(-r, r + 1, dtype=np.float64) / sigma
    return np.exp(-0.5 * k**2).astype(np.float32)


@lru_cache(maxsize=2048)
def _gauss_norm(n: int, sigma: float) -> np.ndarray:
    """What the taps sum to at each of ``n`` positions inside the edges (edges renormalised, no dark border)."""
    taps = _gauss_taps(sigma)
    r = len(taps) // 2
    return np.convolve(np.ones(n, np.float64), taps, mode="full")[r:r + n].astype(np.float32)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with edges renormalised: :func:`_gauss_matrix` applied to rows and columns, as one
    separable OpenCV filter (a dense matrix product here runs into BLAS threading on tiny arrays)."""
    import cv2

    taps = _gauss_taps(sigma)
    out = cv2.sepFilter2D(np.ascontiguousarray(a, dtype=np.float32), cv2.CV_32F, taps, taps,
                          borderType=cv2.BORDER_CONSTANT)
    return out / _gauss_norm(a.shape[0], sigma)[:, None] / _gauss_norm(a.shape[1], sigma)[None, :]


def _hash_layout() -> tuple[np.ndarray, np.ndarray]:
    """Positions (in the structure vector) of the 64 lowest frequencies, and which are odd columns."""
    u, v = np.meshgrid(np.arange(HASH_FREQS), np.arange(HASH_FREQS), indexing="ij")
    order = sorted(zip(u.ravel(), v.ravel()), key=lambda p: (p[0] ** 2 + p[1] ** 2, p[0] + p[1], p[1]))
    picked = [p for p in order if p != (0, 0)][:HASH_BITS]
    return np.array([r * HASH_FREQS + c - 1 for r, c in picked]), np.array([c % 2 == 1 for _, c in picked])


_POSITIONS, _ODD = _hash_layout()


@lru_cache(maxsize=1)
def _canonical() -> PerceptualForm:
    return PerceptualForm(thumb=HASH_THUMB, freqs=HASH_FREQS, whiten=0.0, blur=HASH_BLUR, scales=HASH_SCALES)


def canonical_coefficients(img: Image.Image) -> np.ndarray:
    """The 64 coefficients :func:`image_hash` thresholds, each half (odd and even frequencies) minus its
    median, as a unit ``float32`` vector: two images' cosine says what their Hamming distance says, with
    the resolution the 64 bits lose (a candidate screen that needs no decode)."""
    grey = np.asarray(_grey(img).resize((HASH_THUMB, HASH_THUMB), Image.BOX), dtype=np.float32) / 255.0
    coeffs = _canonical().structure(grey)[0][_POSITIONS].astype(np.float64)
    for block in (_ODD, ~_ODD):  # each block split at its own median: about half the bits set
        coeffs[block] -= np.median(coeffs[block])
    norm = float(np.linalg.norm(coeffs))
    return (coeffs / norm if norm > 1e-12 else coeffs).astype(np.float32)


def hash_of_coefficients(coeffs: np.ndarray) -> int:
    """The 64-bit hash of :func:`canonical_coefficients`: a bit set where a coefficient is above its half's median."""
    return int(np.packbits((coeffs > 0).astype(np.uint8)).view(">u8")[0])


def image_hash(img: Image.Image) -> int:
    """A 64-bit perceptual hash (an ``int`` in ``[0, 2**64)``), mirror-invariant.

    Copies that were re-encoded, resized, brightened, flipped, lightly cropped or rotated
    land within a few bits of the original; unrelated images differ in about half.
    """
    return hash_of_coefficients(canonical_coefficients(img))


WINDOW_SIDES = (0.7, 0.77, 0.84, 0.92)  # window_hashes: window sides, as a share of the image's sides
WINDOW_PLACES = (0.0, 0.5, 1.0)  # and where each window sits along each axis (start, middle, end)
_DCT_SIDE = 32  # window hashes: the plain DCT hash of a 32 x 32 grey thumbnail, its 8 x 8 lowest frequencies


@lru_cache(maxsize=1)
def _dct_rows() -> np.ndarray:
    """The 8 lowest rows of the orthonormal DCT-II matrix of size ``_DCT_SIDE``."""
    n = np.arange(_DCT_SIDE)
    rows = np.cos(np.pi * (2 * n[None, :] + 1) * np.arange(8)[:, None] / (2 * _DCT_SIDE))
    rows[0] /= np.sqrt(2)
    return (rows * np.sqrt(2 / _DCT_SIDE)).astype(np.float32)


def _dct_coefficients(thumbs: np.ndarray) -> np.ndarray:
    """The 8 x 8 lowest DCT frequencies of each ``[k, 32, 32]`` thumbnail, ``[k, 8, 8]`` (rows: vertical)."""
    d = _dct_rows()
    return d @ thumbs @ np.ascontiguousarray(d.T)  # batched matmul


def _dct_hashes(coeffs: np.ndarray) -> np.ndarray:
    """The plain DCT hash of each ``[k, 8, 8]`` coefficient block, ``uint64[k]`` (bit 0 unused, the 63
    frequencies above their median set)."""
    flat = coeffs.reshape(len(coeffs), -1)[:, 1:]
    flat = np.where(np.abs(flat) < 1e-3, 0.0, flat)  # float dust: a featureless image hashes to 0, not to noise
    bits = np.zeros((len(coeffs), HASH_BITS), dtype=np.uint8)
    bits[:, 1:] = flat > np.median(flat, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def mirrored(coeffs: np.ndarray) -> np.ndarray:
    """DCT coefficients of the horizontally mirrored thumbnails: odd horizontal frequencies change sign."""
    return coeffs * np.where(np.arange(coeffs.shape[-1]) % 2 == 1, -1.0, 1.0).astype(coeffs.dtype)


def frame_hashes(img: Image.Image) -> tuple[np.ndarray, int]:
    """``(windows, mirror)``: :func:`window_hashes` and the plain DCT hash of the mirrored border-trimmed
    image (what ``windows[0]`` is of the image itself), from one grey thumbnail and one batched DCT."""
    coeffs = _dct_coefficients(_window_thumbs(img))
    return _dct_hashes(coeffs), int(_dct_hashes(mirrored(coeffs[:1]))[0])


def window_hashes(img: Image.Image) -> np.ndarray:
    """``uint64[1 + len(WINDOW_SIDES) * len(WINDOW_PLACES) ** 2]``: a plain DCT hash of the
    border-trimmed image, then of windows of it (each side in ``WINDOW_SIDES``, placed at the start,
    middle or end of each axis). A letterboxed copy hashes like its original once trimmed, and an
    off-centre crop like the window nearest to it (within about 12 bits where unrelated images differ
    in 18 or more). Cheap: one grey array at most 128 pixels a side, one small resize per window, one
    batched DCT."""
    return _dct_hashes(_dct_coefficients(_window_thumbs(img)))


def _window_thumbs(img: Image.Image) -> np.ndarray:
    """``[37, 32, 32]`` grey thumbnails: the border-trimmed image, then each window of it."""
    import cv2

    from curate.dedup.borders import trim_borders

    grey = np.asarray(_grey(trim_borders(img)), dtype=np.float32)
    h, w = grey.shape
    if max(h, w) > 4 * _DCT_SIDE:
        scale = 4 * _DCT_SIDE / max(h, w)
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        h, w = grey.shape
    boxes = [(0, 0, w, h)]
    for side in WINDOW_SIDES:
        cw, ch = max(1, round(w * side)), max(1, round(h * side))
        boxes += [(round((w - cw) * fx), round((h - ch) * fy), cw, ch) for fy in WINDOW_PLACES for fx in WINDOW_PLACES]
    size = (_DCT_SIDE, _DCT_SIDE)
    return np.stack([cv2.resize(grey[y:y + ch, x:x + cw], size, interpolation=cv2.INTER_AREA)
                     for x, y, cw, ch in boxes])


def image_hashes(images: Iterable[Image.Image]) -> np.ndarray:
    """:func:`image_hash` of each image, as a ``uint64`` array."""
    return np.array([image_hash(img) for img in images], dtype=np.uint64)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return (int(a) ^ int(b)).bit_count()


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint64`` (vectorised)."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x).astype(np.int64)
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return ((x * _H01) >> np.uint64(56)).astype(np.int64)


def _as_hashes(hashes) -> np.ndarray:
    h = np.asarray(hashes)
    if h.dtype != np.uint64:
        h = np.array([int(x) for x in np.ravel(h)], dtype=np.uint64)
    return h.ravel()


def band_keys(hashes, bands: int) -> np.ndarray:
    """``[bands, n]`` keys: band ``b`` is the ``b``-th contiguous slice of the 64 bits."""
    if not 1 <= bands <= HASH_BITS:
        raise ValueError(f"bands must be in 1..{HASH_BITS}, got {bands}")
    h = _as_hashes(hashes)
    edges = np.linspace(0, HASH_BITS, bands + 1).round().astype(int)
    keys = np.empty((bands, len(h)), dtype=np.uint64)
    for b in range(bands):
        width = int(edges[b + 1] - edges[b])
        mask = np.uint64((1 << width) - 1)
        keys[b] = (h >> np.uint64(HASH_BITS - edges[b + 1])) & mask
    return keys


def hash_bands(hashes, bands: int = 4) -> list[np.ndarray]:
    """The buckets: for each band, each group of two or more hashes equal on that band.

    Returns a list of index arrays (ascending), band by band. Any two hashes within
    Hamming distance ``bands - 1`` share at least one bucket.
    """
    keys = band_keys(hashes, bands)
    buckets: list[np.ndarray] = []
    for key in keys:
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        ends = np.r_[starts[1:], len(ks)]
        buckets.extend(np.sort(order[s:e]) for s, e in zip(starts, ends) if e - s >= 2)
    return buckets


def candidate_pairs(hashes, max_distance: int, bands: int | None = None) -> np.ndarray:
    """Every pair ``(i, j)``, ``i < j``, whose hashes differ in at most ``max_distance`` bits.

    Returns an ``[m, 2]`` ``int64`` array sorted by ``(i, j)``. With the default
    ``bands = max_distance + 1`` the answer is complete (pigeonhole: such a pair agrees on
    at least one band); fewer bands is faster but may miss pairs. No n x n matrix is
    built: per band the hashes are sorted by the band key and each hash is compared with
    the next ones of its bucket, one offset at a time, so memory stays O(n) plus the
    answer (time grows with the largest bucket). A pair found in several bands is kept
    once, in the first band it shares.
    """
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    h = _as_hashes(hashes)
    bands = min(max_distance + 1, HASH_BITS) if bands is None else bands
    keys = band_keys(h, bands)
    found: list[np.ndarray] = []
    for b in range(bands):
        order = np.argsort(keys[b], kind="stable")
        ks = keys[b][order]
        offset = 1
        while offset < len(order):
            same = np.flatnonzero(ks[offset:] == ks[:-offset])
            if not len(same):
                break  # sorted keys: no run is longer than this offset
            i, j = order[same], order[same + offset]
            keep = popcount(h[i] ^ h[j]) <= max_distance
            for earlier in range(b):  # already found in an earlier band
                keep &= keys[earlier][i] != keys[earlier][j]
            if keep.any():
                i, j = i[keep], j[keep]
                found.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1))
            offset += 1
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


# -- aligned similarity -------------------------------------------------------------------


def grey_thumbnail(img: Image.Image) -> np.ndarray:
    """A grey thumbnail in ``[0, 1]``, shorter side ``ALIGN_SIDE``, aspect ratio kept (up to 4:1)."""
    grey = _grey(img)
    w, h = grey.size
    scale = ALIGN_SIDE / max(1, min(w, h))
    size = (min(4 * ALIGN_SIDE, max(1, round(w * scale))), min(4 * ALIGN_SIDE, max(1, round(h * scale))))
    # BOX averages when shrinking; growing a small image with it would draw block edges that the
    # band-pass takes for detail, so small images are scaled up bilinearly
    method = Image.BOX if size[0] <= w else Image.BILINEAR
    return np.asarray(grey.resize(size, method), dtype=np.float32) / 255.0


def band_pass(grey: np.ndarray) -> np.ndarray:
    """Difference of Gaussians (``BAND``): detail, not gradients."""
    return _blur(grey, BAND[0]) - _blur(grey, BAND[1])


def align_thumbnail(img: Image.Image) -> np.ndarray:
    """What :func:`aligned_similarity` compares: the band-passed :func:`grey_thumbnail`. Pass it
    instead of the image to check one image against many without recomputing it."""
    return band_pass(grey_thumbnail(img))


def _probe_points(points: int) -> np.ndarray:
    t = np.linspace(-PROBE_RADIUS, PROBE_RADIUS, points)
    x, y = np.meshgrid(t, t)
    inside = x**2 + y**2 <= PROBE_RADIUS**2 + 1e-12
    return np.stack([x[inside], y[inside]], axis=1).astype(np.float32)  # [P, 2] (x, y), shorter-side units


_PROBE = _probe_points(PROBE_POINTS)
_COARSE_PROBE = _probe_points(PROBE_POINTS // 2 + 1)  # the coarse search uses every other point


def _sample(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``img`` at ``xy`` ([..., 2] in shorter-side units from the centre)."""
    h, w = img.shape
    unit = min(h, w)
    px = np.clip(xy[..., 0] * unit + (w - 1) / 2, 0, w - 1.001)
    py = np.clip(xy[..., 1] * unit + (h - 1) / 2, 0, h - 1.001)
    x0, y0 = px.astype(np.int64), py.astype(np.int64)  # floor: both are >= 0
    fx, fy = px - x0, py - y0
    flat = img.ravel()
    i00 = y0 * w + x0
    top = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    bottom = flat[i00 + w] * (1 - fx) + flat[i00 + w + 1] * fx
    return top * (1 - fy) + bottom * fy


def _transforms(flips, scales, angles, dxs, dys) -> np.ndarray:
    """All combinations as rows ``(flip, scale, angle_deg, dx, dy)``."""
    grid = np.meshgrid(flips, scales, angles, dxs, dys, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1).astype(np.float64)


def _transformed_samples(a: np.ndarray, points: np.ndarray, params: np.ndarray) -> np.ndarray:
    """``a`` sampled at ``points`` under each transform: ``[T, P]``."""
    flip, scale, angle, dx, dy = (c[:, None].astype(np.float32) for c in params.T)
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta), np.sin(theta)
    x = points[None, :, 0] * np.where(flip > 0, -scale, scale)
    y = points[None, :, 1] * scale
    xy = np.stack([cos * x - sin * y + dx, sin * x + cos * y + dy], axis=-1)
    return _sample(a, xy)


def _correlations(a: np.ndarray, points: np.ndarray, probe_b: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Normalised correlation of ``probe_b`` (``b`` at ``points``) with ``a`` sampled under each transform."""
    va = _transformed_samples(a, points, params)
    va -= va.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(va, axis=1) * np.linalg.norm(probe_b)
    return np.where(norm > 1e-12, va @ probe_b / np.maximum(norm, 1e-12), 0.0)


def _centred(values: np.ndarray) -> np.ndarray:
    return values - values.mean()


_COARSE = _transforms((0.0, 1.0), SCALES, ANGLES, SHIFTS, SHIFTS)  # the coarse search grid, [T, 5]


def _coarse_window(thumb: np.ndarray) -> np.ndarray:
    """The middle of a thumbnail that the coarse transforms reach: its longer side cut to the shorter one
    (plus one where their difference is odd, so the centre stays on the same pixel grid). The coarse probe
    never leaves it (radius ``PROBE_RADIUS`` times the largest scale, plus a shift, is under half the
    shorter side), so the stack is the same, and the sampler is one of three shapes, not one per aspect."""
    h, w = thumb.shape
    side = min(h, w)
    ch, cw = side + (h - side) % 2, side + (w - side) % 2
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(thumb[top:top + ch, left:left + cw])


_COARSE_REACH = PROBE_RADIUS * max(SCALES) + max(SHIFTS) * np.sqrt(2)  # how far from the centre the coarse probe goes
assert _COARSE_REACH < 0.49  # inside the window of :func:`_coarse_window`


@lru_cache(maxsize=32)
def _coarse_sampler(h: int, w: int):
    """The coarse stack's bilinear sampling as a sparse matrix ``[T * P, h * w]`` (4 weights a row):
    where the coarse transforms put the probe depends only on the thumbnail's shape, so it is built
    once per shape and every image's stack is one sparse product (about 10x faster than sampling)."""
    from scipy.sparse import csr_matrix

    flip, scale, angle, dx, dy = (c[:, None].astype(np.float32) for c in _COARSE.T)
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta), np.sin(theta)
    x = _COARSE_PROBE[None, :, 0] * np.where(flip > 0, -scale, scale)
    y = _COARSE_PROBE[None, :, 1] * scale
    unit = min(h, w)
    px = np.clip((cos * x - sin * y + dx) * unit + (w - 1) / 2, 0, w - 1.001).ravel()
    py = np.clip((sin * x + cos * y + dy) * unit + (h - 1) / 2, 0, h - 1.001).ravel()
    x0, y0 = px.astype(np.int64), py.astype(np.int64)
    fx, fy = px - x0, py - y0
    i00 = y0 * w + x0
    cols = np.stack([i00, i00 + 1, i00 + w, i00 + w + 1], axis=1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    rows = np.repeat(np.arange(len(px)), 4)
    return csr_matrix((weights.ravel(), (rows, cols.ravel())), shape=(len(px), h * w))


@dataclass(frozen=True)
class AlignFeatures:
    """Everything :func:`aligned_similarity` needs of one image, computed once: its thumbnail (the
    image that is transformed), its probes (the image that is probed) and its coarse stack: the
    thumbnail sampled at the coarse probe under every coarse transform, rows centred and unit, so the
    coarse search of a pair is one matrix-vector product. About 270 KB per image."""

    thumb: np.ndarray
    probe: np.ndarray  # centred samples at the full probe
    coarse_probe: np.ndarray  # centred unit samples at the coarse probe
    coarse_stack: np.ndarray | None  # [T, coarse probe points], centred unit rows (zero rows where flat);
    # None for features that are only ever probed (curate.dedup.image_verify)
    flat_thumb: bool
    flat_probe: bool


def align_features(img: Image.Image | np.ndarray) -> AlignFeatures:
    """The :class:`AlignFeatures` of an image or of its :func:`align_thumbnail`."""
    thumb = img if isinstance(img, np.ndarray) else align_thumbnail(img)
    probe = _centred(_sample(thumb, _PROBE))
    coarse = _centred(_sample(thumb, _COARSE_PROBE))
    centre = _coarse_window(thumb)
    stack = (_coarse_sampler(*centre.shape) @ centre.ravel()).reshape(len(_COARSE), len(_COARSE_PROBE))
    stack -= stack.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(stack, axis=1, keepdims=True)
    stack = np.where(norms > 1e-12, stack / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    cn = float(np.linalg.norm(coarse))
    return AlignFeatures(thumb, probe, (coarse / cn if cn > 1e-12 else coarse).astype(np.float32), stack,
                         float(thumb.std()) < 1e-4, float(np.linalg.norm(probe)) < 1e-4 * np.sqrt(len(probe)))


def _features(x: Image.Image | np.ndarray | AlignFeatures) -> AlignFeatures:
    return x if isinstance(x, AlignFeatures) else align_features(x)


def aligned_similarity(a: Image.Image | np.ndarray | AlignFeatures, b: Image.Image | np.ndarray | AlignFeatures,
                       enough: float | None = None) -> float:
    """How well ``b`` matches ``a`` under the best alignment, in ``[0, 1]``.

    A disc around the centre of ``b`` (radius ``PROBE_RADIUS`` of its shorter side) is
    compared with ``a`` mirrored or not, scaled by 0.78-1.28, rotated by up to 10 degrees
    and shifted by up to 5%: a coarse grid on a sparse probe, then two finer searches
    around the best few on the full probe. Thumbnails are band-passed (difference of
    Gaussians) grey, so smooth gradients cannot pass for shared structure. The score is the
    best normalised correlation, clipped at 0. Two featureless images score 1, a
    featureless one against a textured one 0. Either image may be given as its
    :func:`align_thumbnail` or :func:`align_features` (to compare one image with many).
    ``enough``: stop searching once the score reaches it (a verifier only needs to know that
    a pair clears its bar); the score returned is then at least ``enough``.
    """
    fa, fb = _features(a), _features(b)
    if fa.flat_thumb or fb.flat_probe:
        return 1.0 if fa.flat_thumb and fb.flat_probe else 0.0
    coarse = fa.coarse_stack @ fb.coarse_probe
    best_score = -1.0
    for start in _COARSE[np.argsort(-coarse)[:2]]:
        best = start
        score = float(_correlations(fa.thumb, _PROBE, fb.probe, best[None])[0])
        for ds, da, dt in ((0.03, 2.5, 0.02), (0.012, 1.0, 0.008)):
            if enough is not None and score >= enough:
                break
            f, s, ang, x, y = best
            around = _transforms((f,), s * np.array([1 - ds, 1, 1 + ds]), ang + np.array([-da, 0, da]),
                                 x + np.array([-dt, 0, dt]), y + np.array([-dt, 0, dt]))
            scores = _correlations(fa.thumb, _PROBE, fb.probe, around)
            if scores.max() > score:
                best, score = around[int(np.argmax(scores))], float(scores.max())
        best_score = max(best_score, score)
        if enough is not None and best_score >= enough:
            break
    return float(np.clip(best_score, 0.0, 1.0))
