"""OpenClipEmbedder on a small architecture with random weights (no downloads, CPU)."""

from __future__ import annotations

import io
import json
import pickle
import re

import numpy as np
import open_clip  # imports torchvision
import pytest
import torch
import torch.nn.functional as nnf
from PIL import Image

from curate.embed.base import resolve_runtime
from curate.embed.openclip import (
    SPEC_FORMS,
    OpenClipEmbedder,
    OpenClipSpec,
    decode_image,
    parse_spec,
    slug_for,
)

ARCH = "ViT-S-32"  # the smallest stock open_clip config: 224 px, 384-d, ~63M parameters
TEXTS = ["a photo of a cat", "a diagram of a bridge", ""]


def smooth(w: int, h: int, seed: int = 0) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([np.sin(6 * x + seed) * 0.5 + 0.5, np.cos(4 * y + 2 * x) * 0.5 + 0.5, x * y], -1)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "JPEG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


JPEGS = [encode(smooth(w, h, seed=i), quality=92) for i, (w, h) in enumerate([(640, 480), (300, 700), (150, 100)])]


@pytest.fixture(scope="module")
def emb() -> OpenClipEmbedder:
    e = OpenClipEmbedder.from_spec(f"openclip:{ARCH}")
    e.setup(resolve_runtime("cpu", "fp32"))
    return e


def embed(e: OpenClipEmbedder, kind: str, payloads: list) -> torch.Tensor:
    return e.forward(e.collate([e.prepare(kind, p) for p in payloads]))


# --- specs and names ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec,parsed",
    [
        ("openclip:ViT-B-32/laion2b_s34b_b79k", OpenClipSpec("ViT-B-32", "laion2b_s34b_b79k")),
        ("openclip:ViT-B-32@/ckpt/my model@v2.pt", OpenClipSpec("ViT-B-32", checkpoint="/ckpt/my model@v2.pt")),
        ("openclip:RN50@relative/c.pt", OpenClipSpec("RN50", checkpoint="relative/c.pt")),
        ("openclip:ViT-S-32", OpenClipSpec("ViT-S-32")),
    ],
)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed


@pytest.mark.parametrize(
    "spec",
    ["", "openclip:", "clip:ViT-B-32", "ViT-B-32", "openclip:ViT-B-32/", "openclip:ViT-B-32@", "openclip:/x",
     "openclip:ViT-B-32/a/b", "openclip:ViT-B-32/tag@x.pt", "openclip: ViT-B-32", "openclip:ViT-B-32 ", None],
)
def test_bad_spec_names_the_forms(spec):
    with pytest.raises(ValueError) as err:
        OpenClipEmbedder.from_spec(spec)
    message = str(err.value)
    assert "\n" not in message and SPEC_FORMS in message


def test_unknown_arch_tag_or_file_fail_before_loading(tmp_path):
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        OpenClipEmbedder.from_spec("openclip:ViT-Q-99")
    with pytest.raises(ValueError, match="laion2b_s34b_b79k"):  # the message lists the known tags
        OpenClipEmbedder.from_spec("openclip:ViT-B-32/no-such-tag")
    with pytest.raises(ValueError, match="checkpoint file not found"):
        OpenClipEmbedder.from_spec(f"openclip:{ARCH}@{tmp_path / 'missing.pt'}")


def test_slugs_are_folder_safe(tmp_path):
    assert slug_for(parse_spec("openclip:ViT-B-32/laion2b_s34b_b79k")) == "openclip-ViT-B-32-laion2b_s34b_b79k"
    assert slug_for(parse_spec("openclip:ViT-B-32")) == "openclip-ViT-B-32-random"
    odd = tmp_path / "run 7" / "épоch:3 (best).pt"
    odd.parent.mkdir()
    odd.write_bytes(b"x" * 10)
    slug = slug_for(parse_spec(f"openclip:ViT-B-32@{odd}"))
    assert re.fullmatch(r"openclip-ViT-B-32-[A-Za-z0-9._-]+-[0-9a-f]{8}", slug), slug
    other = tmp_path / "b" / odd.name  # same stem elsewhere: a different digest
    other.parent.mkdir()
    other.write_bytes(b"x" * 10)
    assert slug_for(parse_spec(f"openclip:ViT-B-32@{other}")) != slug


# --- the model ----------------------------------------------------------------------------
def test_shapes_dim_and_identity(emb):
    assert emb.kinds == {"image", "text"}
    assert emb.dim == emb.model.visual.output_dim == 384
    images, texts = embed(emb, "image", JPEGS), embed(emb, "text", TEXTS)
    assert images.shape == (3, 384) and texts.shape == (3, 384)
    assert images.dtype == texts.dtype == torch.float32
    ident = json.loads(json.dumps(emb.identity()))
    assert ident["spec"] == f"openclip:{ARCH}" and ident["arch"] == ARCH and ident["pretrained"] is None
    assert ident["preprocess"]["size"] == [224, 224] and ident["preprocess"]["interpolation"] == "bicubic"
    assert emb.slug == f"openclip-{ARCH}-random"


