"""Prune the pool that earlier stages kept to a target size, keeping diversity and class balance.

Candidates are the rows every earlier stage kept (``curate.decisions.upstream``: manifest ``ok``
and kept by the latest dedup and audit runs; ``drop``: also not flagged by those audit checks,
``curate.audit.drops``) that have an embedding. Labeled ids (``labeled``) are always
kept and count towards the target; k-center greedy starts from them. The target is
``count`` items, or ``fraction`` of (candidates + labeled). With ``balance_by`` the target
is first split into per-class quotas (``quotas.py``), then each class is pruned on its own.

Output: ``decisions/prune/<strategy>-<fingerprint>.parquet``, one row per manifest id:
``kept``, ``reason`` ("pruned", "no-embedding", or the upstream reason such as
"dedup: semantic-duplicate"), ``score`` (the strategy's, null off the candidates), ``rank``
(keep order: labeled first, then a prefix of the rank order is a smaller selection of the
same kind), ``cluster`` (prototypes/balanced) and ``labeled``. A rerun with the same inputs
and config reuses the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from curate.audit.drops import check_drop, with_drops
from curate.decisions import upstream
from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Resolved, Store, Upstream, UserFile
from curate.manifest import SCHEMA
from curate.prune import strategies
from curate.prune.prototypes import KEEPS, fit_prototypes, interleave
from curate.prune.quotas import class_quotas, parse_distribution
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.select.idlist import read_ids
from curate.workspace import Workspace

STAGE = "prune"
STRATEGIES = ("kcenter", "prototypes", "balanced")
UPSTREAM = ("dedup", "audit")  # the audit only counts once it has run (no run: no key, same run ids)
NO_LABEL = "(none)"


@dataclass(frozen=True)
class PruneConfig:
    fraction: float | None = None  # of candidates + labeled; exactly one of fraction / count
    count: int | None = None
    strategy: str = "kcenter"  # kcenter | prototypes | balanced
    balance_by: str | None = None  # manifest column whose classes get quotas (equal, or target_distribution)
    target_distribution: str | Mapping[str, float] | None = None  # "cat=0.5,dog=0.5"; implies balance_by=label
    keep: str = "hard"  # prototypes/balanced: hard (far from the prototype) | easy
    labeled: str | None = None  # file of ids always kept (k-center starts from them)
    clusters: int | None = None  # prototypes/balanced: k-means clusters (default about sqrt(N))
    model: str | None = None  # embedding store slug; None: the only one
    seed: int = 0
    device: str = "auto"
    drop: tuple[str, ...] = ()  # audit checks (or label-issue) whose flagged items are removed ("audit: <check>")


def validate(config: PruneConfig) -> None:
    """One-line errors for configs that cannot run."""
    if (config.fraction is None) == (config.count is None):
        raise CurateError("give exactly one of --fraction and --count")
    if config.fraction is not None and not 0.0 < config.fraction <= 1.0:
        raise CurateError(f"--fraction must be in (0, 1], not {config.fraction:g}")
    if config.count is not None and config.count < 0:
        raise CurateError(f"--count must be >= 0, not {config.count}")
    if config.strategy not in STRATEGIES:
        raise CurateError(f"unknown strategy {config.strategy!r} (choose from {', '.join(STRATEGIES)})")
    if config.keep not in KEEPS:
        raise CurateError(f"--keep must be one of {', '.join(KEEPS)}, not {config.keep!r}")
    if config.clusters is not None and config.clusters < 1:
        raise CurateError(f"--clusters must be >= 1, not {config.clusters}")


class Prune(Stage):
    """``curate prune`` on the runner: reads the manifest, one store, the latest dedup run, a labeled file."""

    name = STAGE
    config_type = PruneConfig

    def validate(self, config: PruneConfig) -> None:
        validate(config)
        if config.target_distribution:
            parse_distribution(config.target_distribution)

    def prefix(self, config: PruneConfig) -> str:
        return config.strategy

    def check(self, ws: Workspace, config: PruneConfig) -> None:
        check_drop(ws, config.drop)

    def settings(self, config: PruneConfig) -> dict:
        out = config_dict(config)
        if not config.drop:
            out.pop("drop")  # runs without --drop keep their ids
        return out

    def inputs(self, config: PruneConfig) -> tuple:
        return (Manifest(), Upstream(UPSTREAM), Store(prefer="dedup"), UserFile("labeled", parse=read_ids),
                Overrides())

    def compute(self, ctx: RunContext) -> Output:
        return _prune(ctx.ws, ctx.config, ctx.inputs, ctx.device)


def prune(ws: Workspace, config: PruneConfig = PruneConfig(fraction=0.5), **run: Any) -> StageResult:
    """Decide which candidates to keep; reuse the run when manifest, store, upstream runs and config match."""
    return run_stage(ws, Prune(), config, **run)


def _prune(ws: Workspace, config: PruneConfig, inputs: Resolved, device: torch.device) -> Output:
    store, labeled_ids = inputs.store, inputs.files["labeled"] or []
    distribution = parse_distribution(config.target_distribution) if config.target_distribution else None
    balance_by = config.balance_by or ("label" if distribution else None)
    if balance_by is not None and balance_by not in SCHEMA.names:
        raise CurateError(f"unknown label column {balance_by!r} for --balance-by "
                          f"(manifest columns: {', '.join(SCHEMA.names)})")
    manifest = ws.read_manifest(list(dict.fromkeys(["id", "status", "reason", "label", balance_by or "label"])))
    up = upstream(ws, UPSTREAM, manifest=manifest.select(["id", "status", "reason"]),
                  runs=with_drops(inputs.runs, config.drop))
    upstream_runs = {run.stage: run.run_id for run in up.runs}
    n = manifest.num_rows
    srow = store.store_rows(n)  # store row of each manifest row with a valid embedding
    messages: list[str] = []
    labeled = _labeled_rows(manifest, labeled_ids, up.kept, messages)
    candidate = up.kept & (srow >= 0) & ~labeled
    classes = _classes(manifest, balance_by)
    base = int(candidate.sum() + labeled.sum())
    target = min(config.count, base) if config.count is not None else int(np.floor(config.fraction * base + 0.5))
    if config.count is not None and config.count > base:
        messages.append(f"--count {config.count:,} is more than the {base:,} items available: keeping all")

    quotas, quota_msgs = _quotas(classes, candidate | labeled, target, balance_by, distribution)
    messages += quota_msgs
    score = np.full(n, np.nan, dtype=np.float32)
    cluster = np.full(n, -1, dtype=np.int64)
    labels = dist = None
    k = 0
    if config.strategy != "kcenter":
        cand_store = np.zeros(len(store.valid), dtype=bool)
        cand_store[srow[candidate]] = True
        labels, dist, k = fit_prototypes(store.vectors, cand_store, config.clusters, config.seed, device)
        cluster[candidate] = labels[srow[candidate]]
    parts, radius = [], []
    for name, members in _groups(classes):
        quota = quotas.get(name, 0)
        group_labeled = members[labeled[members]]
        budget = quota - len(group_labeled)
        if budget < 0:
            messages.append(f"{_what(name, balance_by)} has {len(group_labeled):,} labeled items, more than its "
                            f"quota of {quota:,}: all labeled items are kept, nothing else")
        rows = members[candidate[members]]  # manifest rows, increasing (so are their store rows)
        if config.strategy == "kcenter":
            centers = srow[group_labeled[srow[group_labeled] >= 0]]
            pick = strategies.kcenter_group(store.vectors, srow[rows], centers, max(budget, 0), device)
            radius.append(pick.radius)
        else:
            pick = strategies.prototype_group(srow[rows], labels, dist, max(budget, 0), config.keep,
                                              config.strategy == "balanced")
        score[rows] = pick.scores
        parts.append(_to_manifest(store.manifest_rows, pick.picks))
    order = np.concatenate([np.flatnonzero(labeled), interleave(parts)])
    table = _table(manifest, up.reasons, labeled, candidate, order, score, cluster, config.strategy != "kcenter")
    report = {"strategy": config.strategy, "model": store.slug, "balance_by": balance_by,
              "target_distribution": _jsonable(distribution), "upstream_runs": upstream_runs, "target": target,
              "candidates": int(candidate.sum()),
              "labeled_kept": int(labeled.sum()), "clusters": k, "messages": messages,
              "quotas": _quota_report(quotas, classes, candidate | labeled, order, balance_by),
              "by_class": _by_class(manifest, balance_by, up.kept, order),
              "radius": _finite_max(radius)}
    return Output(table, report)

def _labeled_rows(manifest: pa.Table, ids: list[str], kept: np.ndarray, messages: list[str]) -> np.ndarray:
    """Manifest rows of the labeled ids that earlier stages kept (a note for the others)."""
    row_of = {sid: i for i, sid in enumerate(manifest.column("id").to_pylist())} if ids else {}
    rows = np.array([row_of[i] for i in ids if i in row_of], dtype=np.int64)
    if len(rows) < len(ids):
        messages.append(f"{len(ids) - len(rows):,} labeled ids are not in the manifest (ignored)")
    mask = np.zeros(manifest.num_rows, dtype=bool)
    mask[rows] = True
    removed = int((mask & ~kept).sum())
    if removed:
        messages.append(f"{removed:,} labeled items were removed by an earlier stage (dedup or quarantine) "
                        "and stay removed")
    return mask & kept


def _classes(manifest: pa.Table, column: str | None) -> np.ndarray:
    if column is None:
        return np.full(manifest.num_rows, NO_LABEL, dtype=object)
    values = manifest.column(column).to_pylist()
    return np.array([NO_LABEL if v is None else str(v) for v in values], dtype=object)


def _groups(classes: np.ndarray):
    """(class, its manifest rows in order) for every class, in sorted class order."""
    names, codes = np.unique(classes, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    offsets = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for c, name in enumerate(names):
        yield name, order[offsets[c]:offsets[c + 1]]


def _quotas(classes: np.ndarray, pool: np.ndarray, target: int, balance_by: str | None,
            distribution: dict | None) -> tuple[dict[str, int], list[str]]:
    if balance_by is None:
        return {NO_LABEL: target}, []
    available = Counter(classes[pool].tolist())
    rows, msgs = class_quotas(target, available, distribution)
    return {r.name: r.quota for r in rows}, msgs


def _to_manifest(manifest_rows: np.ndarray, store_rows: np.ndarray) -> np.ndarray:
    return manifest_rows[np.asarray(store_rows, dtype=np.int64)].astype(np.int64)


def _table(manifest: pa.Table, upstream_reasons: list, labeled: np.ndarray, candidate: np.ndarray,
           order: np.ndarray, score: np.ndarray, cluster: np.ndarray, clustered: bool) -> pa.Table:
    n = manifest.num_rows
    kept = np.zeros(n, dtype=bool)
    kept[order] = True
    rank = np.full(n, -1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    reason = [None if kept[i] else ("pruned" if candidate[i] else upstream_reasons[i] or "no-embedding")
              for i in range(n)]
    return pa.table({
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.array(reason, pa.string()),
        "score": pa.array(score, pa.float32(), mask=np.isnan(score)),
        "rank": pa.array(rank, pa.int64(), mask=rank < 0),
        "cluster": pa.array(cluster, pa.int64(), mask=(cluster < 0) | (not clustered)),
        "labeled": pa.array(labeled),
    })


def _what(name: str, balance_by: str | None) -> str:
    return f"class {name!r}" if balance_by else "the pool"


def _quota_report(quotas: dict, classes: np.ndarray, pool: np.ndarray, order: np.ndarray,
                  balance_by: str | None) -> list[dict] | None:
    if balance_by is None:
        return None
    available = Counter(classes[pool].tolist())
    kept = Counter(classes[order].tolist())
    return [{"class": c, "available": available.get(c, 0), "quota": q, "kept": kept.get(c, 0)}
            for c, q in quotas.items()]


def _by_class(manifest: pa.Table, balance_by: str | None, before: np.ndarray, order: np.ndarray) -> dict | None:
    """{class: [before, after]} over ``balance_by`` (or ``label`` when the manifest has labels)."""
    column = balance_by or "label"
    if column not in manifest.column_names or manifest.column(column).null_count == manifest.num_rows:
        return None
    classes = _classes(manifest, column)
    b, a = Counter(classes[before].tolist()), Counter(classes[order].tolist())
    return {c: [b[c], a.get(c, 0)] for c in sorted(b, key=lambda c: (-b[c], c))}


def _finite_max(values: list[float]) -> float | None:
    """The largest finite value (kcenter radius over the groups), None when there is none."""
    finite = [v for v in values if np.isfinite(v)]
    return float(max(finite)) if finite else None


def _jsonable(distribution: Mapping | None) -> dict | None:
    return dict(distribution) if distribution is not None else None
