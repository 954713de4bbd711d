"""Shared helpers: tiny images built in memory (no committed binaries)."""

from __future__ import annotations

import os

# Tests never touch the network: the hub libraries read these when first imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from curate.io.fs import locate
from curate.manifest import reason_code
from curate.readers import READERS
from curate.readers.base import ReadOptions


def encode_image(size=(16, 12), mode="RGB", fmt="PNG", seed=0, **save) -> bytes:
    """A small deterministic noise image encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    w, h = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4, "CMYK": 4}.get(mode, 3)
    arr = rng.integers(0, 255, size=(h, w, channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, "L" if channels == 1 else
                          ("RGBA" if channels == 4 else "RGB"))
    if mode not in ("L", "RGB", "RGBA"):
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def read_source(reader: str, path, opts: ReadOptions = ReadOptions(workers=2)) -> list[dict]:
    """Plan and read one source with one reader, as ingest would (rows before assembly)."""
    impl = READERS[reader]
    return [row for unit in impl.plan(locate(str(path)), opts) for row in impl.read(unit, opts)]


def code(row: dict) -> str | None:
    """The reason code of a row (``None`` when ok)."""
    return reason_code(row.get("reason"))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the ``curate`` entry point in this process: (exit status, stdout, stderr)."""
    from curate.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def vector_workspace(tmp_path: Path, name: str, vectors, texts=None, **columns):
    """A text workspace whose embeddings are exactly ``vectors`` (rows in manifest order).

    ``columns`` adds per-row fields (e.g. ``label=[...]``, ``split=[...]``); None ones are left out.
    """
    import json

    from curate.embed.stage import EmbedConfig, embed
    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace

    n = len(vectors)
    texts = texts or [f"item {i}" for i in range(n)]
    extra = {k: v for k, v in columns.items() if v is not None}
    rows = [{"id": f"{name}{i}", "text": texts[i], **{k: v[i] for k, v in extra.items()}} for i in range(n)]
    src = write(tmp_path / f"{name}.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    (tmp_path / f"{name}-vectors").mkdir()
    npy = tmp_path / f"{name}-vectors" / "vectors.npy"  # same file name: same store slug in every workspace
    np.save(npy, np.asarray(vectors, dtype=np.float32))
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)
    return ws


@pytest.fixture
def images():
    return encode_image


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
