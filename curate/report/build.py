"""``build_report``: gather a workspace's facts and write one self-contained ``report.html``.

The page needs nothing but itself: CSS inline, charts as inline SVG, thumbnails as data:
URIs, one inline script that pages and filters the duplicate groups. The work and the file
are bounded whatever the dataset size: the review lists at most ``max_groups`` groups (8
members each, as ids), with thumbnails or snippets for the first ``max_previews`` listed
members only (the only payloads read, besides the top picks); the map lays out at most
``max_points`` sampled rows; cluster sizes come from the dedup table (or k-means on a sample).
Its bytes depend only on the workspace and the config (no clock), so an export that holds it stays reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curate import __version__
from curate.decisions import DecisionRun, load_run, upstream
from curate.embed.store import StoredEmbeddings
from curate.errors import CurateError
from curate.inputs import Resolved
from curate.io.fs import Location, locate
from curate.report import audit_section, facts
from curate.report.embmap import EmbeddingMap, embedding_map
from curate.report.review import Review, review
from curate.report.thumbs import PREVIEW_COLUMNS, Preview, previews
from curate.workspace import Workspace

STAGES = ("dedup", "prune", "select")
SURVIVAL_STAGES = ("dedup", "prune")
# the stages whose survivors a stage runs on when its sidecar does not say (``upstream_runs``)
DEFAULT_UPSTREAM = {"dedup": (), "prune": ("dedup",), "select": ("dedup",)}


@dataclass(frozen=True)
class ReportConfig:
    """``out``: a file path (``.html``), a folder (gets ``report.html``), or None for ``WS/report.html``."""

    out: str | None = None
    max_groups: int = 100_000  # duplicate groups in the review (largest first); the page pages them
    max_previews: int = 1000  # thumbnails / snippets, for the members of the first groups; the rest by id
    max_points: int = 5000
    seed: int = 0
    run_ids: Mapping[str, str] | None = None  # stage -> run id; default: each stage's latest run
    model: str | None = None  # embedding store slug; default: the dedup run's, else the first store
    top_picks: int = 12


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows (see :func:`curate.report.html.render`)."""

    workspace: str
    version: str
    manifest_fingerprint: str | None
    counts: facts.Counts
    balance: facts.Balance | None
    clusters: facts.ClusterSizes | None
    review: Review | None
    map: EmbeddingMap | None
    model: str | None
    scores: list[facts.Scores]
    previews: dict[int, Preview] = field(default_factory=dict)
    text_dataset: bool = False
    ids: list[str] = field(default_factory=list)  # manifest ids, by row
    labels: list[str | None] = field(default_factory=list)  # manifest labels, by row
    audit: object = None  # curate.report.audit_section.AuditView; None without an audit run


def output_location(ws: Workspace, out: str | None) -> Location:
    if out is None:
        return ws.loc("report.html")
    loc = locate(out)
    return loc if loc.path.lower().endswith((".html", ".htm")) else loc.join("report.html")


def build_report(ws: Workspace, config: ReportConfig = ReportConfig(), progress: bool = False,
                 wait: bool = False) -> Location:
    """Write the report (the ``report`` stage: locked, reused while its inputs and the file are unchanged)
    and return where it went."""
    from curate.report.stage import report

    return locate(report(ws, config, progress=progress, wait=wait).meta["out"])


