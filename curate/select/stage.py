"""The select stage: choose the next labeling batch and record why every item was (not) chosen.

A run is three steps: the candidate pool (``pool``: manifest rows kept upstream, not labeled, with
what the strategy needs; review overrides), the round (``round``: its number, the seeded strategy
from ``registry`` picking up to ``budget``) and the hand-off (``handoff``: the batch exported for a
labeling tool, with ``labeling-config.xml`` and ``LABELING.md`` beside a Label Studio export). The
run is recorded as ``decisions/select/<run-id>.parquet``: one row per manifest id with
``id``, ``kept`` (= selected), ``reason`` (null | ``not-selected`` | ``labeled`` |
``no-prediction`` | ``no-embedding`` | ``query`` | upstream reasons), ``score``, ``rank`` (and
for ``similar``: ``query``, the query that mined the pick; ``score`` is its cosine to it); the
sidecar holds the round (one per labeled set), strategy and config. Same inputs + config + seed
-> same batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from curate.decisions import list_runs
from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Resolved, Store, Upstream, UserFile
from curate.io.fs import CAP_ID_LIST, locate
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.select import STAGE, registry
from curate.select.exports import guess_format
from curate.select.handoff import hand_off
from curate.select.pool import Candidates, build_pool
from curate.select.registry import BatchOptions, dup_threshold
from curate.select.round import Picks, pick
from curate.workspace import Workspace

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class HandoffOptions:
    """Where the batch goes: the export file for the labeling tool (not part of the decision)."""

    out: str | None = None  # export file; None: no export
    format: str | None = None  # labelstudio | csv | parquet; None: by extension
    data_key: str | None = None
    document_root: str | None = None
    force: bool = False  # overwrite an export / labeling files that another select run wrote


@dataclass(frozen=True)
class SelectConfig:
    """Flat names reach the nested options too (``dup_threshold=0.8``, ``out="batch.json"``) through
    :func:`select_config`, the CLI and pipeline files."""

    budget: int
    strategy: str = "hybrid"
    predictions: str | None = None  # Parquet with id, or .npy/.npz aligned with the manifest's ok rows
    labeled: str | None = None  # ids already labeled (txt / CSV / Parquet with id[, label]); None: manifest labels
    probe: bool = False  # no model yet: train a linear probe on the labeled embeddings
    queries: str | None = None  # similar: workspace ids file, or a folder / .jsonl of external items
    model: str | None = None  # embedding store slug or model spec; None: the only one, else the dedup run's
    round: int | None = None  # None: that of earlier runs with the same labeled set, else the next
    seed: int = 0
    upstream: tuple[str, ...] = ("dedup",)
    device: str = "auto"
    batch: BatchOptions = BatchOptions()
    handoff: HandoffOptions = HandoffOptions()


LATER_KNOBS = ("class_aware", "density", "knn", "cap")  # batch options that reached the CLI and pipeline files later


def select_config(**settings: Any) -> SelectConfig:
    """A :class:`SelectConfig` from flat settings named like the CLI options."""
    from curate.settings import build_config

    return build_config(SelectConfig, settings, "select")


def _check(config: SelectConfig) -> registry.Strategy:
    if config.budget <= 0:
        raise CurateError(f"--budget must be positive, got {config.budget}")
    strategy = registry.get(config.strategy)
    if config.predictions and config.probe:
        raise CurateError("give either --predictions or --probe, not both")
    if "mc" in strategy.needs and not config.predictions:
        raise CurateError(f"strategy {config.strategy} needs MC-dropout samples: pass --predictions with an `mc` "
                          "column (Parquet) or an [N, T, C] array")
    if "probs" in strategy.needs and not (config.predictions or config.probe):
        raise CurateError(f"strategy {config.strategy} needs model predictions: pass --predictions FILE, or --probe "
                          "to train a linear probe on the labeled items")
    batch = config.batch
    if batch.uncertainty not in ("margin", "entropy", "least-confidence"):
        raise CurateError(f"unknown uncertainty {batch.uncertainty!r} (margin, entropy, least-confidence)")
    dup_threshold(batch.dup_threshold)
    if batch.min_similarity is not None:
        if not -1.0 <= batch.min_similarity <= 1.0:
            raise CurateError("--min-similarity must be a cosine similarity in [-1, 1]")
        if "queries" not in strategy.needs:
            raise CurateError(f"--min-similarity is for --strategy similar, not {config.strategy}")
    if "queries" in strategy.needs and not config.queries:
        raise CurateError(f"strategy {config.strategy} needs --queries (workspace ids, or a folder / .jsonl of "
                          "external images or texts)")
    if config.queries and "queries" not in strategy.needs:
        raise CurateError(f"--queries is for --strategy similar, not {config.strategy}")
    if batch.per_query is not None and batch.per_query <= 0:
        raise CurateError(f"--per-query must be positive, got {batch.per_query}")
    for name in ("knn", "cap"):
        if getattr(batch, name) < 1:
            raise CurateError(f"--{name} must be positive, got {getattr(batch, name)}")
    for name in ("power", "density"):
        if not getattr(batch, name) >= 0:
            raise CurateError(f"--{name} must be 0 or more, got {getattr(batch, name)}")
    _check_upstream(config.upstream)
    if config.handoff.out:
        guess_format(config.handoff.out, config.handoff.format)  # an unknown --out suffix: before any work
    return strategy


def _check_upstream(stages: tuple[str, ...]) -> None:
    """--upstream names decision stages (select follows no select run)."""
    if tuple(stages) == SelectConfig.upstream:
        return
    from curate.export.stage import DECISION_STAGES  # only for a non-default --upstream: it imports torch

    for stage in stages:
        if stage not in DECISION_STAGES or stage == STAGE:
            names = ", ".join(s for s in DECISION_STAGES if s != STAGE)
            raise CurateError(f"--upstream {stage!r} is no stage whose removals select follows (choose from {names})")


class Select(Stage):
    """``curate select`` on the runner: reads the manifest, upstream runs, a store, predictions, labeled ids."""

    name = STAGE
    config_type = SelectConfig
    applies_overrides_itself = True  # reviewed ids are picked or barred before the batch is exported

    def validate(self, config: SelectConfig) -> None:
        _check(config)

    def prefix(self, config: SelectConfig) -> str:
        return config.strategy

    def needs_store(self, config: SelectConfig) -> bool:
        needs = registry.get(config.strategy).needs
        return config.probe or "embeddings" in needs or "store" in needs

    def settings(self, config: SelectConfig) -> dict:
        # where the batch goes is not part of the decision (a missing export file is rewritten: is_current)
        out = config_dict(replace(config, handoff=HandoffOptions()))
        for name in LATER_KNOBS:  # at their defaults, the knobs added later leave the run ids as they were
            if out["batch"][name] == BatchOptions.__dataclass_fields__[name].default:
                del out["batch"][name]
        return out

    def inputs(self, config: SelectConfig) -> tuple:
        return (Manifest(), Upstream(tuple(config.upstream)),
                Store(prefer="dedup", need="always" if self.needs_store(config) else "never"),
                UserFile("predictions"), UserFile("labeled", max_bytes=CAP_ID_LIST), UserFile("queries"), Overrides())

    def is_current(self, ws: Workspace, meta: dict) -> bool:
        """A finished run is reused only while the batch file it exported is still there."""
        return meta.get("export") is None or locate(meta["export"]).exists()

    def compute(self, ctx: RunContext) -> Output:
        return _select(ctx.ws, ctx.config, ctx.inputs, ctx.run_id, ctx.device)


def select(ws: Workspace, config: SelectConfig, **run: Any) -> StageResult:
    """Pick the batch, write the decision table (and the export when ``config.handoff.out``)."""
    return run_stage(ws, Select(), config, **run)


def picked(result: StageResult) -> list[str]:
    """The ids a select run picked, in rank order."""
    table = result.table.filter(result.table.column("kept"))
    order = np.argsort(table.column("rank").to_numpy(zero_copy_only=False), kind="stable")
    return [table.column("id")[int(i)].as_py() for i in order]


def _select(ws: Workspace, config: SelectConfig, inputs: Resolved, run_id: str, device: torch.device) -> Output:
    """Pool (what may be picked), round (its number, the strategy's picks), hand-off (the export)."""
    cand = build_pool(ws, config, inputs, device)
    earlier = list_runs(ws, STAGE)
    picks = pick(config, cand, run_id, earlier, device)
    facts = _facts(config, cand, picks)
    facts.update(hand_off(ws, run_id, config, cand, picks, earlier))
    return Output(_table(cand, picks), facts)


def _facts(config: SelectConfig, cand: Candidates, picks: Picks) -> dict[str, Any]:
    """The run's sidecar facts (``export`` and ``handoff`` are the hand-off's)."""
    facts = {"strategy": config.strategy, "round": picks.round, "budget": config.budget,
             "picked": len(picks.pool_rows), "candidates": int(cand.mask.sum()), "labeled": int(cand.labeled.sum()),
             "labeled_from": cand.known.source, "labeled_set": picks.labeled_set, "model": cand.slug,
             "warmup": picks.warmup, "predictions": config.predictions, "labeled_file": config.labeled,
             "probe": config.probe, "upstream_runs": {r.stage: r.run_id for r in cand.up.runs},
             "query_failures": [], "export": None, "handoff": None}
    queries = cand.queries
    if queries is not None:
        facts.update({"queries": config.queries, "queries_used": len(queries.names),
                      "queries_external": queries.external,
                      "query_failures": [list(f) for f in queries.failures[:1000]],
                      "retrieval": "exact" if cand.index is None else f"index:{cand.index.kind}",
                      "min_similarity": config.batch.min_similarity, "weak_queries": picks.weak})
    return facts


def _table(cand: Candidates, picks: Picks) -> pa.Table:
    """The decision table: one row per manifest id (picked: kept, rank, score; else why not)."""
    manifest, picked, scores, pick_query = cand.manifest, picks.rows, picks.scores, picks.query
    n = manifest.num_rows
    reason = np.array(["not-selected"] * n, dtype=object)
    reason[~cand.has_pred] = "no-prediction"
    reason[~cand.has_emb] = "no-embedding"
    reason[cand.is_query & cand.has_emb] = "query"
    for i in np.flatnonzero(~cand.available):
        reason[i] = cand.up.reasons[i]
    reason[cand.labeled] = "labeled"
    reason[picked] = None
    kept = np.zeros(n, dtype=bool)
    kept[picked] = True
    score = np.full(n, np.nan)
    score[picked] = scores
    rank = np.full(n, -1, dtype=np.int64)
    rank[picked] = np.arange(1, len(picked) + 1)
    columns = {
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.array(reason.tolist(), pa.string()),
        "score": pa.array(score, pa.float64(), mask=~np.isfinite(score)),
        "rank": pa.array(rank, pa.int64(), mask=rank < 0),
    }
    if pick_query is not None:
        query = np.full(n, None, dtype=object)
        query[picked] = pick_query
        columns["query"] = pa.array(query.tolist(), pa.string())
    return pa.table(columns)
