"""Image header probe and decode check (Pillow), mapping every failure to a reason."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from curate.probe import Rejected

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif", ".ppm", ".pgm"}
)
# Modes that convert to RGB without loss of meaning; 16-bit, float and exotic modes do not.
SUPPORTED_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})


@dataclass(frozen=True)
class ImageCheck:
    """How strictly images are checked at ingest.

    ``decode=True`` decodes every image (JPEGs at 1/8 scale, which still reads every
    byte of the entropy-coded data) so truncated and corrupt files are caught here, not
    half-way through an embedding run. ``max_pixels`` caps width*height (decompression
    bombs); Pillow's own limit (about 179 MP) also applies.
    """

    max_pixels: int = 100_000_000
    decode: bool = True
    modes: frozenset[str] = SUPPORTED_MODES


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mode: str
    width: int
    height: int


def probe_image(data: bytes, check: ImageCheck = ImageCheck()) -> ImageInfo:
    """Return the header facts of an image, or raise :class:`Rejected` with a reason."""
    if not data:
        raise Rejected("empty-file", "0 bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise Rejected("decompression-bomb", str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise Rejected("not-an-image", f"no known image format in {len(data)} bytes") from exc
        except Exception as exc:  # Pillow raises many types on broken headers
            raise Rejected(_failure_code(exc), f"unreadable header ({type(exc).__name__}: {exc})") from exc
        with img:
            info = ImageInfo(img.format or "unknown", img.mode, int(img.width), int(img.height))
            _check_header(info, check)
            if check.decode:
                _decode(img)
    return info


def _check_header(info: ImageInfo, check: ImageCheck) -> None:
    pixels = info.width * info.height
    if info.width <= 0 or info.height <= 0:
        raise Rejected("corrupt-image", f"invalid size {info.width}x{info.height}")
    if pixels > check.max_pixels:
        raise Rejected(
            "decompression-bomb",
            f"{info.width}x{info.height} = {pixels:,} pixels exceeds the cap of {check.max_pixels:,}",
        )
    if info.mode not in check.modes:
        raise Rejected("unsupported-mode", f"image mode {info.mode!r} ({info.format})")


def _decode(img: Image.Image) -> None:
    if img.format == "JPEG":
        img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise Rejected("decompression-bomb", str(exc)) from exc
    except Exception as exc:
        raise Rejected(_failure_code(exc), f"decode failed ({str(exc) or type(exc).__name__})") from exc


def _failure_code(exc: Exception) -> str:
    message = str(exc).lower()
    return "truncated-image" if "truncat" in message or "broken data" in message else "corrupt-image"
