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
import pyarrow.compute as pc

TAR_OVERHEAD = 3 * 1024  # per sample: three 512-byte headers, padding and the .json/.cls members


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    name: str  # file name, e.g. digits-train-00000.tar
    rows: np.ndarray  # manifest row numbers, in manifest order


def label_names(manifest: pa.Table) -> list[str]:
    """Sorted distinct labels of ok rows: ``.cls`` / ``label`` hold the position in this list."""
    ok = manifest.filter(pc.equal(manifest.column("status"), "ok"))
    return sorted(v for v in pc.unique(ok.column("label")).to_pylist() if v is not None)


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
    rows = np.asarray(rows, dtype=np.int64)
    if by_split:
        splits = pc.fill_null(manifest.column("split"), "unsplit").take(pa.array(rows)).to_numpy(zero_copy_only=False)
        series = {name: rows[splits == name] for name in sorted(set(splits.tolist()))}
    else:
        series = {"all": rows}
    shards = []
    for split, members in series.items():
        for index, part in enumerate(_cut(members, sizes, shard_size, shard_bytes)):
            shards.append(Shard(split, index, f"{name}-{split}-{index:05d}.{ext}", part))
    return shards


def _cut(rows: np.ndarray, sizes: np.ndarray, shard_size: int, shard_bytes: int | None) -> list[np.ndarray]:
    """Consecutive pieces of ``rows``: each as long as it stays within ``shard_size`` rows and
    ``shard_bytes`` bytes, and at least one row (a sample larger than ``shard_bytes`` alone)."""
    pieces, start = [], 0
    ends = np.cumsum(sizes[rows]) if shard_bytes else None
    while start < len(rows):
        stop = min(len(rows), start + shard_size)
        if shard_bytes:
            before = ends[start - 1] if start else 0
            fits = int(np.searchsorted(ends[start:stop], before + shard_bytes, side="right"))
            stop = start + max(1, fits)
        pieces.append(rows[start:stop])
        start = stop
    return pieces


def version_id(header: dict, manifest: pa.Table, shards: list[Shard]) -> str:
    """Content hash of the export: settings, decision runs, and every sample's identity per shard.

    A sample's identity is its id, content hash, label and split, so the same inputs and
    decisions give the same id whatever the machine or the time, and any change gives a new one.
    """
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, default=str).encode())
    columns = manifest.select(["id", "content_hash", "label", "split", "text"])
    for shard in shards:
        digest.update(f"\n#{shard.name}\n".encode())
        if len(shard.rows):
            digest.update(_identity_lines(columns.take(pa.array(shard.rows))))
    return digest.hexdigest()[:16]


def _identity_lines(rows: pa.Table) -> bytes:
    """``"{id}\t{content hash}\t{label}\t{split}\n"`` for each row (None printed as ``None``; a text
    without a content hash is named by the sha256 of its text), built column-wise by Arrow."""
    chash = rows.column("content_hash")
    if chash.null_count:
        hashes = chash.to_pylist()
        for i, text in enumerate(rows.column("text").to_pylist()):
            if hashes[i] is None and text is not None:
                hashes[i] = hashlib.sha256(text.encode()).hexdigest()
        chash = pa.array(hashes, pa.string())
    fields = [pc.fill_null(c, "None") for c in (rows.column("id"), chash, rows.column("label"), rows.column("split"))]
    lines = pc.binary_join_element_wise(*fields, "\t").combine_chunks() if isinstance(
        fields[0], pa.ChunkedArray) else pc.binary_join_element_wise(*fields, "\t")
    joined = pc.binary_join(pa.LargeListArray.from_arrays(pa.array([0, len(lines)], pa.int64()),
                                                          lines.cast(pa.large_string())),
                            pa.scalar("\n", pa.large_string()))
    return joined[0].as_py().encode() + b"\n"
