"""Decision tables: one row per manifest id, per stage run, under ``decisions/<stage>/``.

A run writes ``<run-id>.parquet`` (the table) and ``<run-id>.json`` (config, manifest
fingerprint, counts, time) - the sidecar last, so a run with a sidecar is complete.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.io.tables import read_table
from curate.manifest import reason_code
from curate.workspace import Workspace


@dataclass(frozen=True)
class DecisionRun:
    stage: str
    run_id: str
    table: pa.Table
    path: Location
    reused: bool


def run_paths(ws: Workspace, stage: str, run_id: str) -> tuple[Location, Location]:
    folder = ws.decisions(stage)
    return folder.join(f"{run_id}.parquet"), folder.join(f"{run_id}.json")


def load_run(ws: Workspace, stage: str, run_id: str) -> DecisionRun | None:
    """The completed run ``run_id`` of ``stage``, or None if it is absent or unfinished."""
    table_loc, meta_loc = run_paths(ws, stage, run_id)
    if not (meta_loc.exists() and table_loc.exists()):
        return None
    table = read_table(table_loc)
    return DecisionRun(stage, run_id, table, table_loc, reused=True)


def write_run(ws: Workspace, stage: str, run_id: str, table: pa.Table, meta: dict[str, Any],
              manifest_ids: pa.ChunkedArray) -> DecisionRun:
    """Check the one-row-per-manifest-id rule, then write table and sidecar atomically."""
    if table.num_rows != len(manifest_ids) or not table.column("id").equals(manifest_ids):
        raise CurateError(f"internal error: {stage} decisions do not cover the manifest ids in order")
    table_loc, meta_loc = run_paths(ws, stage, run_id)
    atomic.sweep_temporaries(ws.decisions(stage))
    atomic.write_parquet(table_loc, table)
    atomic.write_json(meta_loc, {**meta, "stage": stage, "run_id": run_id,
                                 "rows": table.num_rows, "counts": decision_counts(table),
                                 "created_at": time.time()})
    return DecisionRun(stage, run_id, table, table_loc, reused=False)


def decision_counts(table: pa.Table) -> dict[str, int]:
    """``{"kept": n, "<reason code>": n, ...}`` for a decision table."""
    kept = pc.sum(table.column("kept")).as_py() or 0
    removed = table.filter(pc.invert(table.column("kept"))).column("reason").to_pylist()
    counts = Counter(reason_code(r) or "unspecified" for r in removed)
    return {"kept": kept, **dict(sorted(counts.items()))}


def copy_out(run: DecisionRun, out: str) -> Location:
    """Also write the run's table to a user-chosen path (Parquet, or CSV by extension)."""
    dest = locate(out)
    if dest.path.lower().endswith(".csv"):
        import pyarrow.csv as pacsv

        with atomic.atomic_open(dest) as fh:
            pacsv.write_csv(run.table, fh)
    else:
        atomic.write_parquet(dest, run.table)
    return dest
