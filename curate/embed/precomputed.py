"""Bring-your-own embeddings: a Parquet column ingested with the samples, or an .npy file.

``precomputed:<column>``: vectors come from column ``<column>`` of the Parquet source row
each sample was read from (ingest validated them with ``--embedding-field``).
``precomputed:/path/file.npy``: an [N, d] array whose rows follow the manifest's ingest
order (N = manifest rows, quarantined ones included); another N is an error.
Vectors are L2-normalised and stored like any model's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curate.embed.base import Embedder
from curate.embed.payloads import PayloadFetcher
from curate.errors import CurateError
from curate.io.hashing import fingerprint
from curate.workspace import Workspace

_ROW = re.compile(r"^(?P<file>.+)#row=(?P<row>\d+)$")


class PrecomputedEmbedder(Embedder):
    kinds = frozenset({"image", "text"})
    content_addressed = False  # vectors come with the row (file position or Parquet cell), not from its bytes

    def __init__(self, spec: str, dim: int, column: str | None = None, array: np.ndarray | None = None,
                 digest: str = "") -> None:
        self.spec, self.dim, self.column, self.array, self.digest = spec, dim, column, array, digest
        name = column if column is not None else Path(spec.split(":", 1)[1]).stem
        self.slug = "precomputed-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)

    @classmethod
    def from_spec(cls, spec: str, ws: Workspace) -> PrecomputedEmbedder:
        target = spec.split(":", 1)[1]
        if not target:
            raise CurateError("precomputed: needs a column name or an .npy path")
        if target.endswith(".npy"):
            return cls._from_npy(spec, target, ws)
        return cls._from_column(spec, target, ws)

    @classmethod
    def _from_npy(cls, spec: str, path: str, ws: Workspace) -> PrecomputedEmbedder:
        if not Path(path).exists():
            raise CurateError(f"precomputed embeddings file not found: {path}")
        array = np.load(path, mmap_mode="r")
        rows = ws.manifest_meta()["count"]
        if array.ndim != 2 or array.shape[0] != rows:
            raise CurateError(f"{path} has shape {array.shape}; expected ({rows}, dim): one row per "
                              "manifest row, in ingest order")
        stat = Path(path).stat()
        return cls(spec, int(array.shape[1]), array=array, digest=fingerprint([path, stat.st_size, stat.st_mtime_ns]))

    @classmethod
    def _from_column(cls, spec: str, column: str, ws: Workspace) -> PrecomputedEmbedder:
        import pyarrow.compute as pc

        manifest = ws.read_manifest(["source", "source_kind", "status"])
        ok = manifest.filter(pc.equal(manifest.column("status"), "ok"))
        parquet = ok.filter(pc.equal(ok.column("source_kind"), "parquet"))
        if parquet.num_rows == 0:
            raise CurateError(f"precomputed:{column} needs samples ingested from Parquet")
        first = _ROW.match(parquet.column("source")[0].as_py())
        if first is None:
            raise CurateError(f"precomputed:{column}: samples do not point at Parquet rows")
        try:
            vector = PayloadFetcher().cell(first["file"], int(first["row"]), column)
        except KeyError as exc:
            raise CurateError(f"precomputed:{column}: no such column in {first['file']}") from exc
        return cls(spec, len(vector), column=column,
                   digest=fingerprint([column, ws.manifest_meta()["fingerprint"]]))

    def payload(self, row: dict, fetcher: PayloadFetcher) -> Any:
        if self.array is not None:
            return self.array[row["manifest_row"]]
        match = _ROW.match(row["source"]) if row["source_kind"] == "parquet" else None
        if match is None:
            raise ValueError("sample was not ingested from a Parquet row")
        return fetcher.cell(match["file"], int(match["row"]), self.column)

    def prepare(self, kind: str, payload: Any) -> torch.Tensor:
        vector = torch.from_numpy(np.array(payload, dtype=np.float32))
        if vector.shape != (self.dim,):
            raise ValueError(f"vector has shape {tuple(vector.shape)}, expected ({self.dim},)")
        if not torch.isfinite(vector).all():
            raise ValueError("vector contains NaN or Inf")
        return vector

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float()

    def identity(self) -> dict:
        return {"spec": self.spec, "dim": self.dim, "digest": self.digest}
