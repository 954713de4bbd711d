"""Shard writers: WebDataset tar and Parquet, each written under a temporary name, then renamed.

Both are byte-deterministic (fixed tar headers, fixed Parquet settings), so a resumed or
repeated export produces identical files. Every payload is checked against the content
hash recorded at ingest: a source that changed since then is an error, never a silent mix.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.embed.payloads import PayloadFetcher, changed_since_ingest
from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location
from curate.io.hashing import content_hash

IMAGE_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff",
             "MPO": "jpg", "PPM": "ppm", "ICO": "ico"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]")


@dataclass(frozen=True)
class ShardInfo:
    name: str
    split: str
    samples: int
    bytes: int
    sha256: str


def sample_key(ident: str, used: set[str]) -> str:
    """A WebDataset key for ``ident``: no dots (they separate the extension), no ``..`` or leading /."""
    key = _UNSAFE.sub("_", ident).strip("/") or "sample"
    key = "/".join(part or "_" for part in key.split("/"))
    base, n = key, 1
    while key in used:
        key, n = f"{base}_{n}", n + 1
    used.add(key)
    return key


def fetch_checked(fetcher: PayloadFetcher, row: dict) -> bytes | str:
    """The payload of ``row``, verified against the manifest's content hash."""
    try:
        payload = fetcher.fetch(row)
    except (OSError, ValueError) as exc:
        raise CurateError(f"cannot read {row['id']} from {row['source']} ({exc}); was the source moved?") from exc
    data = payload.encode() if isinstance(payload, str) else payload
    expected = row.get("content_hash")
    if row["kind"] != "text" and expected and content_hash(data) != expected:
        raise CurateError(changed_since_ingest(row["source"]))
    return payload


def sidecar(row: dict, label_index: dict[str, int]) -> dict[str, Any]:
    """The ``.json`` member: where the sample came from and what it is."""
    meta = {k: row.get(k) for k in ("id", "source", "label", "split", "content_hash", "format", "width", "height")}
    meta["label_index"] = label_index.get(row.get("label")) if row.get("label") is not None else None
    return {k: v for k, v in meta.items() if v is not None}


class _HashingWriter:
    """A write-only file that hashes and counts what passes through to ``inner``."""

    def __init__(self, inner) -> None:
        self.inner, self.digest, self.size = inner, hashlib.sha256(), 0

    def tell(self) -> int:
        return self.size

    def write(self, data) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.inner.write(data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def write_tar(loc: Location, split: str, rows: Iterable[dict], fetcher: PayloadFetcher,
              label_index: dict[str, int]) -> ShardInfo:
    """One WebDataset shard: ``<key>.<ext>`` (original bytes or ``.txt``), ``<key>.json``, ``<key>.cls``."""
    used: set[str] = set()
    count = 0
    with atomic.atomic_open(loc) as fh:
        out = _HashingWriter(fh)
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for row in rows:
                payload = fetch_checked(fetcher, row)
                key = sample_key(row["id"], used)
                if row["kind"] == "text":
                    _add(tar, f"{key}.txt", payload.encode())
                else:
                    _add(tar, f"{key}.{IMAGE_EXT.get(row.get('format') or '', 'bin')}", payload)
                _add(tar, f"{key}.json", json.dumps(sidecar(row, label_index), sort_keys=True).encode())
                if row.get("label") is not None:
                    _add(tar, f"{key}.cls", str(label_index[row["label"]]).encode())
                count += 1
    return ShardInfo(loc.name, split, count, out.size, out.digest.hexdigest())


def parquet_schema(kind: str, labels: list[str]) -> pa.Schema:
    """Columns of a Parquet shard, with Hugging Face ``datasets`` feature metadata (Image, ClassLabel)."""
    payload = (pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])) if kind == "image"
               else pa.field("text", pa.string()))
    fields = [pa.field("id", pa.string()), payload, pa.field("label", pa.int64()), pa.field("label_name", pa.string()),
              pa.field("split", pa.string()), pa.field("source", pa.string()), pa.field("content_hash", pa.string()),
              pa.field("width", pa.int32()), pa.field("height", pa.int32())]
    features = {f.name: {"dtype": str(f.type) if f.type != pa.int32() else "int32", "_type": "Value"}
                for f in fields}
    features["id"]["dtype"] = features["label_name"]["dtype"] = features["split"]["dtype"] = "string"
    features["source"]["dtype"] = features["content_hash"]["dtype"] = "string"
    features[payload.name] = {"_type": "Image"} if kind == "image" else {"dtype": "string", "_type": "Value"}
    features["label"] = {"names": labels, "_type": "ClassLabel"}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return pa.schema(fields, metadata=meta)


