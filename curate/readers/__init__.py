"""Source readers and the rules that pick one for a source path or URI."""

from __future__ import annotations

from curate.errors import CurateError
from curate.io.fs import Location, locate
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


def resolve(uri: str, kind: str = "auto") -> list[tuple[Reader, Location]]:
    """Turn one command-line source into (reader, location) pairs, or fail with one line.

    A glob expands to its matches in sorted order. A folder whose files are all
    shards/tables of one kind is read by that reader; any other folder is an image folder.
    """
    if kind != "auto" and kind not in READERS:
        raise CurateError(f"unknown source kind {kind!r} (choose from: auto, {', '.join(READERS)})")
    loc = locate(uri)
    if any(ch in loc.path for ch in _GLOB_CHARS):
        matches = sorted(loc.fs.glob(loc.path))
        if not matches:
            raise CurateError(f"source pattern {uri!r} matches nothing")
        return [pair for m in matches for pair in resolve(Location(loc.fs, m).uri, kind)]
    try:
        exists, is_dir = loc.exists(), loc.isdir()
    except OSError as exc:
        raise CurateError(f"cannot read source {uri!r}: {exc}") from exc
    if not exists:
        raise CurateError(f"source not found: {uri}")
    if kind != "auto":
        return [(READERS[kind], loc)]
    if is_dir:
        return [(READERS[_folder_kind(loc)], loc)]
    name = reader_for_file(loc.path)
    if name is None:
        raise CurateError(f"unknown source kind for {uri!r}: expected a folder, .tar, .parquet, "
                          ".jsonl or .csv (or pass --kind)")
    return [(READERS[name], loc)]


def _folder_kind(loc: Location, sample: int = 200) -> str:
    """Reader for a folder, judged from (up to ``sample``) files found under it."""
    kinds: set[str | None] = set()
    seen = 0
    try:
        for _, _, files in loc.fs.walk(loc.path):
            for name in files:
                if name.startswith("."):
                    continue
                kinds.add(reader_for_file(name))
                seen += 1
            if seen >= sample or None in kinds:
                break
    except OSError as exc:
        raise CurateError(f"cannot list source folder {loc.uri!r}: {exc}") from exc
    if len(kinds) == 1 and None not in kinds:
        return kinds.pop()
    return "imagefolder"
