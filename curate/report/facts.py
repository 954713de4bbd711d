"""The numbers the report shows, computed from the manifest and the decision tables.

Free functions over Arrow tables and numpy arrays; each returns a small dataclass that
:mod:`curate.report.html` renders. Nothing here reads sample payloads (see ``thumbs.py``)
and nothing grows faster than the number of rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from curate.decisions import DecisionRun, decision_counts
from curate.manifest import reason_code

NO_LABEL = "(none)"


@dataclass(frozen=True)
class StageCounts:
    stage: str
    run_id: str
    method: str | None
    counts: dict[str, int]  # {"kept": n, "<reason code>": n}
    survivors: int  # rows kept by this stage and by the stages it ran on (and ok in the manifest)
    upstream: tuple[str, ...] | None = None  # the stages whose survivors were its input; None: every earlier one


@dataclass(frozen=True)
class Counts:
    total: int
    status: dict[str, int]
    quarantine_reasons: dict[str, int]
    survivors: int  # ok and kept by dedup and prune
    stages: list[StageCounts] = field(default_factory=list)
    selected: int | None = None  # rows the select run picked (kept=True in its table); None: no select run


@dataclass(frozen=True)
class Balance:
    labels: list[str]
    before: list[int]  # every manifest row
    after: list[int]  # rows that survived dedup and prune


@dataclass(frozen=True)
class ClusterSizes:
    sizes: np.ndarray  # rows per cluster (estimated when ``source`` says so)
    source: str


@dataclass(frozen=True)
class Scores:
    stage: str
    run_id: str
    values: np.ndarray
    picks: list[tuple[int, float | None]]  # (manifest row, score) of the top kept rows, select only


def kept_mask(run: DecisionRun) -> np.ndarray:
    return run.table.column("kept").to_numpy(zero_copy_only=False).astype(bool)


def counts(manifest: pa.Table, runs: list[DecisionRun], metas: dict[str, dict], survived: np.ndarray,
           inputs: dict[str, tuple[np.ndarray, tuple[str, ...]]] | None = None) -> Counts:
    """Manifest status and reasons, then every stage run's counts and the survivors after it.

    ``inputs`` maps a stage to (the rows it ran on, the stages that chose them): a stage's survivors are
    its input rows it kept, so a select run that ignored prune is not chained after it. A stage not in
    ``inputs`` is chained after every earlier run. The select count is the select run's own picks.
    """
    status = manifest.column("status").to_pylist()
    reasons = manifest.column("reason").to_pylist()
    quarantined = Counter(reason_code(r) or "unspecified" for s, r in zip(status, reasons) if s != "ok")
    ok = np.array([s == "ok" for s in status], dtype=bool)
    alive = ok.copy()
    stages = []
    selected = None
    for run in runs:
        kept = kept_mask(run)
        alive &= kept
        meta = metas.get(run.stage, {})
        base, after = (inputs or {}).get(run.stage, (None, None))
        left = alive if base is None else ok & base & kept
        stages.append(StageCounts(run.stage, run.run_id, meta.get("method") or meta.get("strategy"),
                                  decision_counts(run.table), int(left.sum()), after))
        if run.stage == "select":
            selected = int(kept.sum())
    return Counts(len(status), dict(Counter(status).most_common()), dict(quarantined.most_common()),
                  int(np.sum(survived)), stages, selected)


def balance(labels: list[str | None], survived: np.ndarray, max_labels: int = 40) -> Balance | None:
    """Label counts before (manifest) and after (survivors); None when no row has a label."""
    if all(label is None for label in labels):
        return None
    names = [NO_LABEL if label is None else str(label) for label in labels]
    before = Counter(names)
    after = Counter(n for n, s in zip(names, survived) if s)
    top = sorted(before, key=lambda n: (-before[n], n))[:max_labels]
    order = sorted(top, key=_natural)
    return Balance(order, [before[n] for n in order], [after.get(n, 0) for n in order])


def _natural(name: str) -> tuple:
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)


def cluster_sizes_from_run(run: DecisionRun | None) -> ClusterSizes | None:
    if run is None or "cluster" not in run.table.column_names:
        return None
    column = run.table.column("cluster")
    if column.null_count == len(column):
        return None
    labels = column.to_numpy(zero_copy_only=False)
    labels = labels[~np.isnan(labels)].astype(np.int64) if labels.dtype.kind == "f" else labels.astype(np.int64)
    sizes = np.bincount(labels)
    return ClusterSizes(sizes[sizes > 0], f"the `cluster` column of dedup run {run.run_id}")


def cluster_sizes_from_store(vectors: np.ndarray, valid: np.ndarray, seed: int,
                             max_rows: int = 200_000) -> ClusterSizes | None:
    """Spherical k-means (about sqrt(N) clusters) on a sample; sizes scaled up to the store."""
    from curate.index.assign import assign
    from curate.index.kmeans import KMeansConfig, fit_spherical_kmeans, sample_rows
    from curate.vectors import gather

    n_valid = int(valid.sum())
    if n_valid < 2:
        return None
    sample = min(max_rows, 20_000)
    k = max(1, min(round(np.sqrt(n_valid)), sample // 8, n_valid))
    centroids = fit_spherical_kmeans(vectors, valid, KMeansConfig(clusters=k, sample=sample, iterations=10,
                                                                  seed=seed, init="random"))
    rows = sample_rows(valid, max_rows, seed)
    labels = assign(gather(vectors, rows), centroids, top=1).labels
    sizes = np.bincount(labels, minlength=len(centroids)) * (n_valid / len(rows))
    how = "" if len(rows) == n_valid else f", sizes estimated from {len(rows):,} sampled rows"
    return ClusterSizes(sizes[sizes > 0], f"k-means on the embedding store ({len(centroids)} clusters{how})")


def scores(run: DecisionRun | None, top: int = 0) -> Scores | None:
    """The ``score`` column of a prune/select run, and its ``top`` kept rows (by ``rank``, else score)."""
    if run is None or "score" not in run.table.column_names:
        return None
    table = run.table
    values = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    picks: list[tuple[int, float | None]] = []
    if top:
        kept = np.flatnonzero(kept_mask(run))
        if "rank" in table.column_names:
            rank = table.column("rank").to_numpy(zero_copy_only=False).astype(np.float64)[kept]
            kept = kept[np.lexsort((kept, np.where(np.isnan(rank), np.inf, rank)))]
        else:
            s = values[kept]
            kept = kept[np.lexsort((kept, -np.where(np.isnan(s), -np.inf, s)))]
        picks = [(int(r), None if np.isnan(values[r]) else float(values[r])) for r in kept[:top]]
    return Scores(run.stage, run.run_id, values[np.isfinite(values)], picks)
