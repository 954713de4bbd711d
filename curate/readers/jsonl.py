"""JSON Lines text: one object per line; ``.jsonl``, ``.ndjson``, optionally compressed, and
compressed ``.json.gz`` (and ``.bz2/.xz/.zst``) dumps.

Each line is decoded on its own, so one bad line (not UTF-8, not JSON, no text field)
is quarantined and the rest of the file is read. Blank lines are not records. A line
longer than :meth:`TextCheck.line_cap` (6 x ``--max-text-bytes`` + 64 KiB: room for the
longest allowed text fully ``\\u``-escaped, plus other fields) cannot hold an allowed
text: it becomes one ``text-too-long`` row and is read through without being held in
memory. An id that is a list or an object is quarantined, never turned into a string. A record
without the text field is ``missing-field`` with the fields it has and the ``--text-field`` to
pass (the hint CSV gives for its header).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Sequence

import orjson

from curate.io.fs import Location
from curate.readers.base import (
    Fields,
    LineTooLong,
    ReadOptions,
    Row,
    ShardReader,
    Unit,
    as_label,
    bounded_lines,
    buffered,
    id_prefix,
    normalise_split,
    not_scalar,
    rejected_row,
    shard_units,
    text_row,
)

SUFFIXES = tuple(f"{ext}{comp}" for ext in (".jsonl", ".ndjson")
                 for comp in ("", ".gz", ".bz2", ".xz", ".zst"))
# compressed ``.json`` dumps are JSON Lines in practice (a plain ``.json`` is not picked)
SUFFIXES += tuple(f".json{comp}" for comp in (".gz", ".bz2", ".xz", ".zst"))


class JsonlReader(ShardReader):
    name = "jsonl"
    version = 3

    def plan(self, loc: Location, opts: ReadOptions, name: str | None = None,
             skip: Sequence[Location] = ()) -> list[Unit]:
        return shard_units(self.name, loc, SUFFIXES, name, skip)

    def read_shard(self, shard: Location, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        line_no = 0
        cap = opts.text.line_cap()
        try:
            with buffered(shard.fs.open(shard.path, "rb", compression="infer")) as fh:
                for line_no, raw in enumerate(bounded_lines(fh, cap), 1):
                    if isinstance(raw, LineTooLong):
                        yield rejected_row(too_long(line_no, cap), id=f"{id_prefix(unit)}:{line_no}",
                                           source=f"{shard.uri}#line={line_no}", source_kind=self.name,
                                           kind="text")
                    elif raw.strip():
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


def too_long(line_no: int, cap: int) -> str:
    return (f"text-too-long: line {line_no} has more than {cap:,} bytes (the line cap, "
            "6 x --max-text-bytes + 64 KiB); skipped without reading it into memory")


def record_row(obj: dict, line_no: int, opts: ReadOptions, row: Row) -> Row:
    """Shared by JSONL and CSV: id, label, split and text fields of one record."""
    f = opts.fields
    kind = not_scalar(obj.get(f.id))
    if kind is not None:  # str() of a list or object is no id
        return rejected_row(f"invalid-record: line {line_no} field {f.id!r} (id) is a {kind}, "
                            "expected a string or a number", **row)
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
        return rejected_row(missing_text(obj, line_no, f), **row)
    return rejected_row(f"invalid-record: line {line_no} field {f.text!r} is a "
                        f"{type(text).__name__}, not a string", **row)


# field names that usually hold a record's text, in the order they are suggested
TEXT_NAMES = ("content", "body", "document", "passage", "article", "sentence", "caption", "prompt", "question",
              "review", "message", "markdown", "raw_content", "input", "query", "title")
_SHOWN_FIELDS = 12


def missing_text(obj: dict, line_no: int, f: Fields) -> str:
    """The ``missing-field`` reason of a record without text: the fields it has and the
    ``--text-field`` that would read it (as CSV tells of its header), e.g. ``line 1 has no field
    'text'; the record has: content, id; pass --text-field content``."""
    if f.text in obj:
        return f"missing-field: line {line_no} field {f.text!r} is null"
    names = [_shown(str(k)) for k in obj]
    listed = ", ".join(names[:_SHOWN_FIELDS]) + (f", ... ({len(names)} fields)" if len(names) > _SHOWN_FIELDS else "")
    guess = text_field_guess(obj, f)
    hint = (f"pass --text-field {shlex.quote(guess)}" if guess is not None
            else "no field holds a string; pass --text-field NAME")
    return f"missing-field: line {line_no} has no field {f.text!r}; the record has: {listed or 'no fields'}; {hint}"


def text_field_guess(obj: dict, f: Fields) -> str | None:
    """The field most likely meant as the text: a usual text name holding a string, else the field
    (not the id, label or split) holding the longest string; None when no field holds one."""
    strings = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, str) and v.strip()
               and k not in (f.id, f.label, f.split)}
    named = next((n for n in TEXT_NAMES if n in strings), None)
    if named is not None:
        return named
    return max(strings, key=lambda k: len(strings[k]), default=None)


def _shown(name: str, limit: int = 40) -> str:
    """A field name as the hint lists it: plain when readable, else quoted; long names cut."""
    cut = name if len(name) <= limit else name[:limit] + "..."
    return cut if cut.isprintable() and cut.strip() == cut and "," not in cut and cut else repr(cut)
