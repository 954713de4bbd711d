"""One-screen summaries of a manifest or a decision table (counts by category)."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from curate.manifest import reason_code

TOP = 8


def counts(table: pa.Table, column: str, transform=None) -> Counter:
    values = table.column(column).to_pylist()
    if transform is not None:
        values = [transform(v) for v in values]
    return Counter("(none)" if v is None else str(v) for v in values)


def format_counter(title: str, counter: Counter, top: int = TOP) -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{k} {v:,}" for k, v in items[:top])
    rest = len(items) - top
    more = f", ... {rest} more" if rest > 0 else ""
    return f"  {title:<8} {shown}{more}"


def manifest_summary(table: pa.Table) -> str:
    """Counts by kind, status, reason code, split and label, one line each."""
    lines = [f"  {'samples':<8} {table.num_rows:,}"]
    lines.append(format_counter("kind", counts(table, "kind")))
    lines.append(format_counter("status", counts(table, "status")))
    quarantined = table.filter(pc.equal(table.column("status"), "quarantined"))
    if quarantined.num_rows:
        lines.append(format_counter("reason", counts(quarantined, "reason", reason_code), top=12))
    lines.append(format_counter("split", counts(table, "split")))
    lines.append(format_counter("label", counts(table, "label")))
    return "\n".join(lines)
