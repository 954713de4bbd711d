"""JSON Lines text: one object per line; ``.jsonl``, ``.ndjson``, optionally compressed, and
compressed ``.json.gz`` (and ``.bz2/.xz/.zst``) dumps.

Each line is decoded on its own, so one bad line (not UTF-8, not JSON, no text field)
is quarantined and the rest of the file is read. Blank lines are not records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import orjson

from curate.io.fs import Location, locate
from curate.readers.base import (
    ReadOptions,
    Row,
    Unit,
    as_label,
    id_prefix,
    normalise_split,
    rejected_row,
    shard_units,
    text_row,
)

SUFFIXES = tuple(f"{ext}{comp}" for ext in (".jsonl", ".ndjson")
                 for comp in ("", ".gz", ".bz2", ".xz", ".zst"))
# compressed ``.json`` dumps are JSON Lines in practice (a plain ``.json`` is not picked)
SUFFIXES += tuple(f".json{comp}" for comp in (".gz", ".bz2", ".xz", ".zst"))


class JsonlReader:
    name = "jsonl"
    version = 1

    def plan(self, loc: Location, opts: ReadOptions) -> list[Unit]:
        return shard_units(self.name, loc, SUFFIXES)

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        shard = locate(unit.uri)
        line_no = 0
        try:
            with shard.fs.open(shard.path, "rb", compression="infer") as fh:
                for line_no, raw in enumerate(fh, 1):
                    if raw.strip():
                        yield self._row(raw, line_no, shard.uri, id_prefix(unit), opts)
        except (OSError, EOFError, ValueError) as exc:
            yield rejected_row(f"corrupt-shard: unreadable after line {line_no} ({exc})",
                               id=f"{id_prefix(unit)}#unreadable-rest", source=unit.uri,
                               source_kind=self.name, kind="text")

    def _row(self, raw: bytes, line_no: int, uri: str, prefix: str, opts: ReadOptions) -> Row:
        row: Row = dict(id=f"{prefix}:{line_no}", source=f"{uri}#line={line_no}",
                        source_kind=self.name, kind="text")
        try:
            obj = orjson.loads(raw)  # fast path; anything it refuses is diagnosed below
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(obj, dict):
                return record_row(obj, line_no, opts, row)
        try:  # a byte-order mark may start the file
            obj = json.loads(raw.decode("utf-8-sig" if line_no == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            return rejected_row(f"undecodable-text: line {line_no} is not valid UTF-8 at byte "
                                f"{exc.start}", **row)
        except RecursionError:
            return rejected_row(f"invalid-record: line {line_no} is nested too deeply", **row)
        except ValueError as exc:
            return rejected_row(f"invalid-record: line {line_no} is not valid JSON ({exc})", **row)
        if not isinstance(obj, dict):
            return rejected_row(f"invalid-record: line {line_no} is a JSON {type(obj).__name__}, "
                                "not an object", **row)
        return record_row(obj, line_no, opts, row)


def record_row(obj: dict, line_no: int, opts: ReadOptions, row: Row) -> Row:
    """Shared by JSONL and CSV: id, label, split and text fields of one record."""
    f = opts.fields
    rid = obj.get(f.id)
    if rid is not None and rid != "":
        row["id"] = rid if isinstance(rid, str) else str(rid)
    label = obj.get(f.label)
    if label is not None:
        row["label"] = as_label(label)
    split = obj.get(f.split)
    if split is not None:
        row["split"] = normalise_split(split)
    text = obj.get(f.text)
    if isinstance(text, str):
        return text_row(text, opts.text, **row)
    if text is None:
        return rejected_row(f"missing-field: line {line_no} has no {f.text!r} field", **row)
    return rejected_row(f"invalid-record: line {line_no} field {f.text!r} is a "
                        f"{type(text).__name__}, not a string", **row)
