"""Send suspected label errors to Label Studio: ``curate select -w WS --label-issues -n 50 --out batch.json``.

Takes the items the latest audit run flagged ``label_issue`` (ok items only), lowest ``label_score``
first (the given label least likely right), at most ``budget`` of them, and writes them for review:

- Label Studio JSON (``.json``): one task per item, ``data`` as ``select`` exports it (``image`` URI or
  ``text``, plus the sample ``id``), ``meta`` with ``id``, ``rank``, ``label_score``, ``given_label``,
  ``suggested_label`` and ``issues``; the **given label as an annotation** (the label to check) and the
  **suggested label as a prediction** (pre-filled, ``score`` = 1 - label_score), both single choices of
  the ``label`` control. ``labeling-config.xml`` beside it lists every label (and suggested class) as a
  choice; ``LABELING.md`` says what the batch is.
- CSV / Parquet: ``id``, ``source``, ``rank``, ``label_score``, ``given_label``, ``suggested_label``.

Nothing is recorded as a select run (the audit run is the decision); an existing file is never
overwritten unless ``force``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.decisions import latest_run
from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.workspace import Workspace

MODEL_VERSION = "curate-audit"


@dataclass(frozen=True)
class LabelIssueExport:
    run_id: str  # the audit run the issues come from
    ids: list[str]  # exported, lowest label_score first
    issues: int  # label issues in the run (ok items)
    export: Location
    handoff: tuple[Location, ...]  # labeling-config.xml, LABELING.md (Label Studio only)


def label_issue_table(ws: Workspace, budget: int, run_id: str | None = None) -> tuple[pa.Table, str, int]:
    """(the picked rows as a table, the audit run id, how many label issues it has)."""
    if budget <= 0:
        raise CurateError(f"--budget must be positive, got {budget}")
    run = latest_run(ws, "audit", run_id)
    if run is None:
        raise CurateError(f"--label-issues reads an audit run: run `curate audit -w {ws.root.uri}` first")
    manifest = ws.read_manifest(["id", "source", "kind", "text", "label", "status"])
    if not run.table.column("id").equals(manifest.column("id")):
        raise CurateError(f"audit run {run.run_id} was made for another manifest: rerun `curate audit`")
    ok = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
    issue = run.table.column("label_issue").to_numpy(zero_copy_only=False).astype(bool) & ok
    score = run.table.column("label_score").to_numpy(zero_copy_only=False).astype(np.float64)
    rows = np.flatnonzero(issue)
    rows = rows[np.lexsort((rows, score[rows]))][:budget]  # lowest score first, ties in manifest order
    take = pa.array(rows, pa.int64())
    picked = manifest.take(take)
    audit = run.table.take(take)
    table = pa.table({
        "id": picked.column("id"), "source": picked.column("source"), "kind": picked.column("kind"),
        "text": picked.column("text"), "rank": pa.array(np.arange(1, len(rows) + 1), pa.int64()),
        "label_score": audit.column("label_score"), "given_label": picked.column("label"),
        "suggested_label": audit.column("suggested_label"), "issues": audit.column("issues"),
    })
    return table, run.run_id, int(issue.sum())


def export_label_issues(ws: Workspace, budget: int, out: str, fmt: str | None = None, data_key: str | None = None,
                        document_root: str | None = None, force: bool = False,
                        run_id: str | None = None) -> LabelIssueExport:
    """Write the ``budget`` worst label issues of the latest audit run to ``out`` (see the module doc)."""
    from curate.select.exports import ExportOptions, guess_format
    from curate.select.handoff import handoff_paths

    fmt = guess_format(out, fmt)
    dest = locate(out)
    targets = [dest] + (list(handoff_paths(dest)) if fmt == "labelstudio" else [])
    if not force:
        for loc in targets:
            if loc.exists():
                raise CurateError(f"{loc.uri} already exists; pick another --out folder, or --force to overwrite")
    table, audit_run, total = label_issue_table(ws, budget, run_id)
    options = ExportOptions(format=fmt, data_key=data_key, document_root=document_root)
    handoff: tuple[Location, ...] = ()
    if fmt == "labelstudio":
        tasks = labelstudio_tasks(table, options)
        atomic.write_bytes(dest, (json.dumps(tasks, indent=1, allow_nan=False) + "\n").encode())
        handoff = _write_handoff(ws, table, dest, options, audit_run)
    else:
        plain = table.select(["id", "source", "rank", "label_score", "given_label", "suggested_label"])
        if fmt == "csv":
            import pyarrow.csv as pacsv

            buf = io.BytesIO()
            pacsv.write_csv(plain, buf)
            atomic.write_bytes(dest, buf.getvalue())
        else:
            atomic.write_parquet(dest, plain)
    return LabelIssueExport(audit_run, table.column("id").to_pylist(), total, dest, handoff)


def labelstudio_tasks(table: pa.Table, options) -> list[dict]:
    """One task per row: the given label as an annotation, the suggested one as a prediction."""
    from curate.select.exports import choice_value, data_key, reference

    tasks = []
    for row in table.to_pylist():
        key = data_key(row["kind"], options)
        value = row["text"] if row["kind"] == "text" else reference(row["source"], options.document_root)
        data = {key: value if value is not None else row["source"], ("sample_id" if key == "id" else "id"): row["id"]}
        score = row["label_score"]
        task = {"data": data,
                "meta": {"id": row["id"], "rank": row["rank"], "label_score": score,
                         "given_label": row["given_label"], "suggested_label": row["suggested_label"],
                         "issues": row["issues"] or []}}
        if row["given_label"] is not None:
            task["annotations"] = [{"result": [_choice(options.from_name, key, choice_value(row["given_label"]))],
                                    "ground_truth": False}]
        if row["suggested_label"] is not None:
            task["predictions"] = [{"model_version": MODEL_VERSION,
                                    "score": None if score is None else round(1.0 - float(score), 6),
                                    "result": [_choice(options.from_name, key, choice_value(row["suggested_label"]))]}]
        tasks.append(task)
    return tasks


def _choice(from_name: str, to_name: str, label: str) -> dict:
    return {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}


def _write_handoff(ws: Workspace, table: pa.Table, dest: Location, options, audit_run: str) -> tuple[Location, ...]:
    from curate.select.exports import data_key
    from curate.select.handoff import handoff_paths, labeling_config

    manifest = ws.read_manifest(["label", "status"])
    names = {lab for lab, status in zip(manifest.column("label").to_pylist(), manifest.column("status").to_pylist())
             if lab is not None and status == "ok"}
    names |= {s for s in table.column("suggested_label").to_pylist() if s is not None}
    kinds = table.column("kind").to_pylist()
    kind = max(set(kinds), key=kinds.count) if kinds else "image"
    key = data_key(kind, options)
    config_loc, notes_loc = handoff_paths(dest)
    atomic.write_bytes(config_loc, labeling_config(sorted(names), key, kind, options.from_name).encode())
    atomic.write_bytes(notes_loc, _notes(table, dest.name, key, kind, audit_run).encode())
    return config_loc, notes_loc


def _notes(table: pa.Table, export_name: str, key: str, kind: str, audit_run: str) -> str:
    from curate.select.handoff import CONFIG_NAME, _cell, _code

    scores = [s for s in table.column("label_score").to_pylist() if s is not None]
    lines = [f"# Label check {_code(export_name)}", "",
             f"- **{table.num_rows:,} {kind}s** whose label the audit doubts (audit run {_code(audit_run)}), "
             "lowest label score first",
             "- label score (the odds of the given label against the best other class): "
             + (f"min {min(scores):.4f}, max {max(scores):.4f}" if scores else "none"), "",
             "Each task comes with the **given label as an annotation** and the **suggested label as a "
             "prediction**. Keep the given label when it is right; otherwise pick the right one (often the "
             "suggestion) and submit.", "",
             f"1. Create a Label Studio project with `{CONFIG_NAME}` (Settings > Labeling Interface > Code).",
             f"2. Import {_code(export_name)}.",
             f"3. Each task shows one {kind} ({_code('data.' + key)}).", "",
             "| rank | id | given | suggested | score |", "| ---: | --- | --- | --- | ---: |"]
    for row in table.select(["rank", "id", "given_label", "suggested_label", "label_score"]).to_pylist()[:200]:
        score = "" if row["label_score"] is None else f"{row['label_score']:.4f}"
        lines.append(f"| {row['rank']} | {_code(row['id'])} | {_cell(row['given_label'] or '-')} | "
                     f"{_cell(row['suggested_label'] or '-')} | {score} |")
    return "\n".join(lines) + "\n"
