"""``curate run pipeline.toml``: the whole flow from one file, resumable stage by stage.

The file names a ``workspace`` and has one table per stage to run, in this order:
``demo`` (build the demo data), ``ingest``, ``embed``, ``dedup``, ``prune``, ``select``,
``export``, ``report``. A table's keys are the fields of that stage's config dataclass
(nested dataclasses as sub-tables, lists for tuples); an unknown key is an error that
lists the valid ones. Relative paths are relative to the current directory. Every stage
reuses what is already done, so a rerun after a crash picks up where the last one stopped.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.decisions import decision_counts
from curate.errors import CurateError
from curate.io.fs import locate
from curate.settings import build_config
from curate.workspace import Workspace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ORDER = ("demo", "ingest", "embed", "dedup", "prune", "select", "export", "report")


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    seconds: float
    summary: str


@dataclass
class Context:
    """What later stages need from earlier ones (the export folder for the report)."""

    ws: Workspace
    progress: bool
    export_folder: Any = None
    outcomes: list[StageOutcome] = dataclasses.field(default_factory=list)


def load_pipeline(path: str | Path) -> dict:
    """Parse and check a pipeline file (clear errors for a missing file, bad TOML, unknown tables)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CurateError(f"cannot read pipeline file {path}: {exc.strerror or exc}") from exc
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CurateError(f"{path} is not valid TOML: {exc}") from exc
    if not isinstance(spec.get("workspace"), str):
        raise CurateError(f"{path} needs a top-level `workspace = \"PATH\"`")
    unknown = sorted(set(spec) - set(ORDER) - {"workspace"})
    if unknown:
        raise CurateError(f"{path}: unknown table(s) {', '.join(unknown)}; stages are {', '.join(ORDER)}")
    for stage in ORDER:
        if stage in spec and not isinstance(spec[stage], dict):
            raise CurateError(f"{path}: `{stage}` must be a table ([{stage}])")
    return spec


def _counts_line(table) -> str:
    counts = decision_counts(table)
    removed = ", ".join(f"{k} {v:,}" for k, v in counts.items() if k != "kept")
    return f"kept {counts['kept']:,}" + (f"; removed {removed}" if removed else "")


def _demo(spec: dict, ctx: Context) -> str:
    folder = spec.pop("folder", "demo-data")
    if spec.pop("kind", "image") == "text":
        from curate.demo_text import TextDemoConfig, build_text_demo

        truth = build_text_demo(folder, build_config(TextDemoConfig, spec, "demo"))
    else:
        from curate.demo import DemoConfig, build_demo

        truth = build_demo(folder, build_config(DemoConfig, spec, "demo"))
    return (f"{truth['file_count']:,} samples in {folder} ({truth['source_count']:,} originals, "
            f"{len(truth['exact_copies'])} exact and {len(truth['near_copies'])} near copies, "
            f"{len(truth['corrupt'])} corrupt)")


def _ingest(spec: dict, ctx: Context) -> str:
    from curate.ingest import IngestConfig, ingest

    sources = spec.get("sources")
    if not sources or not isinstance(sources, list):
        raise CurateError("[ingest] needs `sources = [\"PATH or URI\", ...]`")
    config = build_config(IngestConfig, {k: v for k, v in spec.items() if k != "sources"}, "ingest",
                          progress=spec.get("progress", ctx.progress))
    r = ingest(ctx.ws, [str(s) for s in sources], config)
    return (f"{r.samples:,} samples, {r.quarantined:,} quarantined; units read {r.units_read}, "
            f"skipped {r.units_skipped}")


def _embed(spec: dict, ctx: Context) -> str:
    from curate.embed.stage import EmbedConfig, embed

    m = embed(ctx.ws, build_config(EmbedConfig, spec, "embed"), progress=ctx.progress).meta
    return (f"{m['embedded']:,} embedded with {m['slug']} on {m['device']}, {m['failed']:,} failed; shards done "
            f"{m['shards_done']}, reused {m['shards_skipped']}")


def _dedup(spec: dict, ctx: Context) -> str:
    from curate.api import dedup_config, run_dedup

    method = spec.pop("method", "semantic")
    run = run_dedup(ctx.ws, dedup_config(method, spec), progress=ctx.progress)
    return f"{method}: {_counts_line(run.table)} ({run.run_id}{', reused' if run.reused else ''})"


def _prune(spec: dict, ctx: Context) -> str:
    from curate.prune.stage import PruneConfig, prune

    run = prune(ctx.ws, build_config(PruneConfig, spec, "prune"), progress=ctx.progress)
    return f"{_counts_line(run.table)} ({run.run_id}{', reused' if run.reused else ''})"


def _select(spec: dict, ctx: Context) -> str:
    from curate.select.stage import SelectConfig, select

    result = select(ctx.ws, build_config(SelectConfig, spec, "select"), progress=ctx.progress)
    return f"{result.meta['picked']:,} picked for labeling -> {result.meta['export']}"


def _export(spec: dict, ctx: Context) -> str:
    from curate.export.stage import ExportConfig, export

    r = export(ctx.ws, build_config(ExportConfig, spec, "export"), progress=ctx.progress)
    ctx.export_folder = locate(r.meta["folder"])
    state = "reused" if r.reused else "written"
    return f"version {r.meta['version']} ({state}): {r.meta['exported']:,} samples, {len(r.meta['shards'])} shards"


def _report(spec: dict, ctx: Context) -> str:
    from curate.report.build import ReportConfig, build_report

    fixed = {}
    if "out" not in spec and ctx.export_folder is not None:
        fixed["out"] = ctx.export_folder.join("report.html").uri
    return f"{build_report(ctx.ws, build_config(ReportConfig, spec, 'report', **fixed)).uri}"


RUNNERS: dict[str, Callable[[dict, Context], str]] = {
    "demo": _demo, "ingest": _ingest, "embed": _embed, "dedup": _dedup, "prune": _prune, "select": _select,
    "export": _export, "report": _report,
}


def run_pipeline(path: str | Path, progress: bool = True,
                 on_stage: Callable[[StageOutcome], None] | None = None) -> list[StageOutcome]:
    """Run every stage the file names, in flow order; returns one outcome per stage."""
    spec = load_pipeline(path)
    ctx = Context(Workspace(spec["workspace"]), progress)
    for stage in ORDER:
        if stage not in spec:
            continue
        start = time.perf_counter()
        summary = RUNNERS[stage](dict(spec[stage]), ctx)
        outcome = StageOutcome(stage, time.perf_counter() - start, summary)
        ctx.outcomes.append(outcome)
        if on_stage is not None:
            on_stage(outcome)
    return ctx.outcomes
