"""A weight-free perceptual image embedder: catches re-encoded, resized and cropped copies.

Each image becomes a small vector with no model download, so the quick start and a
cheap first dedup pass work offline:

- structure: the lowest ``freqs x freqs`` 2-D DCT-II coefficients (DC dropped) of an
  area-averaged ``thumb x thumb`` grey thumbnail. Dropping DC removes brightness and
  L2-normalising removes contrast; low frequencies survive JPEG noise, rescaling and a
  few pixels of cropping.
- colour: chroma (Cb, Cr) means over a 2x2 grid plus the global chroma spread, scaled by
  ``colour_weight``. Chroma is zero for grey images, so it separates differently coloured
  images without inflating the similarity of unrelated grey ones.
"""

from __future__ import annotations

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
_CB = np.array([-0.168736, -0.331264, 0.5], dtype=np.float32)
_CR = np.array([0.5, -0.418688, -0.081312], dtype=np.float32)


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
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
    except Exception as exc:  # Pillow raises many types on broken input
        raise ValueError(f"undecodable image ({type(exc).__name__}: {exc})") from exc


class PerceptualEmbedder(Embedder):
    """Low-frequency DCT of a grey thumbnail plus coarse chroma statistics (no weights)."""

    spec = "perceptual"
    slug = "perceptual-v1"
    kinds = frozenset({"image"})

    def __init__(self, thumb: int = 32, freqs: int = 8, colour_weight: float = 1.0) -> None:
        if not 2 <= freqs <= thumb:
            raise ValueError(f"freqs must be in [2, thumb={thumb}], got {freqs}")
        self.thumb = thumb
        self.freqs = freqs
        self.colour_weight = float(colour_weight)
        self.dim = freqs * freqs - 1 + 10

    @cached_property
    def _dct(self) -> np.ndarray:
        return dct_matrix(self.thumb)[: self.freqs]

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
        norm = float(np.linalg.norm(coeffs))
        structure = coeffs / norm if norm > _EPS else np.zeros_like(coeffs)  # flat image: no structure
        cb, cr = rgb @ _CB, rgb @ _CR
        h = self.thumb // 2
        quads = [c[ys, xs].mean() for ys in (slice(0, h), slice(h, None)) for xs in (slice(0, h), slice(h, None))
                 for c in (cb, cr)]
        colour = np.array([*quads, cb.std(), cr.std()], dtype=np.float32) * self.colour_weight
        return np.concatenate([structure, colour]).astype(np.float32, copy=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(torch.float32)

    def identity(self) -> dict:
        return {
            **super().identity(),
            "version": VERSION,
            "thumb": self.thumb,
            "freqs": self.freqs,
            "colour_weight": self.colour_weight,
            "colour": "chroma-2x2-mean+std",
        }
