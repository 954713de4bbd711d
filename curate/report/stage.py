"""``curate report`` on the runner: one stage, locked, with a run id, a sidecar and reuse.

Inputs: the manifest, the latest (or ``run_ids``-pinned) dedup, prune, select and audit runs, and the
embedding store of the map (``model``, else the one the dedup run read, else the only or first one;
none when the workspace has no store). The output is a file, not a decision table: the sidecar
``decisions/report/<run-id>.json`` records where ``report.html`` went, its size and content hash,
and a rerun with the same inputs and config reuses the run while that file is still there unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from curate.errors import CurateError
from curate.inputs import Manifest, Store, Upstream
from curate.io import atomic
from curate.io.fs import locate
from curate.report.build import STAGES, ReportConfig, gather, output_location
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, file_facts, file_is_current, run_stage
from curate.workspace import Workspace


class Report(Stage):
    name = "report"
    config_type = ReportConfig

    def validate(self, config: ReportConfig) -> None:
        if min(config.max_points, config.max_groups, config.max_previews) < 0:
            raise CurateError("max_points, max_groups and max_previews must not be negative")

    def settings(self, config: ReportConfig) -> dict:
        out = config_dict(config)
        out["out"] = None if config.out is None else locate(config.out).uri  # a relative --out: from here
        return out

    def inputs(self, config: ReportConfig) -> tuple:
        pins = tuple(sorted((str(k), str(v)) for k, v in (config.run_ids or {}).items()))
        # the audit run too: the page's audit section reads it (a workspace without one fingerprints the same)
        return (Manifest(), Upstream((*STAGES, "audit"), pins=pins), Store(prefer="dedup", need="if-any", first=True))

    def in_flow(self, config: ReportConfig, earlier: dict[str, StageResult]) -> ReportConfig:
        """In ``curate run``, the report goes next to the export the file made (unless ``out`` says)."""
        if config.out is not None or "export" not in earlier:
            return config
        return replace(config, out=locate(earlier["export"].meta["folder"]).join("report.html").uri)

    def is_current(self, ws: Workspace, meta: dict) -> bool:
        return file_is_current(meta)

    def compute(self, ctx: RunContext) -> Output:
        from curate.report.html import render

        data = gather(ctx.ws, ctx.config, ctx.inputs, ctx.progress)
        ctx.lap("gather")
        page = render(data).encode("utf-8")
        ctx.lap("render")
        dest = output_location(ctx.ws, ctx.config.out)
        atomic.write_bytes(dest, page)
        return Output(None, file_facts(dest, page))


def report(ws: Workspace, config: ReportConfig = ReportConfig(), **run: Any) -> StageResult:
    """Write ``report.html`` (``meta["out"]``), or reuse the run that wrote it."""
    return run_stage(ws, Report(), config, **run)
