"""Measurements behind the image checks, on one RGB thumbnail (see :mod:`curate.audit.image_checks`).

Everything here is numpy on an array of at most 256 x 256 pixels: a few milliseconds per image.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L"

BLUR_SCALES = (0.7, 1.4, 2.8)  # the three re-blurs the edges' own blur is measured with
EDGE_FLOOR = 1.0  # grey levels per pixel of the most blurred gradient below which nothing is judged for blur
EDGE_SHARE_OF_P99 = 0.25  # ... and below this share of the image's own 99th percentile gradient
MIN_EDGE_SHARE = 0.002  # fewer edge pixels than this share: no structure to judge, blurry = 0
MIN_ENERGY_LOSS = 0.01  # log energy the coarsest blur must remove (a linear ramp loses none): else blurry = 0
BLUR_HALF = 1.6  # blur sigma (thumbnail pixels) at which the blurry score is 0.5
STRUCTURE_SCALE = 1.4  # blur before measuring structure (noise out)
STRUCTURE_LEVEL = 3.0  # grey levels per pixel (after that blur) that count as visible structure
STRUCTURE_FULL = 0.02  # share of structured pixels at which low-information reaches 0
DARK_PERCENTILE = 99.9  # dark: even the brightest tones (bar 0.1%) are dim; a night scene keeps its lights
WASH_PERCENTILE = 0.2  # washed out: even the darkest tones (bar 0.2%) are light; dark accents (text) keep an image
WASH_FROM, WASH_TO = 64.0, 224.0  # luma of those darkest tones mapped to washed-out 0..1
WHITE = 250  # luma of clipped highlights (or of a white background)
BLOWN_FULL = 0.4  # share of clipped pixels at which blown-out can reach 1
FLAT_STEP = 2.0  # |dx| + |dy| below this (grey levels): a flat colour area, drawn rather than photographed
PHOTO_FULL = 0.5  # share of photographic (solid, textured) unclipped pixels at which blown-out can reach 1


def gaussian(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array (reflected borders)."""
    r = max(1, int(3.0 * sigma + 0.5))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    h, w = a.shape
    mode = "reflect" if min(h, w) > r else "edge"
    p = np.pad(a, r, mode=mode)
    rows = k[0] * p[:, 0:w]
    for i in range(1, 2 * r + 1):
        rows += k[i] * p[:, i:i + w]
    out = k[0] * rows[0:h]
    for i in range(1, 2 * r + 1):
        out += k[i] * rows[i:i + h]
    return out


