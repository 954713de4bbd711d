"""The embedding store: L2-normalised fp16 vectors for one model, one row per embedded sample.

``embeddings/<slug>/`` holds

- ``vectors.npy``   [count, dim] float16, a standard .npy: ``np.load(mmap_mode="r")`` maps it
                    without reading it into RAM;
- ``ids.parquet``   ``id``, ``manifest_row``, ``content_hash`` of every store row, in manifest order;
- ``status.parquet`` one row per manifest id: ``id``, ``embedded`` (bool), ``row`` (store row or
                    null), ``reason`` (null | "quarantined" | "unsupported-kind: ..." |
                    "embed-failed: ...") - nothing is lost;
- ``meta.json``     model, dim, count, valid count, precision, normalised, fingerprint, and the
                    fingerprint of the manifest it covers; written last: a store with meta.json
                    is complete.

A store is bound to the manifest it was made for: :func:`open_store` refuses a store whose
manifest fingerprint is not the workspace's current one (after a re-ingest), naming the
``curate embed`` command that brings it up to date (which embeds only new or changed rows).

The vector file is preallocated and filled shard by shard (row ranges); a shard is done
when its marker under ``state/embed/<slug>/`` holds the run fingerprint, so a killed run
resumes at the first unfinished shard and produces the same bytes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location
from curate.io.tables import read_table
from curate.workspace import Workspace

if TYPE_CHECKING:
    import torch


class IdColumn(Sequence):
    """Store-row ids as a read-only sequence of ``str`` backed by one Arrow array (a Python list
    of ten million ids would hold about 1.7 GB); ``arrow`` is the array itself."""

    def __init__(self, arrow: pa.Array | pa.ChunkedArray) -> None:
        self.arrow = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow

    def __len__(self) -> int:
        return len(self.arrow)

    def __getitem__(self, i):  # an int gives a str, a slice a list
        if isinstance(i, slice):
            return self.arrow[i].to_pylist()
        return self.arrow[int(i)].as_py()

    def __iter__(self):
        for lo in range(0, len(self.arrow), 65536):
            yield from self.arrow.slice(lo, 65536).to_pylist()

    def take(self, rows: np.ndarray) -> list[str]:
        return self.arrow.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdColumn):
            return self.arrow.equals(other.arrow)
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # mutable-looking sequence semantics: not hashable


@dataclass(frozen=True)
class StoredEmbeddings:
    """A complete store, opened read-only; ``vectors`` is memory-mapped.

    The one place that maps manifest rows to store rows and gathers vectors from the map."""

    vectors: np.ndarray
    ids: IdColumn
    manifest_rows: np.ndarray  # manifest row of each store row
    valid: np.ndarray  # store row embedded (not failed)
    meta: dict
    slug: str = ""

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def store_rows(self, manifest_count: int) -> np.ndarray:
        """Store row of every manifest row with a valid embedding, -1 elsewhere."""
        out = np.full(manifest_count, -1, dtype=np.int64)
        out[self.manifest_rows[self.valid]] = np.flatnonzero(self.valid)
        return out

    def blocks(self, rows: np.ndarray | range, device: torch.device | None = None, *, block: int = 65536,
               unit: bool = False) -> Iterator[tuple[int, np.ndarray | torch.Tensor]]:
        """``(start, block)`` over the store ``rows`` (any order, repeats allowed, or a range), read from
        the memory map ``block`` rows at a time: fp32 numpy (``device=None``) or an fp32 tensor on
        ``device``; ``unit``: L2-normalised in fp32 (see :func:`curate.vectors.blocks`)."""
        from curate.vectors import blocks

        return blocks(self.vectors, rows, device, block=block, unit=unit)

    def gather(self, rows: np.ndarray, device: torch.device | None = None) -> np.ndarray | torch.Tensor:
        """Store rows as fp32 unit vectors (numpy, or a tensor on ``device``), read through :meth:`blocks`."""
        from curate.vectors import gather

        return gather(self.vectors, rows, device, unit=True)

    def saved_index(self, ws: Workspace, device: str | torch.device = "auto"):
        """The FAISS index saved under ``index/<slug>/`` when it was built from this very store, else None."""
        from curate.index.ann import index_dir, load_index, read_meta

        folder = index_dir(ws, self.slug)
        if not folder.join("index.json").exists():
            return None
        if read_meta(folder).get("store_fingerprint") != self.meta["fingerprint"]:
            return None  # built from an earlier store: stale
        return load_index(folder, device=device)


def store_dir(ws: Workspace, slug: str) -> Location:
    return ws.loc("embeddings", slug)


def local_path(loc: Location) -> Path:
    if not loc.is_local:
        raise CurateError(f"embedding stores need a local workspace for memory mapping, not {loc.uri}")
    return Path(loc.path)


def create_or_resume(path: Path, count: int, dim: int, resume: bool) -> np.memmap:
    """Open the vector file for writing: reuse it when resuming, else allocate a fresh one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume and path.exists():
        arr = np.load(path, mmap_mode="r+")
        if arr.shape == (count, dim) and arr.dtype == np.float16:
            return arr
    tmp = path.with_name(atomic.TMP_MARK + path.name)
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(count, dim))
    arr.flush()
    del arr
    _reserve(tmp)
    tmp.replace(path)
    return np.load(path, mmap_mode="r+")


