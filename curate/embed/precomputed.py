"""Bring-your-own embeddings: a Parquet column ingested with the samples, or an .npy file.

``precomputed:<column>``: vectors come from column ``<column>`` of the Parquet source row
each sample was read from (ingest validated them with ``--embedding-field``).
``precomputed:/path/file.npy``: an [N, d] array whose rows follow the manifest's ingest
order (N = manifest rows, quarantined ones included); another N is an error.
Vectors are L2-normalised and stored like any model's.

The local embed stage imports them with :meth:`PrecomputedEmbedder.import_rows`: one
vectorised pass per shard (read a block, check it is finite, non-zero and of the store's
dimension, normalise, cast to fp16), no loader workers and no per-row Python. A vector
that fails a check gets a reason (``invalid-embedding: ...``) and nothing else is lost.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from curate.embed.base import Embedder
from curate.embed.payloads import PayloadFetcher
from curate.errors import CurateError
from curate.index.pages import release
from curate.io.fs import check_user_file, locate
from curate.io.hashing import fingerprint
from curate.io.tables import open_parquet
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
        check_user_file(locate(path), what="precomputed embeddings file", max_bytes=None)  # mapped, not read
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
            vector = _one_cell(first["file"], int(first["row"]), column)
        except KeyError as exc:
            raise CurateError(f"precomputed:{column}: no such column in {first['file']}") from exc
        if not isinstance(vector, list) or not vector:
            raise CurateError(f"precomputed:{column}: the first ok sample has no vector in {column!r}; ingest "
                              f"with --embedding-field {column} so rows without one are quarantined")
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

    def import_rows(self, rows: pa.Table, columns: ColumnBlocks | None = None) -> tuple[np.ndarray, dict[int, str]]:
        """fp16 unit vectors for ``rows`` (manifest rows with ``manifest_row``, ``source``,
        ``source_kind``) and the reason for each row that has none, by position."""
        failures: dict[int, str] = {}
        if self.array is not None:
            at = rows.column("manifest_row").to_numpy()
            block = np.array(self.array[int(at[0]):int(at[-1]) + 1] if len(at) and at[-1] - at[0] == len(at) - 1
                             else self.array[at], dtype=np.float32)  # a writable copy
            release(self.array)  # a read pass over a memory map: its pages need not stay resident
        else:
            block, failures = (columns or ColumnBlocks(self.column, self.dim)).gather(rows)
        vectors, problems = normalise_block(block)
        failures.update({i: r for i, r in problems.items() if i not in failures})
        return vectors, failures


def normalise_block(block: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Rows of ``block`` [m, d] (float32) as fp16 unit vectors; rows that are not finite or
    have no direction come back as zeros with a reason. A finite row whose norm overflows
    (or underflows) float32 is normalised in float64, so it keeps its direction.

    One pass for the norms, one for scale and cast (torch casts to fp16 several times faster
    than numpy); only the rare rows whose norm is not a positive finite number are looked at
    one by one."""
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    odd = ~np.isfinite(norms) | (norms == 0)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=~odd)
    out = (torch.from_numpy(block) * torch.from_numpy(scale)[:, None]).to(torch.float16)
    problems: dict[int, str] = {}
    for i in np.flatnonzero(odd).tolist():
        wide = torch.from_numpy(block[i]).double()
        norm = wide.norm()
        if not torch.isfinite(wide).all():
            problems[i] = "invalid-embedding: contains NaN or Inf"
        elif norm == 0:
            problems[i] = "invalid-embedding: all zeros (a zero vector has no direction)"
        else:
            out[i] = (wide / norm).to(torch.float16)
            continue
        out[i] = 0
    return out.numpy(), problems


def _one_cell(uri: str, index: int, column: str) -> list:
    """One value of a Parquet column (reads its row group's column, converts one cell)."""
    pf = open_parquet(locate(uri))
    if column not in pf.schema_arrow.names:
        raise KeyError(column)
    start = 0
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if index < start + n:
            return pf.read_row_group(g, columns=[column]).column(0).slice(index - start, 1).to_pylist()[0]
        start += n
    raise CurateError(f"row {index} is past the end of {uri}")


