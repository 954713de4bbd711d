"""CSV / TSV text with a header row. A row whose bytes are not UTF-8, or whose field
count differs from the header, is quarantined; the rest of the file is read.

A quote that is never closed would make the csv module swallow every later line into one
field: that row is quarantined and the lines after it are read as rows again. ``.tsv`` is
plain tab-separated text (no quoting: a field may start with ``"``). A header naming the id,
text, label or split column twice is ambiguous: its rows are quarantined with that reason.
A physical line longer than :meth:`TextCheck.line_cap` becomes one ``text-too-long`` row
and is read through without being held in memory; the lines after it are read.
"""

from __future__ import annotations

import csv
import io
import itertools
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from curate.errors import CurateError
from curate.io.fs import Location, locate
from curate.readers.base import (
    LineTooLong,
    ReadOptions,
    Row,
    ShardReader,
    Unit,
    bounded_lines,
    buffered,
    id_prefix,
    rejected_row,
    shard_units,
)
from curate.readers.jsonl import record_row, too_long

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the text size cap applies instead


class CsvReader(ShardReader):
    name = "csv"
    version = 4

    def plan(self, loc: Location, opts: ReadOptions, name: str | None = None,
             skip: Sequence[Location] = ()) -> list[Unit]:
        units = shard_units(self.name, loc, (".csv", ".tsv", ".csv.gz", ".tsv.gz"), name, skip)
        for unit in units:
            if len(unit.items) > 1:  # not a regular file: never opened
                continue
            header = _header(locate(unit.uri), opts.text.line_cap())
            if header is not None and opts.fields.text not in header:
                raise CurateError(f"{unit.uri}: no text column {opts.fields.text!r} "
                                  f"(columns: {', '.join(header)}); use --text-field")
        return units

    def read_shard(self, shard: Location, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        prefix = id_prefix(unit)
        line = 0
        cap = opts.text.line_cap()
        try:
            with _open_text(shard) as fh:
                dialect = _dialect(shard.path)
                header: list[str] | None = None
                for line, fields, problem in _records(bounded_lines(fh, cap), dialect, 0, cap):
                    if header is None and problem is None:
                        header = fields
                        ambiguous = _ambiguous(header, opts)
                        continue
                    base = self._base(shard.uri, prefix, line)
                    if problem is not None:
                        yield rejected_row(problem, **base)
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


class _TooLong(Exception):
    """Raised through ``csv.reader`` for a line over the cap (it resets on its next row)."""


class _Unclosed(Exception):
    """Raised through ``csv.reader`` when a quoted record grows past the cap."""


class _Lines:
    """Physical lines fed to ``csv.reader``, remembering those of the current record."""

    def __init__(self, lines: Iterable[str | LineTooLong], number: int, cap: int) -> None:
        self.lines, self.number, self.cap = iter(lines), number, cap
        self.taken: list[str] = []
        self.size = 0
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self.lines)
        except StopIteration:
            self.ended = True
            raise
        self.number += 1
        if isinstance(line, LineTooLong):
            raise _TooLong
        self.taken.append(line)
        self.size += len(line)
        if self.size > self.cap:
            raise _Unclosed
        return line


def _records(lines: Iterable[str | LineTooLong], dialect: type[csv.Dialect], number: int, cap: int
             ) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, fields, reason) per record, reason None for a good one; blank lines
    skipped. The number is the record's last physical line (what ids and sources name).

    A quote never closed (by the end of the file, or within ``cap`` characters) makes its
    first line one bad record; the lines after it are read again as records. Iterative, and
    a record never holds more than ``cap`` characters.
    """
    src = _Lines(lines, number, cap)
    reader = csv.reader(src, dialect=dialect)
    while True:
        src.taken, src.size = [], 0
        start = src.number + 1
        unclosed = None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _TooLong:  # one row for the long line (and the lines of its record before it)
            yield src.number, [], too_long(src.number, cap)
            continue
        except _Unclosed:
            unclosed = f"invalid-record: line {start} opens a quote that is not closed within {cap:,} characters"
        except csv.Error as exc:
            yield src.number, [], f"invalid-record: CSV row after line {start - 1} ({exc})"
            continue
        if unclosed is None and src.ended:  # the file ended inside a quoted field
            unclosed = f"invalid-record: line {start} opens a quote that is never closed"
        if unclosed is not None:  # only its first line is that record: read the others again
            yield start, [], unclosed
            src = _Lines(itertools.chain(src.taken[1:], src.lines), start, cap)
            reader = csv.reader(src, dialect=dialect)
            continue
        if fields:
            yield src.number, fields, None


def _ambiguous(header: list[str], opts: ReadOptions) -> str | None:
    f = opts.fields
    twice = [name for name, n in Counter(header).items() if n > 1 and name in (f.id, f.text, f.label, f.split)]
    if not twice:
        return None
    return f"the header names column {twice[0]!r} {header.count(twice[0])} times (which one to use is ambiguous)"


def _open_text(shard: Location) -> io.TextIOWrapper:
    raw = buffered(shard.fs.open(shard.path, "rb", compression="infer"))
    # utf-8-sig: a byte-order mark (as Excel writes) must not become part of the first name
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


class _PlainTab(csv.excel_tab):
    """Tab-separated values as the format defines them: no quoting at all."""

    quoting = csv.QUOTE_NONE


def _dialect(path: str) -> type[csv.Dialect]:
    return _PlainTab if path.lower().endswith((".tsv", ".tsv.gz")) else csv.excel


def _header(shard: Location, cap: int) -> list[str] | None:
    try:
        with _open_text(shard) as fh:
            lines = _until_too_long(bounded_lines(fh, cap))
            return next(csv.reader(lines, dialect=_dialect(shard.path)), None)
    except (OSError, EOFError, csv.Error):
        return None


def _until_too_long(lines: Iterable[str | LineTooLong]) -> Iterator[str]:
    for line in lines:
        if isinstance(line, LineTooLong):
            return
        yield line