def _reserve(path: Path) -> None:
    """Allocate the whole (sparse) vector file now: a full disk is a clear error here, not a SIGBUS
    when a later shard writes into the memory map."""
    if not hasattr(os, "posix_fallocate"):
        return
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return  # the filesystem cannot preallocate: writes go through the map as before
        path.unlink(missing_ok=True)
        raise atomic.WriteError(exc.errno, f"cannot reserve {size:,} bytes for {path.name}: {exc.strerror}; "
                                "free some space and rerun") from exc
    finally:
        os.close(fd)


def write_tables(folder: Location, ids: pa.Table, status: pa.Table, meta: dict) -> None:
    atomic.write_parquet(folder.join("ids.parquet"), ids)
    atomic.write_parquet(folder.join("status.parquet"), status)
    atomic.write_json(folder.join("meta.json"), meta)


def open_store(ws: Workspace, slug: str, current: bool = True) -> StoredEmbeddings:
    """Open a complete store (clear error when it is missing or unfinished); with ``current``
    (the default) also refuse a store made for another manifest than the workspace's."""
    folder = store_dir(ws, slug)
    if not folder.join("meta.json").exists():
        raise CurateError(f"no finished embeddings for {slug!r} in {ws.root.uri} (run `curate embed`)")
    meta = atomic.read_json(folder.join("meta.json"))
    if current and meta.get("manifest_fingerprint") != ws.manifest_fingerprint():
        raise CurateError(f"the embeddings {slug!r} in {ws.root.uri} were made for an earlier manifest (the "
                          f"workspace was ingested again since): run `curate embed -w {ws.root.uri} --model "
                          f"{meta.get('model', slug)}` first; it embeds only the new or changed samples")
    ids = read_table(folder.join("ids.parquet"))
    status = read_table(folder.join("status.parquet"), columns=["row", "embedded"])
    valid = np.zeros(meta["count"], dtype=bool)
    rows = status.column("row").to_numpy(zero_copy_only=False)
    embedded = status.column("embedded").to_numpy(zero_copy_only=False)
    valid[rows[embedded].astype(np.int64)] = True
    vectors = np.load(local_path(folder.join("vectors.npy")), mmap_mode="r")
    return StoredEmbeddings(vectors, IdColumn(ids.column("id")),
                            ids.column("manifest_row").to_numpy(), valid, meta, slug)


def list_stores(ws: Workspace) -> list[str]:
    root = ws.loc("embeddings")
    if not root.exists():
        return []
    return sorted(p.rsplit("/", 1)[-1] for p in root.fs.ls(root.path, detail=False)
                  if root.fs.exists(f"{p}/meta.json"))


def choose_store(ws: Workspace, model: str | None, prefer: str | None = None) -> str:
    """The store slug to read: ``model`` (a slug, or a model spec such as ``precomputed:/x.npy``)
    when given; else the only store; else ``prefer`` (e.g. the store the latest dedup used)."""
    stores = list_stores(ws)
    if model is not None:
        if model in stores:
            return model
        by_spec = [s for s in stores if atomic.read_json(store_dir(ws, s).join("meta.json")).get("model") == model]
        if by_spec:
            return by_spec[0]
        raise CurateError(f"{ws.root.uri} has no embeddings {model!r} (have: {', '.join(stores) or 'none'}; "
                          "run `curate embed` first)")
    if len(stores) == 1:
        return stores[0]
    if prefer is not None and prefer in stores:
        return prefer
    raise CurateError(f"{ws.root.uri} has {len(stores)} embedding stores ({', '.join(stores) or 'none'}): "
                      + ("run `curate embed` first" if not stores else "pick one with --model"))
