"""Decode and preprocess JPEG bytes on the model's device (the GPU image path).

Pixels never visit the host: ``torchvision.io.decode_jpeg`` decodes a batch straight into
device memory (nvjpeg on CUDA, libjpeg on CPU, so the same code is testable here), then
resize, crop and normalise run as tensor ops on that device. The geometry mirrors
open_clip's eval transform (``open_clip.transform.image_transform``) so the vectors match
the CPU/PIL path up to decoder and resampling rounding.

Anything this path cannot reproduce faithfully (not a JPEG, undecodable, CMYK, over PIL's
decompression-bomb limit) is reported back by position; the engine prepares those on the
CPU, where the PIL path decides (and quarantines) them.
"""

from __future__ import annotations

import io
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class DevicePreprocess:
    """Eval-time image geometry and normalisation, read from an open_clip preprocess config."""

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"  # "bicubic" | "bilinear"
    resize_mode: str = "shortest"  # "shortest" | "longest" | "squash"
    fill: int = 0

    @classmethod
    def from_open_clip(cls, cfg: dict) -> DevicePreprocess:
        """From ``model.visual.preprocess_cfg`` (open_clip's own defaults fill the gaps)."""
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        size = cfg["size"]
        size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

        def triple(v, default) -> tuple[float, float, float]:
            v = v or default
            return tuple(float(x) for x in (v if isinstance(v, (list, tuple)) else (v,) * 3))

        interpolation = cfg.get("interpolation") or "bicubic"
        return cls(
            size=size,
            mean=triple(cfg.get("mean"), OPENAI_DATASET_MEAN),
            std=triple(cfg.get("std"), OPENAI_DATASET_STD),
            # open_clip maps everything but "bilinear" (e.g. "random") to bicubic at eval time
            interpolation="bilinear" if interpolation == "bilinear" else "bicubic",
            resize_mode=cfg.get("resize_mode") or "shortest",
            fill=int(cfg.get("fill_color") or 0),
        )

    def resized_size(self, height: int, width: int) -> list[int]:
        """Size after the resize step, computed exactly as open_clip's eval transform does."""
        th, tw = self.size
        if self.resize_mode == "squash":
            return [th, tw]
        if self.resize_mode == "shortest" and th == tw:
            # torchvision Resize(int): shortest side to size, the other truncated
            short, long = sorted((height, width))
            new_short, new_long = th, int(th * long / short)
            return [new_short, new_long] if height <= width else [new_long, new_short]
        # ResizeKeepRatio: longest=1 for "longest", 0 for non-square "shortest"
        rh, rw = height / th, width / tw
        ratio = max(rh, rw) if self.resize_mode == "longest" else min(rh, rw)
        return [round(height / ratio), round(width / ratio)]

    @property
    def resize_interpolation(self) -> InterpolationMode:
        # open_clip's non-square "shortest" builds ResizeKeepRatio without passing the mode
        if self.resize_mode == "shortest" and self.size[0] != self.size[1]:
            return InterpolationMode.BICUBIC
        return InterpolationMode.BILINEAR if self.interpolation == "bilinear" else InterpolationMode.BICUBIC


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def probe_jpeg(data: bytes) -> int | None:
    """EXIF orientation (1-8) of a JPEG this path can decode faithfully, else ``None``.

    Reads the header only (tens of microseconds). ``None`` for non-JPEGs, unreadable headers,
    CMYK/YCCK (PIL and nvjpeg convert those differently) and decompression bombs.
    """
    if not is_jpeg(data):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        if img.format != "JPEG" or img.mode not in ("RGB", "L"):
            return None
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - any header failure means "let the CPU path decide"
        return None
    return orientation if orientation in range(1, 9) else 1


def apply_orientation(img: torch.Tensor, orientation: int) -> torch.Tensor:
    """Rotate/flip a [C,H,W] tensor as ``PIL.ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return img.flip(-1)
    if orientation == 3:
        return img.flip(-2, -1)
    if orientation == 4:
        return img.flip(-2)
    if orientation == 5:
        return img.transpose(-2, -1)
    if orientation == 6:
        return img.rot90(-1, (-2, -1))
    if orientation == 7:
        return img.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return img.rot90(1, (-2, -1))
    return img


def decode_jpegs(payloads: Sequence[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """Decode JPEG bytes to uint8 RGB [3,H,W] on ``device``; ``None`` where decoding failed.

    One batched call first (fast on CUDA); a single corrupt image makes that call raise,
    so on failure each image is decoded alone to find the bad ones.
    """
    if not payloads:
        return []
    data = [torch.frombuffer(bytearray(p), dtype=torch.uint8) for p in payloads]
    try:
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
    except (RuntimeError, ValueError):
        pass
    out: list[torch.Tensor | None] = []
    for d in data:
        try:
            out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
        except (RuntimeError, ValueError):
            out.append(None)
    return out


def preprocess(images: Sequence[torch.Tensor], pp: DevicePreprocess) -> torch.Tensor:
    """uint8 [3,H,W] images (any sizes, one device) to a normalised float32 [B,3,h,w] batch.

    Images of equal shape are resized together; crop/pad happen in uint8 (as PIL does before
    ``ToTensor``), then one batched normalisation.
    """
    th, tw = pp.size
    if not images:
        return torch.empty((0, 3, th, tw), dtype=torch.float32)
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, img in enumerate(images):
        by_shape[tuple(img.shape)].append(i)
    out = torch.empty((len(images), 3, th, tw), dtype=torch.uint8, device=images[0].device)
    for (_, h, w), idx in by_shape.items():
        group = torch.stack([images[i] for i in idx])
        group = F.resize(group, pp.resized_size(h, w), interpolation=pp.resize_interpolation, antialias=True)
        if pp.resize_mode == "longest":
            group = _pad_to(group, th, tw, pp.fill)
        out[idx] = F.center_crop(group, [th, tw])
    mean = torch.tensor(pp.mean, device=out.device).view(1, 3, 1, 1)
    std = torch.tensor(pp.std, device=out.device).view(1, 3, 1, 1)
    return out.float().div_(255.0).sub_(mean).div_(std)


def _pad_to(x: torch.Tensor, th: int, tw: int, fill: int) -> torch.Tensor:
    """Pad [..,H,W] up to at least (th, tw) with ``fill``, centred as open_clip's CenterCropOrPad."""
    h, w = x.shape[-2:]
    if h >= th and w >= tw:
        return x
    pad_w, pad_h = max(tw - w, 0), max(th - h, 0)
    ltrb = [pad_w // 2, pad_h // 2, (pad_w + 1) // 2, (pad_h + 1) // 2]
    return F.pad(x, ltrb, fill=fill)


def prepare_jpegs(
    payloads: Sequence[bytes], pp: DevicePreprocess, device: torch.device
) -> tuple[torch.Tensor, list[int]]:
    """Decode + preprocess a batch on ``device``.

    Returns the batch of the payloads that succeeded (in input order) and the positions of
    those that did not (non-JPEG, corrupt, or deferred to the CPU path by ``probe_jpeg``).
    """
    orientations = [probe_jpeg(p) for p in payloads]
    todo = [i for i, o in enumerate(orientations) if o is not None]
    decoded = decode_jpegs([payloads[i] for i in todo], device)
    images, ok = [], set()
    for i, img in zip(todo, decoded):
        if img is not None:
            images.append(apply_orientation(img, orientations[i]))
            ok.add(i)
    batch = preprocess(images, pp).to(device)
    return batch, [i for i in range(len(payloads)) if i not in ok]
