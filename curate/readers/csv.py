"""CSV / TSV text with a header row. A row whose bytes are not UTF-8, or whose field
count differs from the header, is quarantined; the rest of the file is read."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator

from curate.errors import CurateError
from curate.io.fs import Location, locate
from curate.readers.base import ReadOptions, Row, Unit, id_prefix, rejected_row, shard_units
from curate.readers.jsonl import record_row

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # the text size cap applies instead


class CsvReader:
    name = "csv"
    version = 1

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
        line = 0
        try:
            with _open_text(shard) as fh:
                reader = csv.DictReader(fh, dialect=_dialect(shard.path), restkey="\0extra")
                width = len(reader.fieldnames or [])
                while True:
                    try:
                        rec = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        yield rejected_row(f"invalid-record: CSV row after line {line} ({exc})",
                                           **self._base(shard.uri, id_prefix(unit), reader.line_num))
                        continue
                    line = reader.line_num
                    yield self._row(rec, width, line, shard.uri, id_prefix(unit), opts)
        except (OSError, EOFError) as exc:
            yield rejected_row(f"corrupt-shard: unreadable after line {line} ({exc})",
                               id=f"{id_prefix(unit)}#unreadable-rest", source=unit.uri,
                               source_kind=self.name, kind="text")

    def _base(self, uri: str, prefix: str, line: int) -> Row:
        return dict(id=f"{prefix}:{line}", source=f"{uri}#line={line}",
                    source_kind=self.name, kind="text")

    def _row(self, rec: dict, width: int, line: int, uri: str, prefix: str, opts: ReadOptions) -> Row:
        row = self._base(uri, prefix, line)
        fields = len(rec) - 1 + len(rec["\0extra"]) if "\0extra" in rec else sum(
            v is not None for v in rec.values())
        if fields != width:
            return rejected_row(f"invalid-record: line {line} has {fields} fields, "
                                f"the header has {width}", **row)
        return record_row(rec, line, opts, row)


def _open_text(shard: Location) -> io.TextIOWrapper:
    raw = shard.fs.open(shard.path, "rb", compression="infer")
    # utf-8-sig: a byte-order mark (as Excel writes) must not become part of the first name
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _dialect(path: str) -> type[csv.Dialect]:
    return csv.excel_tab if path.lower().endswith((".tsv", ".tsv.gz")) else csv.excel


def _header(shard: Location) -> list[str] | None:
    try:
        with _open_text(shard) as fh:
            return next(csv.reader(fh, dialect=_dialect(shard.path)), None)
    except (OSError, EOFError, csv.Error):
        return None
