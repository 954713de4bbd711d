"""Text embedders the user brings: ``st:/path/to/folder``, a local model folder.

The folder is a sentence-transformers model (``modules.json``: transformer, pooling,
maybe normalisation) or a plain Hugging Face encoder folder (``config.json`` + weights +
tokenizer), which sentence-transformers wraps with mean pooling. Loading goes through
sentence-transformers (the optional ``text`` extra) with ``local_files_only``, and only
ever from an existing folder, so nothing is looked up on the hub. Vectors are the model's
``sentence_embedding`` output (the engine L2-normalises them), batched by token length
like the bundled MiniLM. The store identity holds a fingerprint of the folder's files
(names, sizes, modification times): new weights mean a new store, not stale vectors.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch

from curate.embed.base import Embedder, Runtime, text_payload
from curate.errors import CurateError

PREFIX = "st:"
VERSION = 1
INSTALL_HINT = "pip install 'curate[text]'"


def folder_fingerprint(folder: Path) -> str:
    """A digest of every file's relative path, size and mtime under ``folder`` (cheap: no reads)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        h.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _load(folder: Path) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise CurateError(f"--model {PREFIX}<folder> needs sentence-transformers: {INSTALL_HINT}") from exc
    try:
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # a broken folder is a one-line error, not a traceback
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise CurateError(f"cannot load the model folder {folder}: {detail}") from exc


class LocalTextEmbedder(Embedder):
    """Sentence embeddings from a local sentence-transformers / Hugging Face model folder."""

    kinds = frozenset({"text"})
    in_process = True

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise CurateError(f"no model folder at {folder}: {PREFIX} takes a local sentence-transformers or "
                              "Hugging Face model folder")
        if not any((self.folder / name).is_file() for name in ("modules.json", "config.json")):
            raise CurateError(f"{self.folder} holds neither modules.json (sentence-transformers) nor config.json "
                              "(Hugging Face): not a model folder")
        self.spec = f"{PREFIX}{self.folder}"
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.folder.name).strip("-.")[:40] or "model"
        self.slug = f"st-{name}-{hashlib.sha256(str(self.folder).encode()).hexdigest()[:8]}"
        self.fingerprint = folder_fingerprint(self.folder)
        self._model = _load(self.folder).eval()
        dimension = getattr(self._model, "get_embedding_dimension", None)  # renamed in sentence-transformers 6
        dim = (dimension or self._model.get_sentence_embedding_dimension)()
        if not dim:
            raise CurateError(f"{self.folder}: the model does not say its embedding dimension")
        self.dim = int(dim)
        self.max_tokens = self._model.max_seq_length

    @classmethod
    def from_spec(cls, spec: str) -> LocalTextEmbedder:
        folder = spec.removeprefix(PREFIX)
        if not folder:
            raise CurateError(f"{PREFIX} needs a folder: --model {PREFIX}/path/to/model")
        return cls(folder)

    def setup(self, runtime: Runtime) -> None:
        super().setup(runtime)
        self._model.to(device=runtime.device, dtype=runtime.dtype)

    def prepare(self, kind: str, payload: bytes | str) -> str:
        return text_payload(kind, payload, self.spec)

    def batch_lengths(self, prepared: list[str]) -> list[int]:
        tokenizer = getattr(self._model, "tokenizer", None)
        if tokenizer is None:
            return [len(text) // 4 + 2 for text in prepared]  # about four characters a token
        ids = tokenizer(prepared, truncation=True, max_length=self.max_tokens)["input_ids"]
        return [len(row) for row in ids]

    def collate(self, prepared: list[str]) -> dict[str, torch.Tensor]:
        preprocess = getattr(self._model, "preprocess", None) or self._model.tokenize  # tokenize: before v5
        return preprocess(prepared)

    @torch.inference_mode()
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if not hasattr(self, "runtime"):
            raise RuntimeError("call setup(runtime) before forward")
        device = self.runtime.device
        features = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return self._model(features)["sentence_embedding"].float()

    def identity(self) -> dict:
        return {**super().identity(), "folder": str(self.folder), "files": self.fingerprint,
                "max_tokens": self.max_tokens, "version": VERSION}
