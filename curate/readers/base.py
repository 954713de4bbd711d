"""The reader contract: plan a source into resumable units, read a unit into manifest rows.

A reader never raises on bad data: every input it sees becomes exactly one row, with
``status="quarantined"`` and a reason when something is wrong. It raises
:class:`~curate.errors.CurateError` only for misuse found while planning (a Parquet file
without the named column, say), before any work is done.
"""

from __future__ import annotations

import io
import math
import numbers
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from curate.io.fs import Location, locate, skipped_paths, under, walk_local
from curate.io.hashing import content_hash
from curate.manifest import OK, QUARANTINED
from curate.probe import Rejected
from curate.probe.image import ImageCheck, probe_image
from curate.probe.text import TextCheck, check_text, is_blank

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
    goes into the unit's fingerprint, so an unchanged unit is skipped on rerun. ``name``
    is the root of the ids an image folder derives (its folder name unless ingest gave a
    longer one to tell two same-named sources apart).
    """

    reader: str
    key: str
    uri: str
    stamp: tuple = ()
    items: tuple = ()
    name: str = ""


class Reader(Protocol):
    name: str
    version: int

    def plan(self, loc: Location, opts: ReadOptions, name: str | None = None,
             skip: Sequence[Location] = ()) -> list[Unit]:
        """Units of ``loc``. ``name`` replaces the folder name / file stem in derived ids
        (ingest passes a longer one when two sources share a name); folders in ``skip``
        (the workspace) are not listed."""
        ...

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]: ...


def normalise_split(value: Any) -> str | None:
    """A split name (aliases folded: ``validation`` -> ``val``), or None for no value."""
    text = as_label(value)
    return None if text is None else SPLIT_ALIASES.get(text.lower(), text)


def as_label(value: Any) -> str | None:
    """A label as a string; None for no value: null, NaN or infinity (a missing number in a float
    column is not the class ``"nan"``), or text that shows nothing (blank, zero-width only)."""
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
                         and not math.isfinite(value)):
        return None
    text = str(value).strip()
    return None if is_blank(text) else text


def not_scalar(value: Any) -> str | None:
    """The type name of an id/label/split value that must not be turned into a string
    (a list, an object, raw bytes), or None for strings, numbers and null."""
    if value is None or isinstance(value, (str, int, float)):
        return None
    return {list: "list", tuple: "list", dict: "object", bytes: "bytes"}.get(type(value), type(value).__name__)


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


NOT_A_FILE = "unsafe-path: not a regular file (device, socket, fifo or folder); not read"


def shard_units(reader: str, loc: Location, suffixes: tuple[str, ...], name: str | None = None,
                skip: Sequence[Location] = ()) -> list[Unit]:
    """One unit per shard file: ``loc`` itself, or every matching file under a folder.

    ``items`` holds the shard's id prefix for samples without their own id: the file
    stem (or ``name``) for a file source, ``<folder name>/<relative path without extension>``
    for files found under a folder (so ``a/data.jsonl`` and ``b/data.jsonl`` do not collide).
    A matching entry that is not a regular file (a FIFO named ``x.jsonl``) is never opened:
    its unit carries a second item, the reason its one quarantined row gets.
    """
    if loc.isdir():
        root = name or loc.name
        infos = [(p, info, f"{root}/{_strip_ext(rel)}") for rel, p, info in _shard_files(loc, suffixes, skip)]
    else:
        infos = [(loc.path, loc.fs.info(loc.path), name or stem(loc.path))]
    return [
        Unit(reader=reader, key=Location(loc.fs, p).uri, uri=Location(loc.fs, p).uri,
             stamp=file_stamp(info),
             items=(prefix,) if info.get("type", "file") == "file" else (prefix, NOT_A_FILE))
        for p, info, prefix in infos
    ]


def _shard_files(loc: Location, suffixes: tuple[str, ...], skip: Sequence[Location]
                 ) -> list[tuple[str, str, dict]]:
    """Sorted (relative path, path, info) of the non-hidden files under ``loc`` ending in ``suffixes``."""
    base = loc.path.rstrip("/") + "/"
    if loc.is_local:  # iterative walk: no recursion limit on deep trees
        rels = [rel for rel, _ in walk_local(loc.path, skip)]
        picked = sorted(rel for rel in rels if rel.lower().endswith(suffixes) and not _hidden(rel))
        return [(rel, base + rel, loc.fs.info(base + rel)) for rel in picked]
    found = loc.fs.find(loc.path, detail=True)
    skipped = skipped_paths(loc, skip)
    files = sorted(p for p in found if p.startswith(base) and p.lower().endswith(suffixes)
                   and not _hidden(p[len(base):]) and not (skipped and under(p, skipped)))
    return [(p[len(base):], p, found[p]) for p in files]


def id_prefix(unit: Unit) -> str:
    """Prefix of position-derived ids for samples of a shard unit."""
    return unit.items[0] if unit.items else stem(unit.uri)


class ShardReader:
    """Readers of one file per unit (JSONL, CSV, Parquet, WebDataset tar): ``read`` yields the one
    quarantined row of a unit that must not be opened, and hands every other unit's file to the
    subclass's ``read_shard`` (datatrove's ``BaseReader.__call__`` / ``read_file`` shape)."""

    name: str
    version: int
    payload_kind: str = "text"  # the kind of a quarantined unit's row

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        special = unit_problem(unit, self.name, self.payload_kind)
        if special is not None:
            yield special
            return
        yield from self.read_shard(locate(unit.uri), unit, opts)

    def read_shard(self, shard: Location, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        raise NotImplementedError


def unit_problem(unit: Unit, reader: str, kind: str) -> Row | None:
    """The one quarantined row of a shard unit that must not be opened (see :func:`shard_units`)."""
    if len(unit.items) < 2 or not isinstance(unit.items[1], str):
        return None
    return rejected_row(unit.items[1], id=id_prefix(unit), source=unit.uri, source_kind=reader, kind=kind)


@dataclass(frozen=True)
class LineTooLong:
    """Stands for a line longer than the cap, skipped without being held in memory."""

    size: int


def bounded_lines(fh: io.BufferedIOBase | io.TextIOBase, cap: int, chunk: int = 1 << 16
                  ) -> Iterator[bytes | str | LineTooLong]:
    """The lines of ``fh`` (binary or text, line ends kept), none held longer than ``cap``
    (plus its line end): a longer line is read through in ``chunk`` pieces and given as
    one :class:`LineTooLong`, so a huge or endless line never fills memory."""
    ends = ("\n", "\r") if isinstance(fh, io.TextIOBase) else (b"\n",)
    while True:
        line = fh.readline(cap + 1)
        if not line:
            return
        if len(line) <= cap or line.endswith(ends):
            yield line
            continue
        size = len(line)
        while True:
            piece = fh.readline(chunk)
            size += len(piece)
            if not piece or piece.endswith(ends):
                break
        yield LineTooLong(size)


class _RawReader(io.RawIOBase):
    """Any file object with ``read(n)`` as a raw stream, so ``io.BufferedReader`` can give it
    a bounded ``readline(size)`` (fsspec's remote files have no size argument)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.fh.close()
        super().close()


def buffered(fh: Any, size: int = 1 << 16) -> io.BufferedReader:
    """``fh`` behind a buffered reader whose ``readline(size)`` is bounded."""
    return io.BufferedReader(_RawReader(fh), size)


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