def gather(ws: Workspace, config: ReportConfig, resolved: Resolved, progress: bool = False) -> ReportData:
    """What the page shows, from the runs and the store the runner resolved (``curate.report.stage``)."""
    manifest = ws.read_manifest(sorted(set(PREVIEW_COLUMNS) | {"reason"}))
    runs = [resolved.runs[stage] for stage in STAGES if stage in resolved.runs]
    for run in runs:
        if not run.table.column("id").equals(manifest.column("id")):
            raise CurateError(f"{run.stage} run {run.run_id} was made for another manifest: rerun `curate {run.stage}`")
    by_stage = {run.stage: run for run in runs}
    metas = {run.stage: run.meta for run in runs}  # each run's sidecar, read once by the resolver
    up = upstream(ws, SURVIVAL_STAGES, {s: r.run_id for s, r in by_stage.items()}, manifest=manifest)

    inputs = {run.stage: _input_rows(ws, run, metas[run.stage], by_stage, manifest) for run in runs}
    counts = facts.counts(manifest, runs, metas, up.kept, inputs)
    balance = facts.balance(manifest.column("label").to_pylist(), up.kept)
    rv = review(by_stage.get("dedup"), metas.get("dedup", {}).get("method"), config.max_groups)
    store = resolved.store
    slug = store.slug if store is not None else None
    clusters = facts.cluster_sizes_from_run(by_stage.get("dedup"))
    if clusters is None and store is not None and _store_matches(store, manifest):
        clusters = facts.cluster_sizes_from_store(store.vectors, store.valid, config.seed)
    emap = None
    if store is not None and config.max_points and _store_matches(store, manifest):
        emap = embedding_map(store, up, config.max_points, config.seed)
    score_runs = [facts.scores(by_stage.get(stage), config.top_picks if stage == "select" else 0)
                  for stage in ("prune", "select")]
    scores = [s for s in score_runs if s is not None]

    listed = [m.row for g in (rv.groups if rv else []) for m in g.members][:config.max_previews]
    audit = audit_section.gather_audit(ws, manifest, (config.run_ids or {}).get("audit"))
    shown = listed + [r for s in scores for r, _ in s.picks] + (audit.rows if audit is not None else [])
    kinds = manifest.column("kind").to_pylist()
    return ReportData(
        workspace=ws.root.uri, version=__version__, manifest_fingerprint=ws.manifest_meta().get("fingerprint"),
        counts=counts, balance=balance, clusters=clusters, review=rv, map=emap,
        model=slug, scores=scores, previews=previews(manifest, shown, progress=progress),
        text_dataset=bool(kinds) and kinds.count("text") > len(kinds) / 2,
        ids=manifest.column("id").to_pylist(), labels=manifest.column("label").to_pylist(), audit=audit)



def _input_rows(ws: Workspace, run: DecisionRun, meta: dict, by_stage: dict[str, DecisionRun],
                manifest: pa.Table) -> tuple[np.ndarray, tuple[str, ...]]:
    """The rows ``run`` chose from and the stages that left them: the runs its sidecar names in
    ``upstream_runs`` (select and prune record them), else the stage's default upstream."""
    recorded = meta.get("upstream_runs")
    if isinstance(recorded, dict):
        stages = tuple(s for s in STAGES if s in recorded) + tuple(s for s in recorded if s not in STAGES)
        ids = {s: str(recorded[s]) for s in stages}
    else:
        stages = tuple(s for s in DEFAULT_UPSTREAM.get(run.stage, STAGES[:STAGES.index(run.stage)])
                       if s in by_stage)
        ids = {s: by_stage[s].run_id for s in stages}
    runs = []
    for stage in stages:
        shown = by_stage.get(stage)
        found = shown if shown is not None and shown.run_id == ids[stage] else load_run(ws, stage, ids[stage])
        found = found if found is not None else shown  # the recorded run is gone: the one shown here
        if found is not None and found.table.column("id").equals(manifest.column("id")):
            runs.append(found)
    kept = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
    for r in runs:
        kept &= facts.kept_mask(r)
    return kept, tuple(r.stage for r in runs)


def _store_matches(store: StoredEmbeddings, manifest: pa.Table) -> bool:
    """A store made for an older manifest cannot be coloured by this manifest's decisions."""
    rows = store.manifest_rows
    if not len(rows):
        return False
    if int(np.max(rows)) >= manifest.num_rows:
        return False
    ids = manifest.column("id")
    probe = np.linspace(0, len(rows) - 1, num=min(len(rows), 64)).astype(np.int64)
    return all(store.ids[i] == ids[int(rows[i])].as_py() for i in probe)
