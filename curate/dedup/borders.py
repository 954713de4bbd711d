"""Near-uniform borders (letterbox, pillarbox, a frame of any flat colour): found and trimmed.

A copy padded to a square, or framed, shares its picture with the original but not its outline, so
hashes and alignment see two different images. Each side is walked inwards while its lines stay
the colour of the outermost line (``TOLERANCE`` grey levels per channel, for ``UNIFORM_SHARE`` of the
line's pixels, so JPEG noise and ringing do not stop the walk). An image that would keep less than
``MIN_CONTENT`` of a side (a featureless image, a tiny mark on a blank page) is left whole.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["border_box", "trim_borders"]

TOLERANCE = 14  # a border pixel is within this many levels (0-255, each channel) of its side's colour
UNIFORM_SHARE = 0.97  # share of a line's pixels that must be within TOLERANCE for the line to be border
MIN_CONTENT = 0.25  # never trim a side to less than this share of the image (featureless images stay whole)


def _uniform_depth(lines: np.ndarray) -> int:
    """How many leading lines of ``lines`` ([n, length, channels], outermost first) are border. The
    outermost line is checked alone first: most images have no border, and then nothing more is read."""
    ref = np.median(lines[0], axis=0)

    def uniform(block: np.ndarray) -> np.ndarray:
        return np.all(np.abs(block - ref) <= TOLERANCE, axis=2).mean(axis=1) >= UNIFORM_SHARE

    if not uniform(lines[:1])[0]:
        return 0
    close = uniform(lines)
    return int(np.argmin(close)) if not close.all() else len(close)


def border_box(img: Image.Image) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the image inside its near-uniform border (the whole image
    when there is none, or when trimming would keep less than ``MIN_CONTENT`` of a side)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.int16)
    h, w = arr.shape[:2]
    if h < 4 or w < 4:
        return 0, 0, w, h
    top, bottom = _uniform_depth(arr), _uniform_depth(arr[::-1])
    left = _uniform_depth(arr.transpose(1, 0, 2))
    right = _uniform_depth(arr.transpose(1, 0, 2)[::-1])
    if h - top - bottom < MIN_CONTENT * h:
        top = bottom = 0
    if w - left - right < MIN_CONTENT * w:
        left = right = 0
    return left, top, w - right, h - bottom


def trim_borders(img: Image.Image) -> Image.Image:
    """The image without its near-uniform border (the image itself when it has none)."""
    box = border_box(img)
    return img if box == (0, 0, *img.size) else img.crop(box)
