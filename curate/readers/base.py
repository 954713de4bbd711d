"""The reader contract: plan a source into resumable units, read a unit into manifest rows.

A reader never raises on bad data: every input it sees becomes exactly one row, with
``status="quarantined"`` and a reason when something is wrong. It raises
:class:`~curate.errors.CurateError` only for misuse found while planning (a Parquet file
without the named column, say), before any work is done.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from curate.io.fs import Location
from curate.io.hashing import content_hash
from curate.manifest import OK, QUARANTINED
from curate.probe import Rejected
from curate.probe.image import ImageCheck, probe_image
from curate.probe.text import TextCheck, check_text

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}

Row = dict[str, Any]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Fields:
    """Names of the fields/columns that carry each role in record-like sources."""

    id: str = "id"
    text: str = "text"
    image: str = "image"
    label: str = "label"
    split: str = "split"
    embedding: str | None = None


@dataclass(frozen=True)
class ReadOptions:
    """What readers need to know; part of every unit's fingerprint."""

    fields: Fields = field(default_factory=Fields)
    image: ImageCheck = field(default_factory=ImageCheck)
    text: TextCheck = field(default_factory=TextCheck)
    files_per_unit: int = 2048
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass(frozen=True)
class Unit:
    """A resumable piece of a source: a shard file, or a chunk of a folder listing.

    ``stamp`` holds what changes when the inputs change (sizes, mtimes, etags); it
    goes into the unit's fingerprint, so an unchanged unit is skipped on rerun.
    """

    reader: str
    key: str
    uri: str
    stamp: tuple = ()
    items: tuple = ()


class Reader(Protocol):
    name: str
    version: int

    def plan(self, loc: Location, opts: ReadOptions) -> list[Unit]: ...

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]: ...


def normalise_split(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return SPLIT_ALIASES.get(text.lower(), text) or None


def as_label(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def image_row(data: bytes, check: ImageCheck, **row: Any) -> Row:
    """A manifest row for an image payload: probed, hashed, ok or quarantined."""
    row.update(kind="image", bytes=len(data), content_hash=content_hash(data))
    try:
        info = probe_image(data, check)
    except Rejected as rej:
        return {**row, "status": QUARANTINED, "reason": rej.reason}
    return {**row, "format": info.format, "mode": info.mode, "width": info.width,
            "height": info.height, "status": OK}


def text_row(text: str, check: TextCheck, **row: Any) -> Row:
    """A manifest row for a text payload that was decoded by the reader."""
    row["kind"] = "text"
    try:
        raw = check_text(text, check)
    except Rejected as rej:
        return {**row, "status": QUARANTINED, "reason": rej.reason}
    return {**row, "text": text, "bytes": len(raw), "content_hash": content_hash(raw), "status": OK}


def rejected_row(reason: str, **row: Any) -> Row:
    """A quarantined row for an input that could not even be read as a payload."""
    return {**row, "status": QUARANTINED, "reason": reason}


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int = 0) -> Iterator[R]:
    """Ordered parallel map keeping up to ``window`` tasks in flight (bounded memory).

    Pillow decodes and file reads release the GIL; with one worker this is plain ``map``.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    window = window or 4 * workers
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def file_stamp(info: dict) -> tuple:
    """The change-detecting facts fsspec gives for a file (size plus mtime or etag)."""
    marks = [info.get(k) for k in ("size", "mtime", "LastModified", "ETag", "etag", "created")]
    return tuple(str(m) for m in marks if m is not None)


def shard_units(reader: str, loc: Location, suffixes: tuple[str, ...]) -> list[Unit]:
    """One unit per shard file: ``loc`` itself, or every matching file under a folder.

    ``items`` holds the shard's id prefix for samples without their own id: the file
    stem for a file source, ``<folder name>/<relative path without extension>`` for files
    found under a folder (so ``a/data.jsonl`` and ``b/data.jsonl`` do not collide).
    """
    if loc.isdir():
        found = loc.fs.find(loc.path, detail=True)
        base = loc.path.rstrip("/") + "/"
        files = sorted(p for p in found if p.lower().endswith(suffixes) and not _hidden(p[len(base):]))
        infos = [(p, found[p], f"{loc.name}/{_strip_ext(p[len(base):])}") for p in files]
    else:
        infos = [(loc.path, loc.fs.info(loc.path), stem(loc.path))]
    return [
        Unit(reader=reader, key=Location(loc.fs, p).uri, uri=Location(loc.fs, p).uri,
             stamp=file_stamp(info), items=(prefix,))
        for p, info, prefix in infos
    ]


def id_prefix(unit: Unit) -> str:
    """Prefix of position-derived ids for samples of a shard unit."""
    return unit.items[0] if unit.items else stem(unit.uri)


def _strip_ext(rel: str) -> str:
    folder, _, name = rel.rpartition("/")
    return f"{folder}/{stem(name)}" if folder else stem(name)


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/") if part)


COMPRESSION_EXTS = ("gz", "bz2", "xz", "zst", "zstd", "lz4")


def stem(uri: str) -> str:
    """File name without folders, format and compression extension (``a/b/data.jsonl.gz``
    -> ``data``). Other dots stay, so ``part.0.jsonl`` and ``part.1.jsonl`` differ."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    base, dot, ext = name.rpartition(".")
    if dot and base and ext.lower() in COMPRESSION_EXTS:
        name = base
    base, dot, _ = name.rpartition(".")
    return base if dot and base else name
