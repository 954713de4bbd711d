"""The embedder contract shared by every model family.

Work is split so the expensive parts run where they belong:

- ``prepare(kind, payload)`` runs in data-loader workers on the CPU: decode and
  preprocess one image (bytes) or pass one text through. It raises on bad input; the
  engine then quarantines that sample for this stage with the error as the reason.
- ``collate(prepared)`` turns a list of prepared items into one batch.
- ``forward(batch)`` runs the model on ``self.device`` and returns float vectors [B, dim]
  (the engine L2-normalises and stores them as fp16).
- ``prepare_on_device(payloads)`` is optional (GPU path): decode and preprocess a batch
  of raw image bytes on the device; returns the batch and the positions it could not
  decode, which the engine then prepares on the CPU instead.
- ``in_process`` / ``batch_lengths(prepared)`` (text models): preparing is cheap, so the
  engine prepares in its own process (worker processes would only compete with torch's
  threads) and batches items of like length together, so little compute goes to padding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from curate.device import resolve_device

if TYPE_CHECKING:
    from curate.embed.payloads import PayloadFetcher

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs (resolved from ``--device`` and ``--precision``)."""

    device: torch.device
    dtype: torch.dtype


def resolve_runtime(device: str | torch.device = "auto", precision: str = "fp16") -> Runtime:
    """The device (:func:`curate.device.resolve_device`: a torch.device as it is) and dtype a model runs
    with; half precision falls back to fp32 on CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    dev = resolve_device(device)
    dtype = PRECISIONS[precision]
    if dev.type == "cpu" and dtype == torch.float16:
        dtype = torch.float32  # fp16 matmuls are slow or missing on CPU
    return Runtime(dev, dtype)


class Embedder(ABC):
    """One embedding model. Subclasses set ``spec``, ``slug``, ``dim`` and ``kinds``."""

    spec: str
    slug: str
    dim: int
    kinds: frozenset[str]
    device_decode: bool = False  # True when prepare_on_device is implemented
    content_addressed: bool = True  # a vector depends only on the sample's bytes (stores reuse it by content hash)
    in_process: bool = False  # prepare is cheap (text): no loader worker processes, batches sorted by length

    def setup(self, runtime: Runtime) -> None:
        """Move weights to the device / precision; called once before the first batch."""
        self.runtime = runtime

    @abstractmethod
    def prepare(self, kind: str, payload: bytes | str) -> Any:
        """CPU-side decode + preprocess of one payload (runs in loader workers)."""

    def collate(self, prepared: list[Any]) -> Any:
        return torch.stack(prepared)

    @abstractmethod
    def forward(self, batch: Any) -> torch.Tensor:
        """Vectors [B, dim] for a collated batch."""

    def batch_lengths(self, prepared: list[Any]) -> list[int] | None:
        """The cost of each prepared item (text: tokens after truncation), for batching by length.

        ``None`` keeps row order. Only used when ``in_process`` is set."""
        return None

    def prepare_on_device(self, payloads: list[bytes]) -> tuple[Any, list[int]] | None:
        """Optional GPU decode path; ``None`` means not supported."""
        return None

    def payload(self, row: dict, fetcher: PayloadFetcher) -> Any:
        """What ``prepare`` gets for a manifest row; precomputed embeddings override this."""
        return fetcher.fetch(row)

    def identity(self) -> dict:
        """Everything that determines the output vectors (goes into the store fingerprint)."""
        return {"spec": self.spec, "dim": self.dim}


def text_payload(kind: str, payload: bytes | str, model: str) -> str:
    """``prepare`` of text models: the text as ``str`` (UTF-8 bytes decoded); anything else raises."""
    if kind != "text":
        raise ValueError(f"{model} embeds text, not {kind}")
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            return bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"text is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(payload, str):
        raise ValueError(f"text payload must be str, got {type(payload).__name__}")
    return payload