def test_deterministic_and_picklable(emb):
    first = embed(emb, "image", JPEGS[:2])
    assert torch.equal(first, embed(emb, "image", JPEGS[:2]))
    # a loader worker gets the transforms without the weights; the random form rebuilds identically
    state = pickle.dumps(emb)
    assert len(state) < 1_000_000
    worker = pickle.loads(state)
    assert torch.equal(worker.prepare("image", JPEGS[0]), emb.prepare("image", JPEGS[0]))
    assert torch.allclose(embed(worker, "image", JPEGS[:2]), first, atol=1e-5)


def test_prepare_rejects_bad_input(emb):
    with pytest.raises(ValueError, match="undecodable image"):
        emb.prepare("image", JPEGS[0][:400])
    with pytest.raises(ValueError, match="undecodable image"):
        emb.prepare("image", b"not an image")
    with pytest.raises(ValueError):
        emb.prepare("text", b"bytes, not str")
    with pytest.raises(ValueError):
        emb.prepare("audio", b"")
    with pytest.raises(ValueError):
        emb.forward(torch.zeros(2, 3, 4))


def test_exif_rotation_and_modes_are_normalised():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: PIL must present it upright
    assert decode_image(encode(smooth(120, 80), quality=90, exif=exif.tobytes())).size == (80, 120)
    for mode in ("L", "RGBA", "P"):
        assert decode_image(encode(smooth(20, 10).convert(mode), "PNG")).mode == "RGB"


def test_local_checkpoint_matches_in_memory_model(emb, tmp_path):
    """Must show: ``openclip:<arch>@file`` loads the file's weights (not the random init)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)  # weights unlike the random form's, so a silent no-load would show
        model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    model.eval()
    path = tmp_path / "finetuned.pt"
    torch.save(model.state_dict(), path)
    try:
        loaded = OpenClipEmbedder.from_spec(f"openclip:{ARCH}@{path}")
        loaded.setup(resolve_runtime("cpu", "fp32"))
        with torch.inference_mode():
            img_ref = model.encode_image(preprocess(decode_image(JPEGS[0])).unsqueeze(0))
            txt_ref = model.encode_text(open_clip.get_tokenizer(ARCH)([TEXTS[0]]))
        img, txt = embed(loaded, "image", JPEGS[:1]), embed(loaded, "text", TEXTS[:1])
        torch.testing.assert_close(img, img_ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(txt, txt_ref, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(img, embed(emb, "image", JPEGS[:1]), atol=1e-3)  # the file was really used
        ident = loaded.identity()
        assert re.fullmatch(r"\d+:[0-9a-f]{16}", ident["checkpoint"]) and ident["checkpoint"].startswith(
            f"{path.stat().st_size}:"
        )
        assert loaded.slug.startswith(f"openclip-{ARCH}-finetuned-")
    finally:
        path.unlink()  # ~250 MB: do not leave it in pytest's kept temp folders


# --- the device path, run on the CPU --------------------------------------------------------
def test_prepare_on_device_matches_cpu_path(emb):
    png = encode(smooth(64, 48), "PNG")
    batch, failed = emb.prepare_on_device([JPEGS[0], png, JPEGS[1], b"\xff\xd8\xffjunk", JPEGS[2]])
    assert failed == [1, 3]
    cpu = torch.stack([emb.prepare("image", p) for p in JPEGS])
    assert batch.shape == cpu.shape
    diff = (batch - cpu).abs()
    # measured: max 0.030 (2 grey levels / std), mean ~5e-5; same libjpeg, resampling rounding only
    assert diff.max() < 0.06 and diff.mean() < 1e-3
    cos = nnf.cosine_similarity(emb.forward(batch), emb.forward(cpu))
    assert cos.min() > 0.99


@pytest.mark.gpu
def test_prepare_on_device_cuda():
    e = OpenClipEmbedder.from_spec(f"openclip:{ARCH}")
    e.setup(resolve_runtime("cuda", "fp16"))
    batch, failed = e.prepare_on_device([*JPEGS, encode(smooth(64, 48), "PNG")])
    assert failed == [len(JPEGS)] and batch.device.type == "cuda"
    cpu = torch.stack([e.prepare("image", p) for p in JPEGS])
    diff = (batch.cpu() - cpu).abs()
    print(f"cuda vs PIL: max {diff.max():.4f}, mean {diff.mean():.5f} (normalised units)")
    assert diff.mean() < 0.05
    out = e.forward(batch)
    assert out.dtype == torch.float32 and out.shape == (len(JPEGS), e.dim)
    assert nnf.cosine_similarity(out, e.forward(cpu)).min() > 0.99
