"""Measurements behind the image checks, on one RGB thumbnail (see :mod:`curate.audit.image_checks`).

Everything here is numpy on an array of at most 256 x 256 pixels: a few milliseconds per image.
"""

from __future__ import annotations

from functools import cached_property

import cv2
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
    """Separable Gaussian blur of a 2-D float array (reflected borders; the edge repeated when the image is
    narrower than the kernel's radius). OpenCV's separable filter: about 4x numpy's shifted sums."""
    r = max(1, int(3.0 * sigma + 0.5))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    border = cv2.BORDER_REFLECT_101 if min(a.shape) > r else cv2.BORDER_REPLICATE
    return cv2.sepFilter2D(np.ascontiguousarray(a, dtype=np.float32), cv2.CV_32F, k, k, borderType=border)


def _grad2(a: np.ndarray) -> np.ndarray:
    """Squared forward-difference gradient on the (h-1, w-1) grid."""
    dx = np.subtract(a[:-1, 1:], a[:-1, :-1])
    dy = np.subtract(a[1:, :-1], a[:-1, :-1])
    np.multiply(dx, dx, out=dx)
    np.multiply(dy, dy, out=dy)
    dx += dy  # in place: each large temporary costs fresh pages
    return dx


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
    """The measurements of one decoded image: an RGB thumbnail ``rgb`` (h, w, 3) uint8 and the original size;
    ``luma``, when given, is the 8-bit grey thumbnail every tone and structure check reads (else from ``rgb``)."""

    def __init__(self, rgb: np.ndarray, width: int, height: int, luma: np.ndarray | None = None) -> None:
        self.rgb = rgb
        self.width = int(width)
        self.height = int(height)
        if luma is not None:  # the grey thumbnail, when it was scaled apart from ``rgb`` (then only colour reads rgb)
            self.__dict__["luma"] = np.ascontiguousarray(luma, dtype=np.uint8)

    # -- shared intermediates -------------------------------------------------------------------------------------

    @cached_property
    def luma(self) -> np.ndarray:
        """8-bit luma (BT.601, rounded, as Pillow's "L"): whole grey levels, so a tone bar such as ``WHITE``
        is not split by float rounding."""
        rgb = np.ascontiguousarray(self.rgb)
        if rgb.ndim == 3 and rgb.shape[2] == 3:
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return rgb.reshape(rgb.shape[:2])

    @cached_property
    def grey(self) -> np.ndarray:
        return self.luma.astype(np.float32)

    @cached_property
    def _hist(self) -> np.ndarray:
        return cv2.calcHist([self.luma], [0], None, [256], [0, 256]).ravel().astype(np.int64)

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
        # energy of the full-resolution pixels under the half-resolution mask (each half pixel covers 2 x 2),
        # offset by the border trimmed above: 2 x 2 block sums, then the masked ones
        e = []
        for a in (s0, s1):
            full = _grad2(a)[2 * b:, 2 * b:]
            h, w = min(mask_h.shape[0], full.shape[0] // 2), min(mask_h.shape[1], full.shape[1] // 2)
            blocks = full[0:2 * h:2, 0:2 * w:2] + full[1:2 * h:2, 0:2 * w:2]
            blocks += full[0:2 * h:2, 1:2 * w:2]
            blocks += full[1:2 * h:2, 1:2 * w:2]
            e.append(float(blocks[mask_h[:h, :w]].sum()))
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
        r, g, b = cv2.split(np.ascontiguousarray(self.rgb))
        c = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))  # uint8, never negative
        hist = np.cumsum(cv2.calcHist([c], [0], None, [256], [0, 256]).ravel())
        return float(np.searchsorted(hist / max(1, hist[-1]), 0.999))

    @property
    def grayscale(self) -> float:
        return float(np.clip(1.0 - self.chroma_p999 / 24.0, 0.0, 1.0))
