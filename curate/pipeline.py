"""``curate run pipeline.toml``: the whole flow from one file, resumable stage by stage.

The file names a ``workspace`` and has one table per stage to run, in this order:
``demo`` (build the demo data), ``ingest``, ``embed``, ``dedup``, ``audit``, ``prune``, ``select``,
``export``, ``report``. A table's keys are the stage's CLI option names (``shard-size`` or
``shard_size``, ``threshold``; lists for repeatable options); an unknown key is an error that
lists the valid ones. Every table is checked before the first stage runs. The workspace is
locked for the whole run. Relative paths are relative to the current directory. Every stage
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
from curate.io.fs import CAP_PIPELINE, UserFileError, locate, read_user_file
from curate.settings import build_config
from curate.workspace import Workspace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ORDER = ("demo", "ingest", "embed", "dedup", "audit", "prune", "select", "export", "report")


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    seconds: float
    summary: str


@dataclass
class Context:
    """The run so far: each table's result, for the stages after it (``Stage.in_flow``)."""

    ws: Workspace
    progress: bool
    results: dict[str, Any] = dataclasses.field(default_factory=dict)  # stage name -> StageResult
    outcomes: list[StageOutcome] = dataclasses.field(default_factory=list)


def load_pipeline(path: str | Path) -> dict:
    """Parse and check a pipeline file (clear errors for a missing file, bad TOML, unknown tables)."""
    try:
        text = read_user_file(locate(str(path)), what="pipeline file", max_bytes=CAP_PIPELINE).decode("utf-8")
    except UserFileError:
        raise  # already one line: not a regular file, too large, or missing
    except OSError as exc:
        raise CurateError(f"cannot read pipeline file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CurateError(f"{path} is not valid TOML: not UTF-8 text (byte {exc.start})") from None
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


@dataclass(frozen=True)
class Step:
    """One table of the file, checked and built into a config before anything runs."""

    name: str
    config: Any
    stage: Any = None  # a curate.runner.Stage; None for demo, which is not a workspace stage


def plan_step(name: str, spec: dict) -> Step:
    """Build (and validate) the config of one table: a mistake anywhere stops the run before it starts."""
    if name == "demo":
        folder = spec.pop("folder", "demo-data")
        kind = spec.pop("kind", "image")
        if kind == "text":
            from curate.demo_text import TextDemoConfig

            return Step(name, (folder, kind, build_config(TextDemoConfig, spec, "demo", also=("folder", "kind"))))
        from curate.demo import DemoConfig

        return Step(name, (folder, kind, build_config(DemoConfig, spec, "demo", also=("folder", "kind"))))
    from curate.api import stage_and_config

    stage, config = stage_and_config(name, spec)
    return Step(name, config, stage)


def check_flow(steps: list[Step], ws: Workspace) -> None:
    """What a table needs from the tables before it, checked before the first stage runs: a workspace
    stage needs a manifest (an ``[ingest]`` table, or one already in the workspace) and one that reads
    embeddings (semantic or knn dedup, prune, select by embeddings) an ``[embed]`` table or a store."""
    from curate.embed.store import list_stores

    earlier: set[str] = set()
    for step in steps:
        if step.stage is not None:
            what = f"[{step.name}]" + (f" ({step.stage.prefix(step.config)})" if step.name != "embed" else "")
            if step.stage.needs_manifest and "ingest" not in earlier and not ws.has_manifest():
                raise CurateError(f"{what} needs a manifest: add an [ingest] table before it "
                                  f"({ws.root.uri} has none yet)")
            if step.stage.needs_store(step.config) and "embed" not in earlier and not list_stores(ws):
                raise CurateError(f"{what} reads embeddings: add an [embed] table before it "
                                  f"({ws.root.uri} has no embedding store yet)")
        earlier.add(step.name)


def _run_step(step: Step, ctx: Context) -> str:
    if step.name == "demo":
        return _demo(*step.config)
    from curate.runner import run_stage

    config = step.stage.in_flow(step.config, ctx.results)
    result = run_stage(ctx.ws, step.stage, config, progress=ctx.progress,
                       force=bool(getattr(config, "rehash", False)))
    ctx.results[step.name] = result
    return SUMMARIES[step.name](result)


def _demo(folder: str, kind: str, config: Any) -> str:
    if kind == "text":
        from curate.demo_text import build_text_demo

        truth = build_text_demo(folder, config)
    else:
        from curate.demo import build_demo

        truth = build_demo(folder, config)
    return (f"{truth['file_count']:,} samples in {folder} ({truth['source_count']:,} originals, "
            f"{len(truth['exact_copies'])} exact and {len(truth['near_copies'])} near copies, "
            f"{len(truth['corrupt'])} corrupt)")


def _reused(r) -> str:
    return f"({r.run_id}{', reused' if r.reused else ''})"


SUMMARIES: dict[str, Callable[[Any], str]] = {
    "ingest": lambda r: (f"{r.meta['samples']:,} samples, {r.meta['quarantined']:,} quarantined; "
                         + ("unchanged, reused" if r.reused
                            else f"units read {r.meta['units_read']}, skipped {r.meta['units_skipped']}")),
    "embed": lambda r: (f"{r.meta['embedded']:,} embedded with {r.meta['slug']} on {r.meta['device']}, "
                        f"{r.meta['failed']:,} failed {_reused(r)}"),
    "dedup": lambda r: f"{r.meta['method']}: {_counts_line(r.table)} {_reused(r)}",
    "audit": lambda r: (f"{r.meta['label_issues']:,} label issues; flagged "
                        + (", ".join(f"{c} {v:,}" for c, v in r.meta["flagged"].items() if v) or "nothing")
                        + f"; {_counts_line(r.table)} {_reused(r)}"),
    "prune": lambda r: f"{_counts_line(r.table)} {_reused(r)}",
    "select": lambda r: f"{r.meta['picked']:,} picked for labeling -> {r.meta['export']} {_reused(r)}",
    "export": lambda r: (f"version {r.meta['version']} ({'reused' if r.reused else 'written'}): "
                         f"{r.meta['exported']:,} samples, {len(r.meta['shards'])} shards"),
    "report": lambda r: f"{r.meta['out']} {_reused(r)}",
}


def run_pipeline(path: str | Path, progress: bool = True, on_stage: Callable[[StageOutcome], None] | None = None,
                 wait: bool = False) -> list[StageOutcome]:
    """Check every table of the file, then run the stages in flow order under one workspace lock."""
    from curate.runner import writing

    spec = load_pipeline(path)
    steps = [plan_step(name, dict(spec[name])) for name in ORDER if name in spec]
    ctx = Context(Workspace(spec["workspace"]), progress)
    check_flow(steps, ctx.ws)
    with writing(ctx.ws, f"curate run {path}", wait=wait):
        for step in steps:
            start = time.perf_counter()
            summary = _run_step(step, ctx)
            outcome = StageOutcome(step.name, time.perf_counter() - start, summary)
            ctx.outcomes.append(outcome)
            if on_stage is not None:
                on_stage(outcome)
    return ctx.outcomes
