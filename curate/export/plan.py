"""What an export writes: the surviving rows, cut into named shards, and the version id.

The plan is computed from the manifest and the decision runs alone, before any byte is
written, so the version id (a content hash of the export) names the output folder and a
killed export resumes into the same folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

TAR_OVERHEAD = 3 * 1024  # per sample: three 512-byte headers, padding and the .json/.cls members


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    name: str  # file name, e.g. digits-train-00000.tar
    rows: np.ndarray  # manifest row numbers, in manifest order


def label_names(manifest: pa.Table) -> list[str]:
    """Sorted distinct labels of ok rows: ``.cls`` / ``label`` hold the position in this list."""
    labels = manifest.column("label").to_pylist()
    status = manifest.column("status").to_pylist()
    return sorted({lab for lab, s in zip(labels, status) if lab is not None and s == "ok"})


def row_bytes(manifest: pa.Table, fmt: str) -> np.ndarray:
    """Estimated bytes each row adds to a shard (payload plus container overhead)."""
    size = manifest.column("bytes").to_numpy(zero_copy_only=False)
    size = np.nan_to_num(size.astype(np.float64), nan=0.0).astype(np.int64)
    return size + (TAR_OVERHEAD if fmt == "webdataset" else 64)


def plan_shards(manifest: pa.Table, rows: np.ndarray, name: str, fmt: str, by_split: bool,
                shard_size: int, shard_bytes: int | None) -> list[Shard]:
    """Cut ``rows`` into shards of at most ``shard_size`` samples and about ``shard_bytes`` bytes.

    With ``by_split`` each manifest split (null: ``unsplit``) gets its own shard series;
    otherwise all rows go to the series ``all``. A single sample larger than ``shard_bytes``
    gets a shard of its own.
    """
    ext = "tar" if fmt == "webdataset" else "parquet"
    sizes = row_bytes(manifest, fmt)
    splits = manifest.column("split").to_pylist() if by_split else None
    series: dict[str, list[int]] = {}
    for r in rows.tolist():
        key = (splits[r] or "unsplit") if splits is not None else "all"
        series.setdefault(key, []).append(r)
    shards = []
    for split in sorted(series):
        members: list[int] = []
        used = 0
        index = 0
        for r in series[split]:
            full = len(members) >= shard_size or (shard_bytes and members and used + sizes[r] > shard_bytes)
            if full:
                shards.append(Shard(split, index, f"{name}-{split}-{index:05d}.{ext}", np.array(members)))
                members, used, index = [], 0, index + 1
            members.append(r)
            used += int(sizes[r])
        if members:
            shards.append(Shard(split, index, f"{name}-{split}-{index:05d}.{ext}", np.array(members)))
    return shards


def version_id(header: dict, manifest: pa.Table, shards: list[Shard]) -> str:
    """Content hash of the export: settings, decision runs, and every sample's identity per shard.

    A sample's identity is its id, content hash, label and split, so the same inputs and
    decisions give the same id whatever the machine or the time, and any change gives a new one.
    """
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    columns = [manifest.column(c).to_pylist() for c in ("id", "content_hash", "label", "split", "text")]
    for shard in shards:
        digest.update(f"\n#{shard.name}\n".encode())
        for r in shard.rows.tolist():
            ident, chash, label, split, text = (col[r] for col in columns)
            if chash is None and text is not None:
                chash = hashlib.sha256(text.encode()).hexdigest()
            digest.update(f"{ident}\t{chash}\t{label}\t{split}\n".encode())
    return digest.hexdigest()[:16]
