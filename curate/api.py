"""The Python API: every stage with keyword settings, decision tables as Arrow.

    import curate

    ws = curate.open("ws")
    ws.ingest(["demo-data/images"])
    ws.embed(model="perceptual")
    ws.dedup(method="semantic", threshold=0.9)
    ws.prune(fraction=0.8, strategy="prototypes")
    ws.export(name="digits")
    table = ws.decisions("dedup")  # pyarrow.Table, one row per manifest id

Settings have the CLI option names (``shard_size`` for ``--shard-size``) and the same defaults,
because the CLI, pipeline files and this API build the same config dataclasses
(:mod:`curate.settings`). Every call runs through the one stage runner (:mod:`curate.runner`)
and returns a :class:`curate.runner.StageResult`; rerunning with the same inputs reuses the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from curate.errors import CurateError
from curate.runner import Stage, StageResult, run_stage
from curate.settings import all_fields, build_config
from curate.workspace import Workspace

DEDUP_METHODS = ("semantic", "exact", "knn", "fuzzy", "near")


def _dedup_stage(method: str) -> tuple[Stage, type, dict[str, Any]]:
    """The stage, config class and fixed settings of dedup ``method`` (fuzzy: near without the semantic signal)."""
    if method == "exact":
        from curate.dedup.exact import ExactDedup, ExactDedupConfig

        return ExactDedup(), ExactDedupConfig, {}
    if method == "knn":
        from curate.dedup.knn import KnnConfig, KnnDedup

        return KnnDedup(), KnnConfig, {}
    if method in ("fuzzy", "near"):
        from curate.dedup.near import NearConfig, NearDedup, method_settings

        return NearDedup(), NearConfig, method_settings(method)
    if method == "semantic":
        from curate.dedup.semantic import SemanticConfig, SemanticDedup

        return SemanticDedup(), SemanticConfig, {}
    raise CurateError(f"unknown dedup method {method!r} (choose from {', '.join(DEDUP_METHODS)})")


def method_fields(method: str) -> dict[str, Any]:
    """Every setting dedup ``method`` takes (name -> default): its config's fields less those it fixes."""
    _, cls, fixed = _dedup_stage(method)
    return {name: value for name, value in all_fields(cls).items() if name not in fixed}


def dedup_config(method: str, settings: dict[str, Any]) -> Any:
    """The config of dedup ``method`` from settings; a setting the method does not take is an error."""
    _, cls, fixed = _dedup_stage(method)
    where = f"dedup --method {method}"
    refused = [str(k) for k in settings if str(k).replace("-", "_") in fixed]
    if refused:
        raise CurateError(f"[{where}]: unknown setting(s) {', '.join(refused)}; valid: "
                          f"{', '.join(method_fields(method))}")
    return build_config(cls, settings, where, **fixed)


def run_dedup(ws: Workspace, config: Any, **run: Any) -> StageResult:
    """Run the dedup method whose config this is."""
    for method in DEDUP_METHODS:
        stage, cls, _ = _dedup_stage(method)
        if isinstance(config, cls):
            return run_stage(ws, stage, config, **run)
    raise CurateError(f"internal error: {type(config).__name__} is not a dedup config")


def stage_and_config(name: str, settings: dict[str, Any]) -> tuple[Stage, Any]:
    """The stage called ``name`` and its config built (and validated) from settings named like the CLI
    options; ``dedup`` takes ``method``, ``ingest`` takes ``sources``."""
    settings = dict(settings)
    if name == "ingest":
        from curate.ingest import Ingest, ingest_config

        sources = settings.pop("sources", None)
        if not sources or not isinstance(sources, (list, tuple)):
            raise CurateError("[ingest] needs `sources = [\"PATH or URI\", ...]`")
        stage, config = Ingest(), ingest_config({**settings, "sources": [str(s) for s in sources]})
    elif name == "dedup":
        stage, config = _dedup_from_settings(settings)
    elif name in _STAGES:
        stage, cls = _STAGES[name]()
        config = build_config(cls, settings, name)
    else:
        raise CurateError(f"unknown stage {name!r}")
    stage.validate(config)
    return stage, config


def _dedup_from_settings(settings: dict[str, Any]) -> tuple[Stage, Any]:
    """The dedup stage and config of a ``[dedup]`` table (or keywords): ``method`` picks the config."""
    given = "method" in settings
    method = settings.pop("method", "semantic")
    check_dedup_keys(method, settings, given)
    return _dedup_stage(method)[0], dedup_config(method, settings)