class ColumnBlocks:
    """Reads one list column of Parquet sources as float32 matrices, a row group at a time,
    keeping the last group decoded so consecutive shards of one file cost one read."""

    def __init__(self, column: str, dim: int) -> None:
        self.column, self.dim = column, dim
        self._file: str | None = None
        self._starts: np.ndarray = np.zeros(1, dtype=np.int64)
        self._group: tuple[int, np.ndarray, np.ndarray] | None = None  # (index, matrix, row length ok)
        self._pf: Any = None

    def gather(self, rows: pa.Table) -> tuple[np.ndarray, dict[int, str]]:
        """A [len(rows), dim] block in row order (NaN where a row has no usable vector) and reasons."""
        out = np.empty((rows.num_rows, self.dim), dtype=np.float32)
        failures: dict[int, str] = {}
        source = rows.column("source").combine_chunks()
        parts = pc.split_pattern(source, "#row=", max_splits=1, reverse=True)  # "<file>#row=<n>"
        two = pc.equal(pc.list_value_length(parts), 2).to_numpy(zero_copy_only=False)
        parquet = two & pc.equal(rows.column("source_kind"), "parquet").to_numpy(zero_copy_only=False)
        at = np.flatnonzero(parquet)
        numbers = np.full(len(at), -1, dtype=np.int64)
        if len(at):
            tails = pc.list_element(parts.take(pa.array(at)), 1)
            digits = pc.match_substring_regex(tails, r"^\d+$").to_numpy(zero_copy_only=False)
            numbers[digits] = pc.cast(tails.filter(pa.array(digits)), pa.int64()).to_numpy()
            parquet[at[~digits]] = False
            at, numbers = at[digits], numbers[digits]
        for i in np.flatnonzero(~parquet):
            failures[int(i)] = "invalid-embedding: sample was not ingested from a Parquet row"
            out[i] = np.nan
        if not len(at):
            return out, failures
        files = pc.list_element(parts.take(pa.array(at)), 0).to_numpy(zero_copy_only=False)
        cuts = np.flatnonzero(files[1:] != files[:-1]) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(at)]):
            self._fill(files[lo], numbers[lo:hi], at[lo:hi], out, failures)
        return out, failures

    def _fill(self, uri: str, numbers: np.ndarray, positions: np.ndarray, out: np.ndarray,
              failures: dict[int, str]) -> None:
        if uri != self._file:
            pf = open_parquet(locate(uri))
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
            self._file, self._group, self._pf = uri, None, pf
            self._starts = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        groups = np.searchsorted(self._starts, numbers, side="right") - 1
        for g in np.unique(groups):
            mask = groups == g
            if g < 0 or g >= len(self._starts) - 1:
                for i in positions[mask]:
                    failures[int(i)] = f"invalid-embedding: row past the end of {uri}"
                    out[i] = np.nan
                continue
            matrix, ok = self._decode(int(g))
            local = numbers[mask] - self._starts[g]
            out[positions[mask]] = matrix[local]
            for i in positions[mask][~ok[local]]:
                failures[int(i)] = f"invalid-embedding: missing, or not of dimension {self.dim}"

    def _decode(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        if self._group is None or self._group[0] != g:
            column = self._pf.read_row_group(g, columns=[self.column]).column(0).combine_chunks()
            self._group = (g, *list_matrix(column, self.dim))
        return self._group[1], self._group[2]


def list_matrix(column: pa.Array, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A list column as a float32 [n, dim] matrix (NaN rows where a list is null or of another
    length, or holds nulls) and the mask of rows whose list has ``dim`` values."""
    from curate.readers.parquet import list_layout

    n = len(column)
    lengths, numbers = list_layout(column)
    ok = lengths == dim
    if ok.all():
        return numbers.reshape(n, dim).astype(np.float32, copy=False), ok
    matrix = np.full((n, dim), np.nan, dtype=np.float32)
    matrix[ok] = numbers[np.repeat(ok, lengths)].reshape(-1, dim)
    return matrix, ok
