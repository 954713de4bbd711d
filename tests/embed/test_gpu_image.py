"""Device-side JPEG decode + preprocessing against open_clip's own PIL eval transform."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from open_clip.transform import image_transform  # imports torchvision
from PIL import Image

from curate.embed.gpu_image import DevicePreprocess, decode_jpegs, is_jpeg, prepare_jpegs
from curate.embed.openclip import decode_image

CPU = torch.device("cpu")
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
LEVEL = 1 / 255 / min(STD)  # one grey level in normalised units


def smooth(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like (smooth, colourful) RGB image."""
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([np.sin(6 * x + seed) * 0.5 + 0.5, np.cos(4 * y + 2 * x) * 0.5 + 0.5, x * y], -1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def jpeg(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92, **save)
    return buf.getvalue()


def with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg(img, exif=exif.tobytes())


NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
JPEGS = [
    jpeg(smooth(640, 480)),
    jpeg(smooth(300, 700)),  # portrait
    jpeg(smooth(150, 100)),  # smaller than the target: upsampled
    jpeg(smooth(1000, 333)),  # panorama
    jpeg(NOISE),  # worst case for resampling differences
    jpeg(smooth(200, 300).convert("L")),  # greyscale JPEG
    jpeg(smooth(640, 480, seed=1)),  # same shape as the first: resized as one group
]


def reference(payloads: list[bytes], cfg: dict) -> torch.Tensor:
    """What open_clip's eval transform makes of the PIL-decoded images."""
    tf = image_transform(
        cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"],
        resize_mode=cfg["resize_mode"], interpolation=cfg["interpolation"],
    )
    return torch.stack([tf(decode_image(p)) for p in payloads])


@pytest.mark.parametrize(
    "resize_mode,size,interpolation",
    [
        ("shortest", 224, "bicubic"),
        ("shortest", (160, 224), "bicubic"),
        ("longest", 224, "bilinear"),
        ("longest", (180, 240), "bicubic"),
        ("squash", (200, 240), "bicubic"),
    ],
)
def test_matches_open_clip_transform(resize_mode, size, interpolation):
    cfg = dict(size=size, mean=MEAN, std=STD, interpolation=interpolation, resize_mode=resize_mode, fill_color=0)
    batch, failed = prepare_jpegs(JPEGS, DevicePreprocess.from_open_clip(cfg), CPU)
    ref = reference(JPEGS, cfg)
    assert failed == [] and batch.shape == ref.shape and batch.dtype == torch.float32
    diff = (batch - ref).abs()
    # measured on CPU: at most 2 grey levels anywhere, mean ~6e-5 (libjpeg is the same decoder)
    assert diff.max() <= 2.5 * LEVEL
    assert diff.mean() < 1e-3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(orientation):
    cfg = dict(size=64, mean=MEAN, std=STD, interpolation="bicubic", resize_mode="shortest", fill_color=0)
    payload = with_orientation(smooth(120, 80, seed=orientation), orientation)
    batch, failed = prepare_jpegs([payload], DevicePreprocess.from_open_clip(cfg), CPU)
    assert failed == []
    assert (batch - reference([payload], cfg)).abs().max() <= 2.5 * LEVEL


def test_failures_come_back_by_position():
    good = JPEGS[0]
    png = io.BytesIO()
    smooth(40, 30).save(png, "PNG")
    cmyk = jpeg(smooth(40, 30).convert("CMYK"))  # PIL and nvjpeg disagree on CMYK: the CPU path decides
    payloads = [png.getvalue(), good, good[:3] + bytes(200), b"", good[: len(good) // 2], cmyk, JPEGS[2]]
    pp = DevicePreprocess.from_open_clip(dict(size=32, mean=MEAN, std=STD))
    batch, failed = prepare_jpegs(payloads, pp, CPU)
    assert failed == [0, 2, 3, 4, 5]
    assert batch.shape == (2, 3, 32, 32)
    alone, _ = prepare_jpegs([good, JPEGS[2]], pp, CPU)
    assert torch.equal(batch, alone)  # the survivors, in input order, unaffected by the bad ones


def test_one_corrupt_jpeg_does_not_sink_the_batch():
    truncated = JPEGS[0][: len(JPEGS[0]) // 2]
    decoded = decode_jpegs([JPEGS[2], truncated, JPEGS[5]], CPU)
    assert decoded[1] is None
    assert decoded[0].shape == (3, 100, 150) and decoded[2].shape == (3, 300, 200)  # greyscale comes back RGB


def test_all_failed_gives_an_empty_batch():
    pp = DevicePreprocess.from_open_clip(dict(size=(24, 32), mean=MEAN, std=STD))
    batch, failed = prepare_jpegs([b"nope", b"\xff\xd8\xff"], pp, CPU)
    assert failed == [0, 1] and batch.shape == (0, 3, 24, 32)


def test_config_defaults_and_magic():
    pp = DevicePreprocess.from_open_clip({"size": 224, "interpolation": "random"})
    assert pp.size == (224, 224) and pp.interpolation == "bicubic" and pp.resize_mode == "shortest"
    assert len(pp.mean) == len(pp.std) == 3
    assert is_jpeg(JPEGS[0]) and not is_jpeg(b"\x89PNG\r\n") and not is_jpeg(b"")


@pytest.mark.gpu
def test_cuda_decode_and_fallback():
    device = torch.device("cuda")
    cfg = dict(size=224, mean=MEAN, std=STD, interpolation="bicubic", resize_mode="shortest", fill_color=0)
    truncated = JPEGS[0][: len(JPEGS[0]) // 2]
    batch, failed = prepare_jpegs([*JPEGS, truncated], DevicePreprocess.from_open_clip(cfg), device)
    assert failed == [len(JPEGS)]
    assert batch.device.type == "cuda"
    diff = (batch.cpu() - reference(JPEGS, cfg)).abs()
    print(f"cuda vs PIL: max {diff.max():.4f}, mean {diff.mean():.5f} (normalised units)")
    # nvjpeg's IDCT/upsampling and the float resize differ slightly from libjpeg + PIL
    assert diff.mean() < 4 * LEVEL
    assert diff.max() < 40 * LEVEL
