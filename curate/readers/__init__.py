"""Source readers and the rules that pick one for a source path or URI."""

from __future__ import annotations

import os
from collections.abc import Sequence

from curate.errors import CurateError
from curate.io.fs import Location, check_user_file, locate, skipped_paths, under, walk_local
from curate.probe.image import IMAGE_EXTENSIONS
from curate.readers.base import Reader
from curate.readers.csv import CsvReader
from curate.readers.imagefolder import ImageFolderReader
from curate.readers.jsonl import SUFFIXES as JSONL_SUFFIXES
from curate.readers.jsonl import JsonlReader
from curate.readers.parquet import ParquetReader
from curate.readers.webdataset import WebDatasetReader

READERS: dict[str, Reader] = {
    r.name: r
    for r in (ImageFolderReader(), WebDatasetReader(), ParquetReader(), JsonlReader(), CsvReader())
}
_BY_SUFFIX = [
    ((".tar",), "webdataset"),
    ((".parquet", ".pq"), "parquet"),
    (JSONL_SUFFIXES, "jsonl"),
    ((".csv", ".tsv", ".csv.gz", ".tsv.gz"), "csv"),
]
_GLOB_CHARS = "*?["


def reader_for_file(path: str) -> str | None:
    lower = path.lower()
    return next((name for suffixes, name in _BY_SUFFIX if lower.endswith(suffixes)), None)


def resolve(uri: str, kind: str = "auto", glob: bool = False,
            skip: Sequence[Location] = ()) -> list[tuple[Reader, Location]]:
    """Turn one command-line source into (reader, location) pairs, or fail with one line.

    The path is literal unless ``glob`` is true: then a pattern (``*``, ``?``, ``[...]``)
    expands to its matches in sorted order. A folder whose files are all shards/tables of
    one kind is read by that reader; any other folder is an image folder. Folders in
    ``skip`` (the workspace, when it lies inside a source folder) are not looked at.
    Only regular files and folders are sources: a pipe or device would block or never end.
    """
    if kind != "auto" and kind not in READERS:
        raise CurateError(f"unknown source kind {kind!r} (choose from: auto, {', '.join(READERS)})")
    loc = locate(uri)
    if glob and any(ch in loc.path for ch in _GLOB_CHARS):
        try:
            matches = sorted(loc.fs.glob(loc.path))
        except OSError as exc:
            raise CurateError(f"cannot expand source pattern {uri!r}: {exc}") from exc
        if not matches:
            raise CurateError(f"source pattern {uri!r} matches nothing")
        return [pair for m in matches for pair in resolve(Location(loc.fs, m).uri, kind, False, skip)]
    try:
        exists, is_dir = loc.exists(), loc.isdir()
    except OSError as exc:
        raise CurateError(f"cannot read source {uri!r}: {exc}") from exc
    if not exists:
        hint = " (the path is taken literally; pass --glob to expand a pattern)" if any(
            ch in loc.path for ch in _GLOB_CHARS) and not glob else ""
        raise CurateError(f"source not found: {uri}{hint}")
    if not is_dir:
        _require_regular_file(loc, uri)
    if kind != "auto":
        return [(READERS[kind], loc)]
    if is_dir:
        return [(READERS[_folder_kind(loc, skip=skip)], loc)]
    name = reader_for_file(loc.path)
    if name is None:
        raise CurateError(f"unknown source kind for {uri!r}: expected a folder, .tar, .parquet, "
                          ".jsonl or .csv (or pass --kind)")
    return [(READERS[name], loc)]


def _require_regular_file(loc: Location, uri: str) -> None:
    """A FIFO blocks the reader forever and a device (``/dev/zero``) never ends: refuse them
    (:func:`curate.io.fs.check_user_file`; shards are streamed, so no size cap)."""
    check_user_file(loc, what="source", max_bytes=None)


def _folder_kind(loc: Location, sample: int = 200, skip: Sequence[Location] = ()) -> str:
    """Reader for a folder, judged from (up to ``sample``) files found under it.

    Shards of one kind make a folder of that kind even beside metadata files (a README, a
    ``dataset_info.json``, Spark's ``_SUCCESS``); a folder with any image file, shards of
    two kinds, or no shards at all is an image folder."""
    kinds: set[str] = set()
    images = seen = 0
    try:
        for name in _file_names(loc, skip):
            if name.startswith("."):
                continue
            kind = reader_for_file(name)
            if kind is not None:
                kinds.add(kind)
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                images += 1
            seen += 1
            if seen >= sample or images or len(kinds) > 1:
                break
    except OSError as exc:
        raise CurateError(f"cannot list source folder {loc.uri!r}: {exc}") from exc
    if len(kinds) == 1 and not images:
        return kinds.pop()
    return "imagefolder"


def _file_names(loc: Location, skip: Sequence[Location]):
    """Names of the files under ``loc`` (any depth, iteratively for local folders)."""
    if loc.is_local:
        for _, entry in walk_local(loc.path, skip):
            yield entry.name
        return
    skipped = skipped_paths(loc, skip)
    for folder, _, files in loc.fs.walk(loc.path):
        if skipped and under(folder, skipped):
            continue
        yield from files
