"""CSV / TSV text with a header row. A row whose bytes are not UTF-8, or whose field
count differs from the header, is quarantined; the rest of the file is read.

A quote that is never closed would make the csv module swallow every later line into one
field: that row is quarantined and the lines after it are read as rows again. ``.tsv`` is
plain tab-separated text (no quoting: a field may start with ``"``). A header naming the id,
text, label or split column twice is ambiguous: its rows are quarantined with that reason.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from collections.abc import Iterable, Iterator

from curate.errors import CurateError
from curate.io.fs import Location, locate
from curate.readers.base import ReadOptions, Row, Unit, id_prefix, rejected_row, shard_units
from curate.readers.jsonl import record_row

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the text size cap applies instead


class CsvReader:
    name = "csv"
    version = 2

    def plan(self, loc: Location, opts: ReadOptions) -> list[Unit]:
        units = shard_units(self.name, loc, (".csv", ".tsv", ".csv.gz", ".tsv.gz"))
        for unit in units:
            header = _header(locate(unit.uri))
            if header is not None and opts.fields.text not in header:
                raise CurateError(f"{unit.uri}: no text column {opts.fields.text!r} "
                                  f"(columns: {', '.join(header)}); use --text-field")
        return units

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        shard = locate(unit.uri)
        prefix = id_prefix(unit)
        line = 0
        try:
            with _open_text(shard) as fh:
                dialect = _dialect(shard.path)
                header: list[str] | None = None
                for line, fields, problem in _records(fh, dialect, 0):
                    if header is None and problem is None:
                        header = fields
                        ambiguous = _ambiguous(header, opts)
                        continue
                    base = self._base(shard.uri, prefix, line)
                    if problem is not None:
                        yield rejected_row(f"invalid-record: {problem}", **base)
                    elif ambiguous:
                        yield rejected_row(f"invalid-record: {ambiguous}", **base)
                    elif len(fields) != len(header):
                        yield rejected_row(f"invalid-record: line {line} has {len(fields)} fields, "
                                           f"the header has {len(header)}", **base)
                    else:
                        yield record_row(dict(zip(header, fields)), line, opts, base)
        except (OSError, EOFError) as exc:
            yield rejected_row(f"corrupt-shard: unreadable after line {line} ({exc})",
                               id=f"{prefix}#unreadable-rest", source=unit.uri,
                               source_kind=self.name, kind="text")

    def _base(self, uri: str, prefix: str, line: int) -> Row:
        return dict(id=f"{prefix}:{line}", source=f"{uri}#line={line}",
                    source_kind=self.name, kind="text")


class _Lines:
    """Physical lines fed to ``csv.reader``, remembering those of the current record."""

    def __init__(self, lines: Iterable[str], number: int) -> None:
        self.lines, self.number = iter(lines), number
        self.taken: list[str] = []
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.ended = True
            raise
        self.taken.append(line)
        self.number += 1
        return line


def _records(lines: Iterable[str], dialect: type[csv.Dialect], number: int
             ) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, fields, problem) per record; blank lines skipped. The number is the
    record's last physical line (what ids and sources name)."""
    src = _Lines(lines, number)
    reader = csv.reader(src, dialect=dialect)
    while True:
        src.taken = []
        start = src.number + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield src.number, [], f"CSV row after line {start - 1} ({exc})"
            continue
        if src.ended:  # the file ended inside a quoted field: only its first line is that record
            yield start, [], f"line {start} opens a quote that is never closed"
            yield from _records(src.taken[1:], dialect, start)
            return
        if fields:
            yield src.number, fields, None


def _ambiguous(header: list[str], opts: ReadOptions) -> str | None:
    f = opts.fields
    twice = [name for name, n in Counter(header).items() if n > 1 and name in (f.id, f.text, f.label, f.split)]
    if not twice:
        return None
    return f"the header names column {twice[0]!r} {header.count(twice[0])} times (which one to use is ambiguous)"


def _open_text(shard: Location) -> io.TextIOWrapper:
    raw = shard.fs.open(shard.path, "rb", compression="infer")
    # utf-8-sig: a byte-order mark (as Excel writes) must not become part of the first name
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


class _PlainTab(csv.excel_tab):
    """Tab-separated values as the format defines them: no quoting at all."""

    quoting = csv.QUOTE_NONE


def _dialect(path: str) -> type[csv.Dialect]:
    return _PlainTab if path.lower().endswith((".tsv", ".tsv.gz")) else csv.excel


def _header(shard: Location) -> list[str] | None:
    try:
        with _open_text(shard) as fh:
            return next(csv.reader(fh, dialect=_dialect(shard.path)), None)
    except (OSError, EOFError, csv.Error):
        return None