def _grad2(a: np.ndarray) -> np.ndarray:
    """Squared forward-difference gradient on the (h-1, w-1) grid."""
    dx = a[:-1, 1:] - a[:-1, :-1]
    dy = a[1:, :-1] - a[:-1, :-1]
    return dx * dx + dy * dy


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion by a (2r+1) x (2r+1) square (outside the image counts as set)."""
    h, w = mask.shape
    p = np.pad(mask, r, mode="edge")
    rows = p[:, 0:w].copy()
    for i in range(1, 2 * r + 1):
        rows &= p[:, i:i + w]
    out = rows[0:h].copy()
    for i in range(1, 2 * r + 1):
        out &= rows[i:i + h]
    return out


_SIGMAS = np.geomspace(0.05, 50.0, 1000)
_S0, _S1, _S2 = (s * s for s in BLUR_SCALES)
# log(E(s0) / E(s2)) / log(E(s0) / E(s1)) for a blur b: increasing in b, from 1 to (s2^2 - s0^2) / (s1^2 - s0^2)
_RATIOS = np.log((_SIGMAS**2 + _S2) / (_SIGMAS**2 + _S0)) / np.log((_SIGMAS**2 + _S1) / (_SIGMAS**2 + _S0))


class ImageFeatures:
    """The measurements of one decoded image: an RGB thumbnail ``rgb`` (h, w, 3) uint8 and the original size."""

    def __init__(self, rgb: np.ndarray, width: int, height: int) -> None:
        self.rgb = rgb
        self.width = int(width)
        self.height = int(height)

    # -- shared intermediates -------------------------------------------------------------------------------------

    @cached_property
    def grey(self) -> np.ndarray:
        return self.rgb.astype(np.float32) @ _LUMA

    @cached_property
    def _hist(self) -> np.ndarray:
        return np.bincount(np.clip(self.grey + 0.5, 0, 255).astype(np.uint8).ravel(), minlength=256)

    @cached_property
    def _cdf(self) -> np.ndarray:
        return np.cumsum(self._hist) / max(1, self._hist.sum())

    def percentile(self, q: float) -> float:
        """Luma percentile (0..255) from the 256-bin histogram."""
        return float(np.searchsorted(self._cdf, q / 100.0))

    def smooth(self, sigma: float) -> np.ndarray:
        """The grey thumbnail blurred by ``sigma`` (cached per sigma; built on the largest smaller one cached)."""
        cache = self.__dict__.setdefault("_smooth", {})
        if sigma not in cache:
            done = [s for s in cache if s < sigma]
            base = max(done, default=0.0)
            src = cache[base] if base else self.grey
            cache[sigma] = gaussian(src, float(np.sqrt(sigma * sigma - base * base)))
        return cache[sigma]

    # -- checks ---------------------------------------------------------------------------------------------------

    @cached_property
    def blur_sigma(self) -> float:
        """Blur of the image's own edges, as a Gaussian sigma in thumbnail pixels (NaN: too small to judge).

        ``E(s)`` is the gradient energy after a Gaussian blur of ``s`` on the image's structure: pixels
        whose ``BLUR_SCALES[2]``-blurred gradient reaches ``EDGE_FLOOR`` levels per pixel and a quarter of
        the image's own 99th percentile (its strongest edges, where noise and JPEG blocks matter least).
        For structure already blurred by ``b``, ``E(s) ~ (b^2 + s^2) ** (-k / 2)`` with ``k`` 1 for a step
        edge, 3 for a thin line, other values for dots and textures; the ratio
        ``log(E(s0) / E(s2)) / log(E(s0) / E(s1))`` does not depend on ``k`` (nor on contrast or on how
        much of the image is edges) and is solved here for ``b``. ``s0`` > 0 keeps pixel noise out.
        """
        g = self.grey
        if min(g.shape) < 16:
            return float("nan")
        s0, s1 = self.smooth(BLUR_SCALES[0]), self.smooth(BLUR_SCALES[1])
        # the coarsest blur runs at half resolution on the decimated middle one (4x fewer pixels): per full
        # pixel the gradient halves and each half pixel stands for 4, so the energy sums stay comparable
        extra = float(np.sqrt(BLUR_SCALES[2] ** 2 - BLUR_SCALES[1] ** 2)) / 2.0
        e2h = _grad2(gaussian(s1[::2, ::2], extra))
        b = 2 if min(g.shape) >= 32 else 1  # the blur's reflected borders are not the image's edges
        e2h = e2h[b:-b, b:-b]
        sample = e2h[::2, ::2].ravel()
        floor = max(4.0 * EDGE_FLOOR * EDGE_FLOOR, EDGE_SHARE_OF_P99**2 * float(np.partition(
            sample, int(0.99 * (sample.size - 1)))[int(0.99 * (sample.size - 1))]))
        mask_h = e2h >= floor
        if mask_h.mean() < MIN_EDGE_SHARE:
            return 0.0  # no edge to judge: a blank or a smooth gradient is not a blurred copy of anything
        mask = np.repeat(np.repeat(mask_h, 2, axis=0), 2, axis=1)
        e = []
        for a in (s0, s1):
            full = _grad2(a)[2 * b:, 2 * b:]
            h, w = min(full.shape[0], mask.shape[0]), min(full.shape[1], mask.shape[1])
            e.append(float(full[:h, :w][mask[:h, :w]].sum()))
        e.append(float(e2h[mask_h].sum()))
        l1 = np.log(max(e[0], 1e-9) / max(e[1], 1e-9))
        l2 = np.log(max(e[0], 1e-9) / max(e[2], 1e-9))
        if l2 < MIN_ENERGY_LOSS:
            return 0.0  # even the coarsest blur changes nothing: a smooth ramp, no edge to judge
        if l1 <= 1e-4:
            return float(_SIGMAS[-1])
        return float(np.interp(l2 / l1, _RATIOS, _SIGMAS))

    @property
    def blurry(self) -> float:
        s = self.blur_sigma
        return s / (s + BLUR_HALF) if s == s else float("nan")

    @property
    def dark(self) -> float:
        return float(np.clip(1.0 - self.percentile(DARK_PERCENTILE) / 255.0, 0.0, 1.0))

    @cached_property
    def washed_out(self) -> float:
        """The darkest tones lifted: ``p0.5`` of luma from ``WASH_FROM`` (0) to ``WASH_TO`` (1)."""
        return float(np.clip((self.percentile(WASH_PERCENTILE) - WASH_FROM) / (WASH_TO - WASH_FROM), 0.0, 1.0))

    @cached_property
    def blown_out(self) -> float:
        """Clipped highlights in a photograph: the share of the image at white (luma >= ``WHITE``; full at
        ``BLOWN_FULL``) times the share of the other pixels that is photographic -- inside an unclipped area
        (5 x 5) and textured, not flat colour (full at ``PHOTO_FULL``). A white page, a chart or a screenshot
        is mostly white too, but what is not white there is thin (text, lines, ink) or flat (bars, panels,
        buttons); a photo pushed until a large part clips keeps textured areas beside the white."""
        hist = self._hist
        total = max(1, int(hist.sum()))
        clipped = int(hist[WHITE:].sum())
        share = clipped / total
        if share < 0.05:
            return 0.0
        g = self.grey
        dx = np.abs(g[:-1, 1:] - g[:-1, :-1])
        dy = np.abs(g[1:, :-1] - g[:-1, :-1])
        unclipped = g < WHITE
        solid = _erode(unclipped, 2)[:-1, :-1]  # 5 x 5 neighbourhood unclipped: not a line, not text
        textured = solid & (dx + dy >= FLAT_STEP)
        photo = float(np.count_nonzero(textured)) / max(1, int(np.count_nonzero(unclipped)))
        return float(min(1.0, share / BLOWN_FULL) * min(1.0, photo / PHOTO_FULL))

    @property
    def overexposed(self) -> float:
        return max(self.washed_out, self.blown_out)

    @cached_property
    def structure(self) -> float:
        """Share of pixels whose smoothed gradient is at least ``STRUCTURE_LEVEL`` levels per pixel."""
        s = self.smooth(STRUCTURE_SCALE)
        if min(s.shape) < 2:
            return 0.0
        return float((_grad2(s) >= STRUCTURE_LEVEL * STRUCTURE_LEVEL).mean())

    @property
    def low_information(self) -> float:
        return float(1.0 - np.sqrt(min(1.0, self.structure / STRUCTURE_FULL)))

    @property
    def tiny(self) -> float:
        return float(np.clip(1.0 - min(self.width, self.height) / 256.0, 0.0, 1.0))

    @property
    def odd_aspect(self) -> float:
        lo, hi = sorted((self.width, self.height))
        return float(1.0 - lo / hi) if hi > 0 else 1.0

    @cached_property
    def chroma_p999(self) -> float:
        r, g, b = self.rgb[..., 0], self.rgb[..., 1], self.rgb[..., 2]
        c = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # uint8, never negative
        hist = np.cumsum(np.bincount(c.ravel(), minlength=256))
        return float(np.searchsorted(hist / max(1, hist[-1]), 0.999))

    @property
    def grayscale(self) -> float:
        return float(np.clip(1.0 - self.chroma_p999 / 24.0, 0.0, 1.0))
