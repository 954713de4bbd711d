"""A weight-free perceptual image embedder: catches re-encoded, resized and cropped copies.

Each image becomes a small vector with no model download, so the quick start and a
cheap first dedup pass work offline:

- structure: the lowest ``freqs x freqs`` 2-D DCT-II coefficients (DC dropped) of an
  area-averaged ``thumb x thumb`` grey thumbnail (squashed to a square). Low frequencies
  survive JPEG noise, rescaling and a few pixels of cropping. Dropping DC removes
  brightness; L2-normalising removes contrast. Coefficients are first multiplied by
  ``(1 + radius) ** whiten``, which flattens the 1/f spectrum of real images so the
  lowest few frequencies (shared by most images) do not dominate every similarity.
  Nearly flat images (RMS contrast below ``min_contrast``) are not normalised up, so
  JPEG noise on a blank sky cannot masquerade as structure.
- colour: chroma (Cb, Cr) means over a 2x2 grid plus the global chroma spread, scaled by
  ``colour_weight``. Chroma is zero for grey images, so it separates differently coloured
  images without inflating the similarity of unrelated grey ones.
- a constant ``flat_bias`` so a flat grey image is never a zero vector (all such images
  are then duplicates of each other, whatever their brightness).

The defaults were tuned on the demo digits and on patches of scikit-learn's sample
photos; see tests/embed/test_perceptual.py for the planted-copy margins.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from functools import cached_property

import numpy as np
import torch
from PIL import Image, ImageOps

from curate.embed.base import Embedder

VERSION = 1
_EPS = 1e-6
# ITU-R BT.601 luma / chroma weights (the ones JPEG uses).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHROMA = np.array([[-0.168736, 0.5], [-0.331264, -0.418688], [0.5, -0.081312]], dtype=np.float32)  # Cb, Cr


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix ``D`` (``D @ x`` transforms a length-``n`` signal)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def decode_rgb(data: bytes, min_side: int = 0) -> Image.Image:
    """Decode image bytes to an upright RGB image, or raise ``ValueError``.

    JPEGs are decoded at a reduced DCT scale when the result keeps at least ``min_side``
    pixels on each side, which makes large photos cheap to thumbnail.
    """
    if not data:
        raise ValueError("empty image payload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if min_side and img.format == "JPEG":
                img.draft(None, (min_side, min_side))
            with contextlib.suppress(Exception):  # a broken EXIF block must not lose a decodable image
                img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
    except Exception as exc:  # Pillow raises many types on broken input
        raise ValueError(f"undecodable image ({type(exc).__name__}: {exc})") from exc


class PerceptualEmbedder(Embedder):
    """Low-frequency DCT of a grey thumbnail plus coarse chroma statistics (no weights)."""

    spec = "perceptual"
    slug = "perceptual-v1"
    kinds = frozenset({"image"})

    def __init__(
        self,
        thumb: int = 32,
        freqs: int = 8,
        whiten: float = 1.0,
        min_contrast: float = 0.02,
        colour_weight: float = 1.0,
        flat_bias: float = 0.1,
    ) -> None:
        if thumb < 4 or thumb % 2 or not 2 <= freqs <= thumb or min_contrast <= 0:
            raise ValueError(
                f"need an even thumb >= 4, 2 <= freqs <= thumb and min_contrast > 0, "
                f"got thumb={thumb} freqs={freqs} min_contrast={min_contrast}"
            )
        self.thumb = thumb
        self.freqs = freqs
        self.whiten = float(whiten)
        self.min_contrast = float(min_contrast)
        self.colour_weight = float(colour_weight)
        self.flat_bias = float(flat_bias)
        self.dim = freqs * freqs - 1 + 10 + 1

    @cached_property
    def _dct(self) -> np.ndarray:
        return dct_matrix(self.thumb)[: self.freqs]

    @cached_property
    def _gain(self) -> np.ndarray:
        u = np.arange(self.freqs)
        radius = np.sqrt(u[:, None] ** 2 + u[None, :] ** 2)
        return ((1.0 + radius) ** self.whiten).reshape(-1)[1:].astype(np.float32)

    def prepare(self, kind: str, payload: bytes | str) -> torch.Tensor:
        if kind != "image" or not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ValueError(f"perceptual embedder takes image bytes, not {kind} {type(payload).__name__}")
        img = decode_rgb(bytes(payload), min_side=2 * self.thumb)
        small = img.resize((self.thumb, self.thumb), Image.BOX)
        rgb = np.asarray(small, dtype=np.float32) * (1.0 / 255.0)
        return torch.from_numpy(self.features(rgb))

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """The vector for an RGB thumbnail ``[thumb, thumb, 3]`` with values in [0, 1]."""
        grey = rgb @ _LUMA
        coeffs = (self._dct @ grey @ self._dct.T).reshape(-1)[1:]  # drop DC: brightness
        contrast = float(np.linalg.norm(coeffs)) / self.thumb  # ~ RMS of the low-passed image
        structure = coeffs * self._gain
        norm = float(np.linalg.norm(structure))
        # Unit length (contrast-invariant) unless nearly flat, where noise must not be amplified.
        structure *= min(1.0, contrast / self.min_contrast) / norm if norm > _EPS else 0.0
        chroma = rgb @ _CHROMA
        h = self.thumb // 2
        quads = chroma.reshape(2, h, 2, h, 2).mean(axis=(1, 3)).reshape(-1)  # 2x2 grid of (Cb, Cr) means
        colour = np.concatenate([quads, chroma.reshape(-1, 2).std(axis=0)]) * self.colour_weight
        bias = np.array([self.flat_bias], dtype=np.float32)  # flat images: never a zero vector
        return np.concatenate([structure, colour, bias]).astype(np.float32, copy=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """No model: the prepared features are the vectors (left on the CPU)."""
        return batch.to(torch.float32)

    def identity(self) -> dict:
        return {
            **super().identity(),
            "version": VERSION,
            "thumb": self.thumb,
            "freqs": self.freqs,
            "whiten": self.whiten,
            "min_contrast": self.min_contrast,
            "colour_weight": self.colour_weight,
            "flat_bias": self.flat_bias,
            "decode": "pil-rgb-exif+jpeg-draft",
            "resample": "box",
            "colour": "chroma-2x2-mean+std",
        }
