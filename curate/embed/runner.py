"""Embed a list of manifest rows with one embedder: the per-shard work of every executor.

Loader workers fetch payloads and run ``embedder.prepare`` on the CPU (PIL decode and
model transforms). On the GPU path workers only read bytes; images are decoded and
preprocessed on the device in batches, and those it cannot decode are prepared on the
CPU instead. Batches are fixed runs of consecutive rows, so results do not depend on
worker timing. A sample that fails everywhere becomes a failure with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from curate.embed.base import Embedder
from curate.embed.payloads import PayloadFetcher


@dataclass(frozen=True)
class LoaderSettings:
    batch_size: int = 256
    workers: int = 2
    device_decode: bool = False  # GPU path: workers read bytes, the device decodes


class _Rows(Dataset):
    """Item i -> (i, kind, prepared item or raw bytes, error or None)."""

    def __init__(self, rows: list[dict], embedder: Embedder, raw_images: bool) -> None:
        self.rows, self.embedder, self.raw_images = rows, embedder, raw_images
        self.fetcher: PayloadFetcher | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, str, Any, str | None]:
        if self.fetcher is None:  # created in the worker, after fork
            self.fetcher = PayloadFetcher()
        row = self.rows[i]
        kind = row["kind"]
        try:
            payload = self.embedder.payload(row, self.fetcher)
            if self.raw_images and kind == "image":
                return i, "raw", payload, None
            return i, kind, self.embedder.prepare(kind, payload), None
        except Exception as exc:  # bad input is a per-sample failure, never fatal
            return i, kind, None, _describe(exc)


def embed_rows(embedder: Embedder, rows: list[dict], settings: LoaderSettings,
               progress: Callable[[int], None] = lambda n: None) -> tuple[np.ndarray, dict[int, str]]:
    """Vectors [len(rows), dim] (fp16, L2-normalised; zero where failed) and failures by index."""
    out = np.zeros((len(rows), embedder.dim), dtype=np.float16)
    failures: dict[int, str] = {}
    if not rows:
        return out, failures
    dataset = _Rows(rows, embedder, settings.device_decode and embedder.device_decode)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, collate_fn=list,
                        num_workers=settings.workers, worker_init_fn=_one_thread,
                        pin_memory=embedder.runtime.device.type == "cuda",
                        prefetch_factor=4 if settings.workers else None)
    with torch.inference_mode():
        for batch in loader:
            for idx, vectors in _embed_batch(embedder, batch, failures):
                finite = torch.isfinite(vectors).all(dim=1)
                for bad in np.flatnonzero(~finite.cpu().numpy()):
                    failures[idx[bad]] = "embed-failed: the model returned NaN or Inf"
                normed = F.normalize(vectors.float(), dim=1).nan_to_num(0.0)
                out[idx] = normed.to(torch.float16).cpu().numpy()
            progress(len(batch))
    for i in failures:
        out[i] = 0
    return out, failures


def _embed_batch(embedder: Embedder, batch: list, failures: dict[int, str]):
    """Yield (row indices, vectors) per kind group of one loader batch."""
    groups: dict[str, list[tuple[int, Any]]] = {}
    for i, kind, item, error in batch:
        if error is not None:
            failures[i] = f"embed-failed: {error}"
        else:
            groups.setdefault(kind, []).append((i, item))
    raw = groups.pop("raw", [])
    if raw:
        prepared, failed = embedder.prepare_on_device([payload for _, payload in raw])
        keep = [k for k in range(len(raw)) if k not in set(failed)]
        if keep:
            yield [raw[k][0] for k in keep], embedder.forward(prepared)
        for k in failed:  # not decodable on the device: try the CPU path for this one
            i, payload = raw[k]
            try:
                groups.setdefault("image", []).append((i, embedder.prepare("image", payload)))
            except Exception as exc:
                failures[i] = f"embed-failed: {_describe(exc)}"
    for items in groups.values():
        yield [i for i, _ in items], embedder.forward(embedder.collate([item for _, item in items]))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)
