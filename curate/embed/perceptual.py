"""A weight-free perceptual image embedder: catches flipped, cropped, rotated and re-encoded copies.

Each image becomes a small vector with no model download, so the quick start and a
cheap first dedup pass work offline. Version 2 (``perceptual-v2``) is built to be
tolerant of the edits that v1 missed (v1 kept a horizontal flip at cosine ~0.4, an 80%
centre crop at ~0.74 and a 10-degree rotation at ~0.77 on average):

- canonical grey form: an area-averaged ``thumb x thumb`` grey thumbnail (squashed to a
  square) is blurred (Gaussian, ``blur`` pixels), so a few pixels of shift, rotation or
  JPEG noise move little.
- structure, per centre square of each of ``scales`` (fractions of the side): the mean
  is removed and a 2-D Hann window applied (the centre counts most, the borders, which a
  crop or a rotation changes first, fade out), then the lowest ``freqs x freqs`` 2-D
  DCT-II coefficients are kept. Mirror invariance: the window ``g`` splits into its
  mirror-symmetric part, whose DCT is the even horizontal frequencies of ``g`` (unchanged
  by a flip), and its antisymmetric part ``o``, whose sign a flip reverses; ``|o|`` (mean
  removed) is mirror-symmetric, and the even horizontal frequencies of its DCT fill the
  odd-frequency slots, scaled by ``asym_weight``. So a flipped image has exactly the same
  vector, and the left/right asymmetry of an image still counts. Coefficients are
  multiplied by ``(1 + radius) ** whiten`` (flattens the 1/f spectrum of real images so
  the lowest few frequencies, shared by most images, do not dominate), the DC slot is
  dropped, each scale is L2-normalised and the scales are averaged: a crop by 10-20% is a
  change of scale, and pooling over nested squares makes the vector vary slowly with it.
  Nearly flat images (RMS contrast below ``min_contrast``) are not normalised up, so JPEG
  noise on a blank sky cannot masquerade as structure.
- colour: chroma (Cb, Cr) means over a 3x3 grid, made mirror-invariant (per row: the
  centre cell, the mean of the side cells and a quarter of their difference's magnitude),
  scaled by ``colour_weight``. Chroma is zero for grey images, so it separates differently
  coloured images without inflating the similarity of unrelated grey ones.
- a constant ``flat_bias`` so a flat grey image is never a zero vector (all such images
  are then duplicates of each other, whatever their brightness).

The defaults were tuned on scikit-learn's sample photos and digits; the measured margins
(every copy kind against every kind of different image) are in
tests/embed/test_perceptual_v2.py, the demo's planted copies in tests/embed/test_perceptual.py.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from PIL import Image

from curate.embed.base import Embedder
from curate.embed.perceptual_form import _EPS, PerceptualForm, dct_matrix, gauss_matrix  # noqa: F401 (re-exported)
from curate.io.images import open_image

VERSION = 2
COLOUR_DIM = 18  # chroma layout block (see PerceptualEmbedder._colour)
# ITU-R BT.601 luma / chroma weights (the ones JPEG uses).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHROMA = np.array([[-0.168736, 0.5], [-0.331264, -0.418688], [0.5, -0.081312]], dtype=np.float32)  # Cb, Cr


class PerceptualEmbedder(Embedder, PerceptualForm):
    """Mirror-invariant, crop- and rotation-tolerant DCT structure plus coarse chroma (no weights)."""

    spec = "perceptual"
    slug = f"perceptual-v{VERSION}"
    kinds = frozenset({"image"})

    def __init__(
        self,
        thumb: int = 64,
        freqs: int = 7,
        whiten: float = 2.0,
        blur: float = 2.0,
        scales: tuple[float, ...] = (1.0, 0.9, 0.81),
        asym_weight: float = 1.4,
        min_contrast: float = 0.02,
        colour_weight: float = 3.0,
        flat_bias: float = 0.1,
    ) -> None:
        scales = tuple(float(s) for s in scales)
        if thumb < 8 or thumb % 2 or freqs < 2 or min_contrast <= 0 or blur < 0 or not scales:
            raise ValueError(
                f"need an even thumb >= 8, freqs >= 2, blur >= 0, min_contrast > 0 and some scales, "
                f"got thumb={thumb} freqs={freqs} blur={blur} min_contrast={min_contrast} scales={scales}"
            )
        if not all(0 < s <= 1 for s in scales) or min(self._side(thumb, s) for s in scales) < max(2 * freqs, 4):
            raise ValueError(f"scales must be in (0, 1] and keep at least 2 x freqs={freqs} pixels of thumb={thumb}, "
                             f"got {scales}")
        PerceptualForm.__init__(self, thumb, freqs, whiten, blur, scales, asym_weight)
        self.min_contrast = float(min_contrast)
        self.colour_weight = float(colour_weight)
        self.flat_bias = float(flat_bias)
        self.dim = freqs * freqs - 1 + COLOUR_DIM + 1

    @cached_property
    def _grid(self) -> tuple[int, int, int, int]:
        third = self.thumb // 3
        return 0, third, self.thumb - third, self.thumb

    def prepare(self, kind: str, payload: bytes | str) -> torch.Tensor:
        if kind != "image" or not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ValueError(f"perceptual embedder takes image bytes, not {kind} {type(payload).__name__}")
        img = open_image(bytes(payload), min_side=2 * self.thumb)
        small = img.resize((self.thumb, self.thumb), Image.BOX)
        rgb = np.asarray(small, dtype=np.float32) * (1.0 / 255.0)
        return torch.from_numpy(self.features(rgb))

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """The vector for an RGB thumbnail ``[thumb, thumb, 3]`` with values in [0, 1]."""
        structure, contrast = self.structure(rgb @ _LUMA)
        norm = float(np.linalg.norm(structure))
        # Unit length (contrast-invariant) unless nearly flat, where noise must not be amplified.
        structure *= min(1.0, contrast / self.min_contrast) / norm if norm > _EPS else 0.0
        colour = self._colour(rgb @ _CHROMA) * self.colour_weight
        bias = np.array([self.flat_bias], dtype=np.float32)  # flat images: never a zero vector
        return np.concatenate([structure, colour, bias]).astype(np.float32, copy=False)

    def _colour(self, chroma: np.ndarray) -> np.ndarray:
        """Mirror-invariant colour layout from a 3x3 grid of (Cb, Cr) means: per row, the centre
        cell, the mean of the two side cells and a quarter of their difference's magnitude (kept
        small: a magnitude is never negative, so it adds to the similarity of any two colourful
        images)."""
        e = self._grid
        cells = np.array([[chroma[e[i] : e[i + 1], e[j] : e[j + 1]].mean(axis=(0, 1)) for j in range(3)]
                          for i in range(3)])  # [row, column, (Cb, Cr)]
        return np.concatenate([
            cells[:, 1].reshape(-1), (cells[:, 0] + cells[:, 2]).reshape(-1) * 0.5,
            np.abs(cells[:, 0] - cells[:, 2]).reshape(-1) * 0.25,
        ])

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
            "blur": self.blur,
            "scales": list(self.scales),
            "asym_weight": self.asym_weight,
            "min_contrast": self.min_contrast,
            "colour_weight": self.colour_weight,
            "flat_bias": self.flat_bias,
            "decode": "pil-rgb-exif+jpeg-draft",
            "resample": "box",
            "structure": "gauss-blur+hann-centre-squares+dct-even|abs-antisym",
            "colour": "chroma-3x3-centre+sides-mean+abs-diff",
        }
