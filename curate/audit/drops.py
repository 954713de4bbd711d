"""Later stages honour the audit: ``--drop CHECK,...`` on prune and export.

The latest audit run is an upstream stage (``curate.decisions.upstream``) of prune, and of export when
``--drop`` is given. Without ``--drop`` its own ``kept`` applies (quarantine, the audit's own ``--drop``,
review overrides: nothing else by default). With ``--drop`` the run is read through :func:`drop_view`:
an item flagged by one of the checks (its ``issues`` list names it; ``label-issue``: the ``label_issue``
column) is removed too, with the check as its reason, so the stage's table says ``audit: blurry``. An
item a reviewer kept in the audit (``curate override --stage audit --keep ID``) stays.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.decisions import DecisionRun, latest_run
from curate.errors import CurateError
from curate.workspace import Workspace

STAGE = "audit"
LABEL_ISSUE = "label-issue"


def drop_names(values: Any) -> tuple[str, ...]:
    """``"blurry,dark"`` / ``("blurry", "dark,tiny")`` -> ``("blurry", "dark", "tiny")``."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    return tuple(dict.fromkeys(p.strip() for v in items for p in str(v).split(",") if p.strip()))


def check_drop(ws: Workspace, drop: tuple[str, ...], run_id: str | None = None) -> None:
    """One-line errors before any work: ``--drop`` needs a finished audit run that ran those checks."""
    if not drop:
        return
    run = latest_run(ws, STAGE, run_id)
    if run is None:
        raise CurateError(f"--drop {','.join(drop)} needs an audit run: run `curate audit -w {ws.root.uri}` first")
    known = [c for c in run.meta.get("checks", []) if c in run.table.column_names] + [LABEL_ISSUE]
    unknown = [c for c in drop if c not in known]
    if unknown:
        raise CurateError(f"--drop {unknown[0]}: audit run {run.run_id} has no such check (it ran "
                          f"{', '.join(known)})")


def drop_view(run: DecisionRun, drop: tuple[str, ...]) -> DecisionRun:
    """The audit run with items flagged by a check in ``drop`` removed (reason: the first such check)."""
    if not drop:
        return run
    table = run.table
    n = table.num_rows
    kept = table.column("kept").to_numpy(zero_copy_only=False).astype(bool)
    reason = np.array(table.column("reason").to_pylist(), dtype=object)
    kept_by_review = np.zeros(n, dtype=bool)
    if "overridden" in table.column_names:
        kept_by_review = table.column("overridden").to_numpy(zero_copy_only=False).astype(bool) & kept
    hit_reason = np.full(n, None, dtype=object)
    for name in reversed(drop):
        if name == LABEL_ISSUE:
            hit = table.column("label_issue").to_numpy(zero_copy_only=False).astype(bool)
        else:
            hit = flagged_by(table.column("issues"), name)
        hit_reason[hit] = name
    flagged = np.array([r is not None for r in hit_reason], dtype=bool) & kept & ~kept_by_review
    reason[flagged] = hit_reason[flagged]
    kept = kept & ~flagged
    view = table.select(["id"]).append_column("kept", pa.array(kept)).append_column(
        "reason", pa.array(reason.tolist(), pa.string()))
    return dataclasses.replace(run, table=view)


def flagged_by(issues: pa.ChunkedArray, name: str) -> np.ndarray:
    """Per row, whether its ``issues`` list names ``name`` (no Python loop over rows)."""
    issues = issues.combine_chunks()
    out = np.zeros(len(issues), dtype=bool)
    values = pc.list_flatten(issues)
    if len(values):
        parents = pc.list_parent_indices(issues).to_numpy(zero_copy_only=False)
        match = pc.fill_null(pc.equal(values, name), False).to_numpy(zero_copy_only=False).astype(bool)
        out[parents[match]] = True
    return out


def with_drops(runs: dict[str, DecisionRun], drop: tuple[str, ...]) -> dict[str, DecisionRun]:
    """``runs`` (an Upstream input's resolved runs) with the audit run read through :func:`drop_view`."""
    if STAGE not in runs or not drop:
        return runs
    return {**runs, STAGE: drop_view(runs[STAGE], drop)}
