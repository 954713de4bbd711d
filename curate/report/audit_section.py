"""The report's audit section: per check, the worst flagged items; then label issues, given beside suggested.

Reads the latest (or ``run_ids["audit"]``-pinned) audit run. For every check that flagged something,
worst (highest score) first, at most ``PER_CHECK`` items with a thumbnail or text snippet and their
score; then up to ``LABEL_ISSUES`` label issues, lowest ``label_score`` first, with the given and the
suggested label side by side. Only those rows' payloads are read (``previews``), so the page stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curate.decisions import latest_run
from curate.report.svg import esc
from curate.report.thumbs import Preview
from curate.workspace import Workspace

SECTION = ("audit", "Audit")  # (id, title): in the page's navigation when there is an audit run
PER_CHECK = 8
LABEL_ISSUES = 24
BASE_COLUMNS = ("id", "kept", "reason", "label_score", "label_issue", "suggested_label", "issues", "overridden")


@dataclass(frozen=True)
class CheckView:
    name: str
    flagged: int
    threshold: float | None
    worst: list[tuple[int, float]]  # (manifest row, score), highest score first


@dataclass(frozen=True)
class LabelIssue:
    row: int
    given: str | None
    suggested: str | None
    score: float | None


@dataclass(frozen=True)
class AuditView:
    run_id: str
    label_source: str | None
    labelled: int
    checks: list[CheckView]
    issues: list[LabelIssue]
    label_issues: int
    rows: list[int] = field(default_factory=list)  # manifest rows shown (their previews are read)


def gather_audit(ws: Workspace, manifest: pa.Table, run_id: str | None = None, per_check: int = PER_CHECK,
                 label_issues: int = LABEL_ISSUES) -> AuditView | None:
    """What the section shows, or None when the workspace has no audit run (or one for another manifest)."""
    run = latest_run(ws, "audit", run_id)
    if run is None or not run.table.column("id").equals(manifest.column("id")):
        return None
    table, meta = run.table, run.meta
    thresholds = meta.get("thresholds", {})
    checks = []
    for name in [c for c in table.column_names if c not in BASE_COLUMNS]:
        scores = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        flagged = _flagged(table, name)
        rows = np.flatnonzero(flagged)
        rows = rows[np.lexsort((rows, -scores[rows]))][:per_check]
        checks.append(CheckView(name, int(flagged.sum()), thresholds.get(name),
                                [(int(r), float(scores[r])) for r in rows]))
    checks.sort(key=lambda c: (-c.flagged, c.name))
    issue = table.column("label_issue").to_numpy(zero_copy_only=False).astype(bool)
    score = table.column("label_score").to_numpy(zero_copy_only=False).astype(np.float64)
    rows = np.flatnonzero(issue)
    rows = rows[np.lexsort((rows, score[rows]))][:label_issues]
    given, suggested = manifest.column("label").to_pylist(), table.column("suggested_label").to_pylist()
    issues = [LabelIssue(int(r), given[r], suggested[r], None if np.isnan(score[r]) else float(score[r]))
              for r in rows]
    shown = [r for c in checks for r, _ in c.worst] + [i.row for i in issues]
    return AuditView(run.run_id, meta.get("label_source"), int(np.isfinite(score).sum()), checks, issues,
                     int(issue.sum()), list(dict.fromkeys(shown)))


def _flagged(table: pa.Table, name: str) -> np.ndarray:
    from curate.audit.drops import flagged_by

    return flagged_by(table.column("issues"), name)


def render(view: AuditView | None, previews: dict[int, Preview], ids: list[str], text_layout: bool) -> str:
    """``<section id="audit">``: the run, then a block per check (worst first), then the label issues; nothing
    without an audit run."""
    if view is None:
        return ""
    head = '<section id="audit"><h2>Audit</h2>'
    source = {"predictions": "the given predictions", "probe": "a cross-validated linear probe",
              "knn": "the embeddings' nearest neighbours"}.get(view.label_source or "")
    parts = [head, f"<p>Audit run <code>{esc(view.run_id)}</code>. Scores are in [0, 1], higher = worse; an item is "
             "flagged at its check's threshold. The audit removes nothing unless asked "
             "(<code>--drop CHECK</code> on audit, prune or export).</p>"]
    parts.append("<table><tr><th>check</th><th class=n>flagged</th><th class=n>threshold</th></tr>")
    for c in view.checks:
        at = "" if c.threshold is None else f"{c.threshold:g}"
        name = f'<a href="#audit-{esc(c.name)}">{esc(c.name)}</a>' if c.flagged else esc(c.name)
        parts.append(f'<tr data-check="{esc(c.name)}"><td>{name}</td><td class=n>{c.flagged:,}</td>'
                     f"<td class=n>{at}</td></tr>")
    parts.append("</table>")
    for c in view.checks:
        if not c.flagged:
            continue
        more = f", the worst {len(c.worst)} shown" if c.flagged > len(c.worst) else ""
        parts.append(f'<h3 id="audit-{esc(c.name)}">{esc(c.name)}: {c.flagged:,} flagged{more}</h3>'
                     f'<div class="{"" if text_layout else "tiles"}">')
        parts += [_tile(previews.get(r), ids[r], f"{esc(c.name)} {s:.3f}", text_layout) for r, s in c.worst]
        parts.append("</div>")
    parts.append(f'<h3 id="audit-labels">Label issues: {view.label_issues:,}</h3>')
    if source is None:
        parts.append('<p class="empty">No label signal (give <code>--predictions</code>, or embed the data).</p>')
    elif not view.issues:
        parts.append(f"<p>None of the {view.labelled:,} labelled items (label signal: {source}).</p>")
    else:
        parts.append(f"<p>Label signal: {source}. Lowest label score first (the odds of the given label against "
                     "the best other class); <code>curate select --label-issues</code> sends them to Label Studio."
                     "</p><table><tr><th></th><th>id</th><th>given</th><th>suggested</th>"
                     "<th class=n>label score</th></tr>")
        for i in view.issues:
            score = "" if i.score is None else f"{i.score:.3f}"
            parts.append(f'<tr data-row="{i.row}"><td>{_thumb(previews.get(i.row), text_layout)}</td>'
                         f"<td>{esc(ids[i.row])}</td><td>{esc(i.given or '')}</td><td>{esc(i.suggested or '')}</td>"
                         f"<td class=n>{score}</td></tr>")
        parts.append("</table>")
    parts.append("</section>")
    return "".join(parts)


def _tile(p: Preview | None, sample_id: str, note: str, text_layout: bool) -> str:
    if text_layout or (p is not None and p.text is not None):
        body = esc(p.text) if p is not None and p.text is not None else "(no preview)"
        return f'<div class="snip removed"><div class="id">{esc(sample_id)} &middot; {note}</div>{body}</div>'
    return f'<div class="tile removed" title="{esc(sample_id)}">{_thumb(p, False)}<b>{note}</b>{esc(sample_id)}</div>'


def _thumb(p: Preview | None, text_layout: bool) -> str:
    if p is None:
        return "" if text_layout else '<div class="noimg">no preview</div>'
    if p.text is not None:
        return f'<span class="muted">{esc(p.text[:80])}</span>'
    if p.image:
        return f'<img alt="{esc(p.id)}" src="{p.image}" style="width:48px;height:48px;object-fit:contain">'
    return f'<div class="noimg">{esc(p.error or "")}</div>'
