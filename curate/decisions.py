"""Reading decision tables: one row per manifest id, per stage run, under ``decisions/<stage>/``.

The stage runner (``curate.runner``) writes ``<run-id>.parquet`` (the table) and ``<run-id>.json``
(settings, input fingerprints, counts, seconds) - the sidecar last, so a run with a sidecar is
complete. This module finds runs, reads them and combines them (``upstream``).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
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
    """A finished run of a stage: its decision table, where it lives, and its sidecar (``meta``)."""

    stage: str
    run_id: str
    table: pa.Table
    path: Location
    reused: bool
    meta: dict[str, Any] = field(default_factory=dict)


def run_paths(ws: Workspace, stage: str, run_id: str) -> tuple[Location, Location]:
    folder = ws.decisions(stage)
    return folder.join(f"{run_id}.parquet"), folder.join(f"{run_id}.json")


def load_run(ws: Workspace, stage: str, run_id: str) -> DecisionRun | None:
    """The completed run ``run_id`` of ``stage``, or None if it is absent or unfinished."""
    table_loc, meta_loc = run_paths(ws, stage, run_id)
    if not (meta_loc.exists() and table_loc.exists()):
        return None
    meta = atomic.read_json(meta_loc)
    return DecisionRun(stage, run_id, read_table(table_loc), table_loc, reused=True, meta=meta)


def decision_counts(table: pa.Table) -> dict[str, int]:
    """``{"kept": n, "<reason code>": n, ...}`` for a decision table."""
    kept = pc.sum(table.column("kept")).as_py() or 0
    removed = table.filter(pc.invert(table.column("kept"))).column("reason").to_pylist()
    counts = Counter(reason_code(r) or "unspecified" for r in removed)
    return {"kept": kept, **dict(sorted(counts.items()))}


OUT_SUFFIXES = {".parquet": "parquet", ".csv": "csv"}


def out_format(out: str) -> str:
    """The format ``--out`` names by its suffix (``.parquet`` or ``.csv``); any other suffix is a
    one-line error (Parquet bytes in ``table.txt`` would fool whoever opens it)."""
    suffix = posixpath.splitext(out.rstrip("/").rsplit("/", 1)[-1])[1].lower()
    if suffix not in OUT_SUFFIXES:
        what = repr(suffix) if suffix else "(none)"
        raise CurateError(f"--out {out}: unknown suffix {what} for the decision table; use .parquet or .csv")
    return OUT_SUFFIXES[suffix]


def copy_out(run: DecisionRun, out: str) -> Location:
    """Also write the run's table to a user-chosen path, in the format its suffix names (:func:`out_format`)."""
    fmt = out_format(out)
    dest = locate(out)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        with atomic.atomic_open(dest) as fh:
            pacsv.write_csv(run.table, fh)
    else:
        atomic.write_parquet(dest, run.table)
    return dest


def list_runs(ws: Workspace, stage: str) -> list[dict]:
    """Sidecars of the completed runs of ``stage``, oldest first (by ``created_at``, then run id)."""
    folder = ws.decisions(stage)
    if not folder.exists():
        return []
    metas = []
    for path in folder.fs.ls(folder.path, detail=False):
        name = path.rsplit("/", 1)[-1]
        if not name.endswith(".json") or name.startswith(atomic.TMP_MARK):
            continue
        run_id = name[: -len(".json")]
        if folder.join(f"{run_id}.parquet").exists():
            metas.append(atomic.read_json(folder.join(name)))
    return sorted(metas, key=lambda m: (m.get("created_at", 0.0), m.get("run_id", "")))


def latest_pointer(ws: Workspace, stage: str) -> Location:
    return ws.state("latest", f"{stage}.json")


def mark_latest(ws: Workspace, stage: str, run_id: str) -> None:
    """Record ``run_id`` as the run of ``stage`` that later stages read: the one written or reused last
    (rerunning an older config makes its reused run the latest again)."""
    loc = latest_pointer(ws, stage)
    if not (loc.exists() and atomic.read_json(loc).get("run_id") == run_id):
        atomic.write_json(loc, {"run_id": run_id})


def latest_run(ws: Workspace, stage: str, run_id: str | None = None) -> DecisionRun | None:
    """The run ``run_id`` of ``stage`` (error when absent), or its latest run (None when it has none):
    the one :func:`mark_latest` recorded, else the newest finished one."""
    if run_id is not None:
        run = load_run(ws, stage, run_id)
        if run is None:
            raise CurateError(f"no finished {stage} run {run_id!r} in {ws.root.uri}")
        return run
    pointer = latest_pointer(ws, stage)
    if pointer.exists():
        run = load_run(ws, stage, str(atomic.read_json(pointer).get("run_id")))
        if run is not None:
            return run
    runs = list_runs(ws, stage)
    return load_run(ws, stage, runs[-1]["run_id"]) if runs else None


def _set_reasons(reasons: Any, rows: Any, stage: str, column: pa.ChunkedArray, missing: str) -> None:
    """``reasons[rows] = "<stage>: <column[row] or missing>"``, built by Arrow, not row by row."""
    if len(rows):
        taken = pc.fill_null(column.take(pa.array(rows)), missing)
        taken = pc.if_else(pc.equal(taken, ""), missing, taken)
        reasons[rows] = pc.binary_join_element_wise(f"{stage}: ", taken, "").to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class Upstream:
    """Which manifest rows earlier stages kept, and why the others went (reason per row, None if kept)."""

    kept: Any  # np.ndarray[bool], one per manifest row
    reasons: Any  # np.ndarray[object]: str, or None where kept
    runs: tuple[DecisionRun, ...]


def upstream(ws: Workspace, stages: tuple[str, ...] = ("dedup",), run_ids: dict[str, str] | None = None,
             manifest: pa.Table | None = None, runs: dict[str, DecisionRun] | None = None) -> Upstream:
    """Combine the latest (or named) runs of ``stages`` with the manifest status.

    A row survives when it is ``ok`` in the manifest and kept by every run found; the reason of a
    row that did not is ``"<stage>: <reason>"`` of the first stage that removed it (or
    ``"quarantined: <manifest reason>"``). Stages with no run yet are skipped. ``runs``: the runs
    the stage's inputs already resolved (``curate.inputs.Upstream``), so none is read twice.
    """
    import numpy as np

    run_ids = run_ids or {}
    manifest = manifest if manifest is not None else ws.read_manifest(["id", "status", "reason"])
    kept = pc.equal(manifest.column("status"), "ok").to_numpy(zero_copy_only=False).astype(bool)
    reasons = np.full(manifest.num_rows, None, dtype=object)  # indexable and iterable like a list
    _set_reasons(reasons, np.flatnonzero(~kept), "quarantined", manifest.column("reason"), "None")
    found = []
    for stage in stages:
        run = runs.get(stage) if runs is not None else latest_run(ws, stage, run_ids.get(stage))
        if run is None:
            continue
        if not run.table.column("id").equals(manifest.column("id")):
            raise CurateError(f"{stage} run {run.run_id} was made for another manifest: rerun `curate {stage}`")
        stage_kept = run.table.column("kept").to_numpy(zero_copy_only=False).astype(bool)
        _set_reasons(reasons, np.flatnonzero(kept & ~stage_kept), stage, run.table.column("reason"), "removed")
        kept &= stage_kept
        found.append(run)
    return Upstream(kept, reasons, tuple(found))
