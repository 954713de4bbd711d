"""Encoded image bytes to the picture a person sees: the one decoder of dedup, quality, audit and the embedders.

- **Orientation.** The EXIF orientation tag is applied (``ImageOps.exif_transpose``): a phone photo
  stored sideways with tag 6 is seen upright, as every viewer shows it. A broken EXIF block leaves
  the pixels as stored (a decodable image is never lost to its metadata).
- **Transparency.** Images with an alpha channel or a transparent palette / colour key (RGBA, LA,
  PA, P, ...) are composited on a fixed white ``BACKGROUND``, as a page shows them; dropping the
  alpha channel instead would show the colour under transparent pixels, which is often one flat
  colour with the picture held in the alpha channel alone. When white erases the picture (every
  visible pixel is near white: a white drawing on transparency), it is composited on black
  (``INK``) instead, so the drawing is still seen.
- **Deep greys.** 16-bit and float grey images are scaled to 8 bits (their full range, not clipped).
- **Reduced decoding.** With ``min_side``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4,
  1/8) that keeps both sides at least ``min_side`` (PIL ``draft``): no signal needs a 4K photo's
  pixels, and decoding at 1/8 is many times faster.

Bytes that do not decode raise ``ValueError`` (a caller then scores, quarantines or never matches
the item; it never crashes the run).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

__all__ = ["BACKGROUND", "INK", "DecodedImage", "decode_image", "open_image", "visible"]

BACKGROUND = (255, 255, 255)  # transparency is composited on this
INK = (0, 0, 0)  # ... or on this, when the background would erase the picture
ERASED_RANGE = 8  # grey levels: a composite within this range while its alpha spans more is erased
_ORIENTATION = 0x0112
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_DEEP_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


class DecodedImage(NamedTuple):
    """A decoded image as seen (``mode`` RGB or L, upright, composited; possibly drafted smaller)
    and its full-resolution upright size from the header."""

    image: Image.Image
    width: int
    height: int


def decode_image(data: bytes, min_side: int = 0, mode: str = "RGB") -> DecodedImage:
    """Decode ``data`` as a person sees it (see the module notes); ``ValueError`` when it does not decode.

    ``min_side``: JPEGs may be decoded at a reduced scale keeping both sides >= this (0: full size).
    ``mode``: ``"RGB"`` or ``"L"`` (grey: a JPEG then decodes its luma only)."""
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be RGB or L, not {mode!r}")
    if not data:
        raise ValueError("empty image payload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF / palette warnings; decompression bombs still raise
            img = Image.open(io.BytesIO(bytes(data)))
            orientation = _orientation(img)
            width, height = img.size
            if orientation in (5, 6, 7, 8):  # turned by 90 degrees
                width, height = height, width
            if min_side > 0 and img.format == "JPEG":
                img.draft(mode, (min_side, min_side))
            img.load()
            if orientation != 1:  # (exif_transpose copies even an upright image)
                with contextlib.suppress(Exception):  # a broken EXIF block must not lose a decodable image
                    img = ImageOps.exif_transpose(img)
            seen = visible(img)
            return DecodedImage(seen if seen.mode == mode else seen.convert(mode), width, height)
    except Exception as exc:  # Pillow raises many types on broken input
        raise ValueError(f"undecodable image ({type(exc).__name__}: {exc})") from exc


def open_image(data: bytes, min_side: int = 0, mode: str = "RGB") -> Image.Image:
    """:func:`decode_image`'s picture only."""
    return decode_image(data, min_side, mode).image


def visible(img: Image.Image) -> Image.Image:
    """An RGB (or L, for plain grey input) image of what ``img`` shows: transparency composited,
    deep greys scaled to 8 bits; other images are returned as they are (not copied)."""
    if img.mode in _DEEP_MODES:
        return _eight_bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        out = _composite(rgba, BACKGROUND)
        lo, hi = out.convert("L").getextrema()
        a_lo, a_hi = rgba.getchannel("A").getextrema()
        if hi - lo <= ERASED_RANGE < a_hi - a_lo:  # the picture is only in the alpha channel, drawn in white
            out = _composite(rgba, INK)
        return out
    if img.mode in ("RGB", "L"):
        return img
    return img.convert("RGB")


def _composite(rgba: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*colour, 255)), rgba).convert("RGB")


def _eight_bit(img: Image.Image) -> Image.Image:
    """16-bit or float grey to 8 bits: 16-bit range scaled down, floats in [0, 1] scaled up."""
    arr = np.asarray(img, dtype=np.float32)
    top = float(arr.max()) if arr.size else 0.0
    scale = 255.0 / 65535.0 if top > 255 and img.mode != "F" else (255.0 / top if top > 255 else 1.0)
    if img.mode == "F" and 0 < top <= 1.0:
        scale = 255.0
    return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1: upright, also when the EXIF block is missing or broken)."""
    try:
        return int(img.getexif().get(_ORIENTATION, 1))
    except Exception:
        return 1
