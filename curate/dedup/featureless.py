"""Featureless images are not near-copies of each other unless their colours match.

A featureless image (a solid colour, a 1 x 1 image, a blank scan, a picture held in an alpha
channel that compositing did not reveal) has no structure for the aligned check to compare: every
such image used to match every other at 1.000, whatever its colour. So a pair where one image is
featureless is decided here, by colour, before any alignment search:

- **Featureless**: the *spread*, the largest per-channel standard deviation of the image's
  ``SIDE``-pixel RGB thumbnail (box-averaged, after compositing, in [0, 1]), is below
  ``FEATURELESS_SPREAD`` (0.006, about 1.5 grey levels). Measured (``SIDE`` 64): solid colours, their
  JPEG copies and 1 x 1 images 0.0000; a 400 x 300 grey image with Gaussian noise of 3 levels 0.0024
  (0.0023 as JPEG); not featureless: scikit-learn's sample photos darkened to 5% of their brightness
  0.017-0.018 (10%: 0.034-0.036), a faint left-right gradient from 45% to 55% grey 0.029, full
  gradients 0.29, a 2 x 1 black-and-white image 0.5.
- **A featureless pair** (at least one image featureless) is a copy only when the other image is
  near-uniform too (spread below ``NEAR_UNIFORM_SPREAD``, twice the bar: a noisy copy of a blank may
  straddle the bar) and the two mean colours differ by at most ``COLOUR_TOLERANCE`` (0.02, 5 of 255
  levels) in every channel; its score is ``1 - that difference``. Otherwise it is rejected (score
  ``1 - difference`` as well, 0 when the other image has features). Loose checks (an item two steps
  from its keeper) allow twice the tolerance.

Identical bytes are not decided here: the ``exact`` signal always passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["COLOUR_TOLERANCE", "FEATURELESS_SPREAD", "NEAR_UNIFORM_SPREAD", "SIDE", "Uniformity", "featureless_pair",
           "uniformity"]

SIDE = 64  # the thumbnail (longer side) the spread and colour are measured on
FEATURELESS_SPREAD = 0.006  # spread below this: featureless
NEAR_UNIFORM_SPREAD = 2 * FEATURELESS_SPREAD  # the other image of a featureless pair must be below this
COLOUR_TOLERANCE = 0.02  # mean colours this close in every channel ([0, 1]) match


@dataclass(frozen=True)
class Uniformity:
    """An image's mean colour (RGB in [0, 1]) and spread (largest per-channel standard deviation)."""

    colour: tuple[float, float, float]
    spread: float

    @property
    def featureless(self) -> bool:
        return self.spread < FEATURELESS_SPREAD


def uniformity(img: Image.Image) -> Uniformity:
    """The :class:`Uniformity` of an image as seen (composite transparency first: see :mod:`curate.io.images`)."""
    small = img.convert("RGB")  # a new image: the caller's is left as it was
    small.thumbnail((SIDE, SIDE), Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.float64).reshape(-1, 3) / 255.0
    mean = rgb.mean(axis=0)
    return Uniformity((float(mean[0]), float(mean[1]), float(mean[2])), float(rgb.std(axis=0).max()))


def featureless_pair(a: Uniformity, b: Uniformity, loose: bool = False) -> tuple[float, bool] | None:
    """``(score, passed)`` of a pair where an image is featureless; None when neither is (then the
    aligned check decides)."""
    if not (a.featureless or b.featureless):
        return None
    difference = float(np.max(np.abs(np.subtract(a.colour, b.colour))))
    uniform = max(a.spread, b.spread) < NEAR_UNIFORM_SPREAD
    tolerance = 2 * COLOUR_TOLERANCE if loose else COLOUR_TOLERANCE
    return (1.0 - difference if uniform else 0.0), uniform and difference <= tolerance
