"""The structure part of the perceptual embedder, in NumPy only (no torch): the DCT of blurred,
Hann-windowed centre squares of a grey thumbnail, made mirror-invariant. The dedup hashes use it in
worker processes that must start fast and small (:mod:`curate.dedup.phash`), the embedder
(:mod:`curate.embed.perceptual`) adds colour and torch plumbing on top.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

_EPS = 1e-6


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``D`` (``D @ x`` transforms a length-``n`` signal)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """``G @ x`` blurs a length-``n`` signal with a Gaussian (rows renormalised at the edges)."""
    if sigma <= 0:
        return np.eye(n, dtype=np.float32)
    x = np.arange(n, dtype=np.float64)
    d = (x[:, None] - x[None, :]) / sigma
    k = np.where(np.abs(d) <= 4.0, np.exp(-0.5 * d**2), 0.0)  # cut at 4 sigma: no float32 denormals
    return (k / k.sum(axis=1, keepdims=True)).astype(np.float32)


class PerceptualForm:
    """Mirror-invariant, crop- and rotation-tolerant DCT structure of a grey thumbnail."""

    def __init__(self, thumb: int = 64, freqs: int = 7, whiten: float = 2.0, blur: float = 2.0,
                 scales: tuple[float, ...] = (1.0, 0.9, 0.81), asym_weight: float = 1.4) -> None:
        self.thumb = thumb
        self.freqs = freqs
        self.whiten = float(whiten)
        self.blur = float(blur)
        self.scales = tuple(float(x) for x in scales)
        self.asym_weight = float(asym_weight)

    @staticmethod
    def _side(thumb: int, scale: float) -> int:
        return int(round(thumb * scale / 2)) * 2

    @cached_property
    def _blur(self) -> tuple[np.ndarray, np.ndarray]:
        # Transposes are kept contiguous: OpenBLAS is ~100x slower on a transposed float32 view here.
        g = gauss_matrix(self.thumb, self.blur)
        return g, np.ascontiguousarray(g.T)

    @cached_property
    def _regions(self) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        """Per scale: offset, side, DCT rows (and their transpose) and 2-D Hann window of its centre square."""
        out = []
        for s in self.scales:
            side = self._side(self.thumb, s)
            hann = np.hanning(side + 2)[1:-1].astype(np.float32)
            dct = dct_matrix(side)[: self.freqs]
            out.append(((self.thumb - side) // 2, side, dct, np.ascontiguousarray(dct.T), np.outer(hann, hann)))
        return out

    @cached_property
    def _gain(self) -> np.ndarray:
        u = np.arange(self.freqs)
        radius = np.sqrt(u[:, None] ** 2 + u[None, :] ** 2)
        return ((1.0 + radius) ** self.whiten).reshape(-1)[1:].astype(np.float32)

    @cached_property
    def _odd(self) -> np.ndarray:
        return np.arange(self.freqs) % 2 == 1

    def _structure(self, window: np.ndarray, dct: np.ndarray, dct_t: np.ndarray) -> np.ndarray:
        """Mirror-invariant ``freqs x freqs`` coefficient block of one windowed square."""
        coeffs = dct @ window @ dct_t  # even columns: the mirror-symmetric part of the window
        asym = np.abs(window - window[:, ::-1]) * 0.5  # |antisymmetric part|: mirror-symmetric
        asym_coeffs = dct @ (asym - asym.mean()) @ dct_t
        block = coeffs.copy()
        block[:, self._odd] = asym_coeffs[:, np.flatnonzero(self._odd) - 1] * self.asym_weight
        return block

    def structure(self, grey: np.ndarray) -> tuple[np.ndarray, float]:
        """Mirror-invariant structure of a grey ``[thumb, thumb]`` thumbnail and its RMS contrast.

        The structure is the ``freqs x freqs`` block (row-major, DC dropped) pooled over the
        centre squares of ``scales``, not yet normalised.
        """
        blur, blur_t = self._blur
        grey = blur @ grey @ blur_t
        structure = np.zeros(self.freqs * self.freqs - 1, dtype=np.float32)
        contrast = 0.0
        for k, (lo, side, dct, dct_t, hann) in enumerate(self._regions):
            square = grey[lo : lo + side, lo : lo + side]
            window = (square - square.mean()) * hann
            if k == 0:  # ~ RMS contrast of the blurred image (the Hann window's mean square is 9/64)
                contrast = float(np.sqrt(np.mean(window**2) / (9.0 / 64.0)))
            coeffs = self._structure(window, dct, dct_t).reshape(-1)[1:] * self._gain  # drop DC: brightness
            norm = float(np.linalg.norm(coeffs))
            if norm > _EPS:
                structure += coeffs / norm
        return structure, contrast
