"""The manifest: one row per input sample, in ingest order, as Parquet parts.

Every input the readers see becomes exactly one row, good or bad: ``status`` is
``ok`` or ``quarantined`` and ``reason`` says why (``"<code>: <detail>"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_kind", pa.string(), nullable=False),
        # byte range of the payload inside its shard (tar members), for ranged reads
        pa.field("offset", pa.int64()),
        pa.field("length", pa.int64()),
        pa.field("content_hash", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("format", pa.string()),
        pa.field("mode", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        pa.field("text", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
    ]
)

MANIFEST_FORMAT = 2  # bump when SCHEMA changes: ingest re-reads every unit, readers refuse old manifests

OK = "ok"
QUARANTINED = "quarantined"


def to_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a manifest-schema table from row dicts (missing keys become null)."""
    rows = list(records)
    try:
        return pa.Table.from_pylist(rows, schema=SCHEMA)
    except UnicodeEncodeError:  # rare: lone surrogates somewhere; fix the rows that have them
        return pa.Table.from_pylist([_valid_utf8(r) for r in rows], schema=SCHEMA)


def reason_code(reason: str | None) -> str | None:
    """The stable code part of a reason (``"truncated-image: ..."`` -> ``"truncated-image"``)."""
    if reason is None:
        return None
    return reason.split(":", 1)[0]


def _valid_utf8(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """Escape strings Parquet cannot store (lone surrogates) and quarantine their row."""
    bad = []
    for key, value in row.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                bad.append(key)
    if not bad:
        return row
    fixed = dict(row)
    for key in bad:
        fixed[key] = row[key].encode("utf-8", "backslashreplace").decode("utf-8")
    if fixed.get("status") == OK:
        fixed["status"] = QUARANTINED
        fixed["reason"] = f"undecodable-text: field {bad[0]!r} is not valid UTF-8"
    return fixed
