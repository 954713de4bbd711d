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
from curate.settings import build_config
from curate.workspace import Workspace

DEDUP_METHODS = ("semantic", "exact", "knn")


def _dedup_stage(method: str) -> tuple[Stage, type]:
    if method == "exact":
        from curate.dedup.exact import ExactDedup, ExactDedupConfig

        return ExactDedup(), ExactDedupConfig
    if method == "knn":
        from curate.dedup.knn import KnnConfig, KnnDedup

        return KnnDedup(), KnnConfig
    if method == "semantic":
        from curate.dedup.semantic import SemanticConfig, SemanticDedup

        return SemanticDedup(), SemanticConfig
    raise CurateError(f"unknown dedup method {method!r} (choose from {', '.join(DEDUP_METHODS)})")


def dedup_config(method: str, settings: dict[str, Any]) -> Any:
    """The config of dedup ``method`` from settings; a setting the method does not take is an error."""
    return build_config(_dedup_stage(method)[1], settings, f"dedup --method {method}")


def run_dedup(ws: Workspace, config: Any, **run: Any) -> StageResult:
    """Run the dedup method whose config this is."""
    for method in DEDUP_METHODS:
        stage, cls = _dedup_stage(method)
        if isinstance(config, cls):
            return run_stage(ws, stage, config, **run)
    raise CurateError(f"internal error: {type(config).__name__} is not a dedup config")


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

    def _run(self, stage: Stage, cls: type, settings: dict[str, Any], where: str, **fixed: Any) -> StageResult:
        config = build_config(cls, settings, where, **fixed)
        return run_stage(self.ws, stage, config, progress=self.progress, wait=self.wait)

    def dedup(self, method: str = "semantic", **settings: Any) -> StageResult:
        """Remove duplicates (``semantic``, ``exact`` or ``knn``); see ``curate dedup --help``."""
        stage, cls = _dedup_stage(method)
        return self._run(stage, cls, settings, f"dedup --method {method}")

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


StageCall = Callable[..., StageResult]