def check_dedup_keys(method: str, settings: dict[str, Any], given: bool = True) -> None:
    """Name the keys no dedup method takes first, listing every key a ``[dedup]`` table may have
    (``method`` too); only then keys that belong to another method than ``method`` (which may be
    the default), so a misspelled ``method`` key is not followed by errors about the fallback's keys."""
    keys = [str(k).replace("-", "_") for k in settings]
    valid = ["method", *dict.fromkeys(name for m in DEDUP_METHODS for name in method_fields(m))]
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise CurateError(f"[dedup]: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    own = method_fields(method)
    other = [k for k in keys if k not in own]
    if other:
        takers = [m for m in DEDUP_METHODS if all(k in method_fields(m) for k in other)]
        which = f"method = {method!r}" + ("" if given else " (the default)")
        hint = f"; set method = {' or '.join(map(repr, takers))} for them" if takers else ""
        raise CurateError(f"[dedup]: {which} does not take {', '.join(other)} (it takes {', '.join(own)}){hint}")


def _embed_stage() -> tuple[Stage, type]:
    from curate.embed.stage import Embed, EmbedConfig

    return Embed(), EmbedConfig


def _prune_stage() -> tuple[Stage, type]:
    from curate.prune.stage import Prune, PruneConfig

    return Prune(), PruneConfig


def _select_stage() -> tuple[Stage, type]:
    from curate.select.stage import Select, SelectConfig

    return Select(), SelectConfig


def _audit_stage() -> tuple[Stage, type]:
    from curate.audit.stage import Audit, AuditConfig

    return Audit(), AuditConfig


def _export_stage() -> tuple[Stage, type]:
    from curate.export.stage import Export, ExportConfig

    return Export(), ExportConfig


def _report_stage() -> tuple[Stage, type]:
    from curate.report.build import ReportConfig
    from curate.report.stage import Report

    return Report(), ReportConfig


def _drift_stage() -> tuple[Stage, type]:
    from curate.drift import Drift, DriftConfig

    return Drift(), DriftConfig


_STAGES: dict[str, Callable[[], tuple[Stage, type]]] = {
    "report": _report_stage, "drift": _drift_stage,
    "embed": _embed_stage, "audit": _audit_stage, "prune": _prune_stage, "select": _select_stage,
    "export": _export_stage}


def check_out_path(out: str | None) -> None:
    """``--out`` never overwrites: refuse an existing file before any work is done."""
    if out is None:
        return
    from curate.io.fs import locate

    if locate(out).exists():
        raise CurateError(f"--out {out} already exists; remove it or choose another path")


class Curation:
    """One workspace, with a method per stage. Build it with :func:`curate.open`."""

    def __init__(self, path: str, progress: bool = False, wait: bool = False) -> None:
        self.ws = Workspace(str(path))
        self.progress, self.wait = progress, wait

    def __repr__(self) -> str:
        return f"curate.open({self.ws.root.uri!r})"

    def run(self, stage_name: str, /, **settings: Any) -> StageResult:
        """Run stage ``stage_name`` with settings named like its CLI options (``shard_size`` for ``--shard-size``)."""
        stage, config = stage_and_config(stage_name, settings)
        return run_stage(self.ws, stage, config, progress=self.progress, wait=self.wait,
                         force=bool(getattr(config, "rehash", False)))

    def ingest(self, sources: list[str], **settings: Any) -> StageResult:
        """Read sources into the manifest; see ``curate ingest --help``."""
        return self.run("ingest", sources=sources, **settings)

    def embed(self, model: str = "perceptual", **settings: Any) -> StageResult:
        """Embed every ok sample with ``model``; see ``curate embed --help``."""
        return self.run("embed", model=model, **settings)

    def dedup(self, method: str = "semantic", **settings: Any) -> StageResult:
        """Remove duplicates with ``method``: ``semantic`` (default; embeddings), ``exact`` (identical bytes),
        ``knn`` (embedding neighbours above a threshold), ``fuzzy`` (MinHash for texts, perceptual hashes for
        images; every pair verified) or ``near`` (recommended: fuzzy's signals plus the embeddings' nearest
        neighbours; every pair verified); see ``curate dedup --help``."""
        return self.run("dedup", method=method, **settings)

    def audit(self, **settings: Any) -> StageResult:
        """Score every item for label errors and junk (removes nothing unless ``drop``); see ``curate audit --help``."""
        return self.run("audit", **settings)

    def prune(self, **settings: Any) -> StageResult:
        """Prune the kept pool to ``fraction`` or ``count``; see ``curate prune --help``."""
        return self.run("prune", **settings)

    def select(self, **settings: Any) -> StageResult:
        """Pick the next labeling batch of ``budget`` items; see ``curate select --help``."""
        return self.run("select", **settings)

    def export(self, **settings: Any) -> StageResult:
        """Write the kept samples as versioned shards; see ``curate export --help``."""
        return self.run("export", **settings)

    def report(self, out: str | None = None, **settings: Any) -> str:
        """Write report.html (default: in the workspace); returns where it went: a local path, or the URI
        on object storage (like ``meta["export"]`` and the decision files' paths). A rerun with the same
        inputs and settings reuses the page while it is unchanged."""
        return self.run("report", out=out, **settings).meta["out"]

    def manifest(self, columns: list[str] | None = None) -> pa.Table:
        """The manifest: one row per input sample, in ingest order."""
        return self.ws.read_manifest(columns)

    def decisions(self, stage: str, run_id: str | None = None) -> pa.Table:
        """The decision table of ``stage``'s latest run (or of ``run_id``): one row per manifest id."""
        from curate.decisions import latest_run

        run = latest_run(self.ws, stage, run_id)
        if run is None:
            raise CurateError(f"{stage} has no finished run in {self.ws.root.uri}")
        return run.table

    def runs(self, stage: str) -> list[dict]:
        """The sidecars of ``stage``'s finished runs, oldest first."""
        from curate.decisions import list_runs

        return list_runs(self.ws, stage)


def open(path: str, *, progress: bool = False, wait: bool = False) -> Curation:  # noqa: A001 - curate.open
    """Open (or name, for a first ingest) the workspace at ``path`` (a folder or a URI)."""
    return Curation(path, progress=progress, wait=wait)


