"""Embed a list of manifest rows with one embedder: the per-shard work of every executor.

Loader workers fetch payloads and run ``embedder.prepare`` on the CPU (PIL decode and
model transforms). On the GPU path workers only read bytes; images are decoded and
preprocessed on the device in batches, and those it cannot decode are prepared on the
CPU instead. Batches are fixed runs of consecutive rows, so results do not depend on
worker timing. A sample that fails everywhere becomes a failure with a reason.

Text models (``embedder.in_process``) take another path: tokenising is cheap, so rows are
prepared in this process (loader workers would only compete with torch's intra-op threads
for the same cores), sorted by token length within the shard (longest first, so a batch
pads little and the largest batch comes first), and cut into batches of at most
``batch_size`` items and ``text_tokens`` padded tokens. Vectors go back to their rows by
index, so only float rounding depends on the order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from curate.embed.base import Embedder
from curate.embed.payloads import PayloadFetcher


@dataclass(frozen=True)
class LoaderSettings:
    batch_size: int = 256
    workers: int = 2
    device_decode: bool = False  # GPU path: workers read bytes, the device decodes
    text_tokens: int = 8192  # text path: at most this many padded tokens per batch (keeps CPU batches in cache)


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


class _Collate:
    """Runs in the loader worker: one stacked batch per kind, so a batch crosses the process
    boundary as a few tensors, not one shared-memory handle per sample."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, items: list) -> dict:
        failures, groups = [], {}
        for i, kind, item, error in items:
            if error is not None:
                failures.append((i, error))
            else:
                groups.setdefault(kind, []).append((i, item))
        batches = {}
        for kind, members in groups.items():
            indices = [i for i, _ in members]
            payload = [item for _, item in members]
            if kind == "raw":
                batches[kind] = (indices, payload)
                continue
            try:
                batches[kind] = (indices, self.embedder.collate(payload))
            except Exception as exc:  # one bad item must not sink its batch: fail them one by one
                for i, item in members:
                    try:
                        batches.setdefault(f"{kind}#{i}", ([i], self.embedder.collate([item])))
                    except Exception as inner:
                        failures.append((i, _describe(inner if inner else exc)))
        return {"size": len(items), "failures": failures, "batches": batches}


def embed_rows(embedder: Embedder, rows: list[dict], settings: LoaderSettings,
               progress: Callable[[int], None] = lambda n: None) -> tuple[np.ndarray, dict[int, str]]:
    """Vectors [len(rows), dim] (fp16, L2-normalised; zero where failed) and failures by index."""
    out = np.zeros((len(rows), embedder.dim), dtype=np.float16)
    failures: dict[int, str] = {}
    if not rows:
        return out, failures
    if embedder.in_process:
        loader = _length_sorted_batches(embedder, rows, settings)
    else:
        dataset = _Rows(rows, embedder, settings.device_decode and embedder.device_decode)
        loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, collate_fn=_Collate(embedder),
                            num_workers=settings.workers, worker_init_fn=_one_thread,
                            pin_memory=embedder.runtime.device.type == "cuda",
                            prefetch_factor=4 if settings.workers else None)
    with torch.inference_mode():
        for batch in loader:
            failures.update({i: f"embed-failed: {error}" for i, error in batch["failures"]})
            for idx, vectors in _forward(embedder, batch["batches"], failures):
                wide = vectors.double()  # float64: a float32 vector whose norm overflows still normalises
                norms = wide.norm(dim=1)
                finite = torch.isfinite(wide).all(dim=1).cpu().numpy()
                usable = (finite & (norms > 0).cpu().numpy() & torch.isfinite(norms).cpu().numpy())
                for bad in np.flatnonzero(~usable):
                    failures[idx[bad]] = ("embed-failed: the model returned NaN or Inf" if not finite[bad]
                                          else "embed-failed: zero or unnormalisable vector")
                normed = (wide / norms.clamp_min(1e-300)[:, None]).nan_to_num(0.0)
                out[idx] = normed.to(torch.float16).cpu().numpy()
            progress(batch["size"])
    for i in failures:
        out[i] = 0
    return out, failures


def _length_sorted_batches(embedder: Embedder, rows: list[dict], settings: LoaderSettings) -> Iterator[dict]:
    """Loader batches for a text model, prepared in this process and grouped by length (see module doc)."""
    items = _Rows(rows, embedder, raw_images=False)
    prepared = [items[i] for i in range(len(rows))]
    failed = [(i, error) for i, _, _, error in prepared if error is not None]
    good = [item for item in prepared if item[3] is None]
    if failed:
        yield {"size": len(failed), "failures": failed, "batches": {}}
    lengths = embedder.batch_lengths([item for _, _, item, _ in good]) if good else None
    if lengths is None:
        spans = [(s, min(s + settings.batch_size, len(good))) for s in range(0, len(good), settings.batch_size)]
    else:
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        good = [good[k] for k in order]
        spans = _token_budget_spans([lengths[k] for k in order], settings.batch_size, settings.text_tokens)
    collate = _Collate(embedder)
    for start, stop in spans:
        yield collate(good[start:stop])


def _token_budget_spans(lengths: list[int], batch_size: int, tokens: int) -> list[tuple[int, int]]:
    """Cut lengths sorted longest first into runs of <= ``batch_size`` items and <= ``tokens`` padded tokens
    (a run's padded size is its first item's length times its item count; one item always fits)."""
    spans, start = [], 0
    while start < len(lengths):
        per_item = max(1, lengths[start])
        stop = min(len(lengths), start + max(1, min(batch_size, tokens // per_item)))
        spans.append((start, stop))
        start = stop
    return spans


def _forward(embedder: Embedder, batches: dict[str, tuple[list[int], Any]], failures: dict[int, str]):
    """Yield (row indices, vectors) for each collated group of one loader batch."""
    batches = dict(batches)
    raw = batches.pop("raw", None)
    if raw is not None:
        indices, payloads = raw
        prepared, failed = embedder.prepare_on_device(payloads)
        failed_set = set(failed)
        kept = [i for k, i in enumerate(indices) if k not in failed_set]
        if kept:
            yield kept, embedder.forward(prepared)
        retry = []
        for k in failed:  # not decodable on the device: try the CPU path for this one
            try:
                retry.append((indices[k], embedder.prepare("image", payloads[k])))
            except Exception as exc:
                failures[indices[k]] = f"embed-failed: {_describe(exc)}"
        if retry:
            yield [i for i, _ in retry], embedder.forward(embedder.collate([item for _, item in retry]))
    for indices, batch in batches.values():
        yield indices, embedder.forward(batch)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)
