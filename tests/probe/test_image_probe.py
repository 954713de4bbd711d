import io
import struct
import zlib

import pytest
from PIL import Image

from curate.probe import Rejected
from curate.probe.image import ImageCheck, probe_image
from tests.conftest import encode_image


def code_of(data: bytes, check: ImageCheck = ImageCheck()) -> str:
    with pytest.raises(Rejected) as info:
        probe_image(data, check)
    return info.value.code


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but whose data is tiny (a bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_good_jpeg_and_png_report_header_facts():
    jpg = probe_image(encode_image((20, 10), fmt="JPEG"))
    assert (jpg.format, jpg.mode, jpg.width, jpg.height) == ("JPEG", "RGB", 20, 10)
    png = probe_image(encode_image((7, 3), mode="L", fmt="PNG"))
    assert (png.format, png.mode, png.width, png.height) == ("PNG", "L", 7, 3)


def test_zero_bytes_is_empty_file():
    assert code_of(b"") == "empty-file"


def test_text_with_image_name_is_not_an_image():
    assert code_of(b"hello, I am a text file\n") == "not-an-image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_are_caught_by_decode(fmt):
    data = encode_image((64, 64), fmt=fmt)
    cut = data[: len(data) // 2]
    assert code_of(cut) in {"truncated-image", "corrupt-image"}


def test_truncated_jpeg_reason_says_truncated():
    data = encode_image((64, 64), fmt="JPEG")
    assert code_of(data[: len(data) // 2]) == "truncated-image"


def test_header_only_check_accepts_truncated_jpeg():
    data = encode_image((64, 64), fmt="JPEG")
    info = probe_image(data[: len(data) // 2], ImageCheck(decode=False))
    assert (info.width, info.height) == (64, 64)


def test_corrupted_png_data_is_corrupt_image():
    data = bytearray(encode_image((32, 32), fmt="PNG"))
    idat = data.index(b"IDAT")
    for i in range(idat + 8, idat + 40):
        data[i] ^= 0xFF
    assert code_of(bytes(data)) in {"corrupt-image", "truncated-image"}


def test_pixel_cap_quarantines_bombs_before_decoding():
    # 30000 x 30000 claimed by the header: rejected from the header alone.
    assert code_of(png_with_header(30000, 30000)) == "decompression-bomb"
    # a real image over a small configured cap
    assert code_of(encode_image((100, 100)), ImageCheck(max_pixels=5000)) == "decompression-bomb"
    probe_image(encode_image((100, 100)), ImageCheck(max_pixels=10000))


def test_unsupported_modes_are_quarantined():
    buf = io.BytesIO()
    Image.new("I;16", (8, 8)).save(buf, "PNG")
    assert code_of(buf.getvalue()) == "unsupported-mode"
    buf = io.BytesIO()
    Image.new("F", (8, 8)).save(buf, "TIFF")
    assert code_of(buf.getvalue()) == "unsupported-mode"


@pytest.mark.parametrize("mode,fmt", [("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("L", "JPEG")])
def test_convertible_modes_are_accepted(mode, fmt):
    assert probe_image(encode_image((9, 9), mode=mode, fmt=fmt)).mode == mode


def test_reason_is_code_then_human_detail():
    with pytest.raises(Rejected) as info:
        probe_image(b"")
    assert info.value.reason == "empty-file: 0 bytes"