def write_parquet(loc: Location, split: str, rows: Iterable[dict], fetcher: PayloadFetcher,
                  label_index: dict[str, int], kind: str, labels: list[str], group_rows: int = 256) -> ShardInfo:
    """One Parquet shard (row groups of ``group_rows`` samples, zstd), written natively to a temp file."""
    schema = parquet_schema(kind, labels)
    columns: dict[str, list] = {f.name: [] for f in schema}
    count = 0
    with _parquet_writer(loc, schema) as writer:
        for row in rows:
            payload = fetch_checked(fetcher, row)
            if kind == "image":
                columns["image"].append({"bytes": payload, "path": row["id"].rsplit("/", 1)[-1]})
            else:
                columns["text"].append(payload)
            columns["id"].append(row["id"])
            columns["label"].append(label_index.get(row["label"]) if row.get("label") is not None else None)
            columns["label_name"].append(row.get("label"))
            for c in ("split", "source", "content_hash", "width", "height"):
                columns[c].append(row.get(c))
            count += 1
            if len(columns["id"]) >= group_rows:
                writer.write_table(pa.table(columns, schema=schema))
                columns = {f.name: [] for f in schema}
        if columns["id"] or count == 0:
            writer.write_table(pa.table(columns, schema=schema))
    size, digest = file_digest(loc)
    return ShardInfo(loc.name, split, count, size, digest)


@contextmanager
def _parquet_writer(loc: Location, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A zstd Parquet writer into ``loc``'s temporary file (natively when local, through a buffer
    otherwise), synced and renamed into place when the block ends without error."""
    with atomic.atomic_open(loc) as fh:
        sink = fh.name if loc.is_local else pa.BufferOutputStream()
        with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
            yield writer
        if not loc.is_local:
            fh.write(sink.getvalue().to_pybytes())
        else:
            fh.flush()
            os.fsync(fh.fileno())


def write_text_parquet(loc: Location, split: str, rows: pa.Table, labels: list[str],
                       group_rows: int = 256) -> ShardInfo:
    """A Parquet shard of text samples built column-wise from manifest ``rows`` (the text is in the
    manifest: nothing to fetch or check); the same file :func:`write_parquet` writes for them."""
    schema = parquet_schema("text", labels)
    label = rows.column("label")
    table = pa.table({
        "id": rows.column("id"), "text": rows.column("text"),
        "label": pc.index_in(label, value_set=pa.array(labels, pa.string())).cast(pa.int64()),
        "label_name": label, "split": rows.column("split"), "source": rows.column("source"),
        "content_hash": rows.column("content_hash"), "width": rows.column("width"), "height": rows.column("height"),
    }, schema=schema)
    with _parquet_writer(loc, schema) as writer:
        for lo in range(0, max(table.num_rows, 1), group_rows):
            writer.write_table(table.slice(lo, group_rows))
    size, digest = file_digest(loc)
    return ShardInfo(loc.name, split, table.num_rows, size, digest)


def file_digest(loc: Location, chunk: int = 1 << 22) -> tuple[int, str]:
    """Size and sha256 of a finished file, streamed."""
    digest, size = hashlib.sha256(), 0
    with loc.fs.open(loc.path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
