"""The candidate pool of a select run: which manifest rows may be picked, and what a strategy reads.

Candidates are the manifest rows that earlier stages kept (``curate.decisions.upstream``: ok in the
manifest, not removed by the latest runs of ``config.upstream``), that are not labeled yet and
that have what the strategy needs (a prediction and/or an embedding); the --queries of ``similar``
are no candidates, nor are the items a reviewer said to always pick (``keep``: the round adds them
first) or never pick (``remove``). Labeled: the --labeled ids, else the items with a manifest label
(:func:`labeled_set`). The :class:`registry.Pool` holds one row per candidate or labeled item with
an embedding: the store's vectors, the predictions' probabilities, MC samples and features (or those
of a linear probe trained here, ``--probe``), the dedup groups of the latest dedup run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from curate.decisions import Upstream, upstream
from curate.errors import CurateError
from curate.inputs import Resolved
from curate.select import registry
from curate.select.predictions import load_labeled, load_predictions
from curate.workspace import Workspace

if TYPE_CHECKING:
    import torch

MANIFEST_COLUMNS = ["id", "source", "kind", "label", "text", "status", "reason"]


@dataclass(frozen=True)
class LabeledSet:
    """The items already labeled (never candidates; the diversity reference) and whose labels train --probe."""

    rows: np.ndarray  # bool [n]: labeled manifest rows
    labels: dict[int, str]  # the --labeled file's labels by row (manifest labels fill in the others)
    train: np.ndarray  # bool [n]: rows whose label (file, else manifest) teaches --probe
    source: str  # file | manifest | given (every candidate has a manifest label: none counts) | none


@dataclass(frozen=True)
class Candidates:
    """What a select run picks from: masks over the manifest rows and the strategy's :class:`registry.Pool`."""

    manifest: pa.Table  # MANIFEST_COLUMNS
    ok: np.ndarray  # bool [n]: ok in the manifest
    up: Upstream  # kept by the upstream runs, and why not
    known: LabeledSet
    available: np.ndarray  # bool [n]: kept upstream and not labeled
    has_pred: np.ndarray  # bool [n]: has a prediction (all True without --predictions)
    has_emb: np.ndarray  # bool [n]: has an embedding (all True without a store)
    is_query: np.ndarray  # bool [n]: a workspace query of ``similar``
    forced: np.ndarray  # bool [n]: a reviewer said to always pick it
    mask: np.ndarray  # bool [n]: the candidates
    rows: np.ndarray  # int64: pool row -> manifest row
    pool: registry.Pool
    class_names: list[str]  # the columns of ``pool.probs``
    queries: Any = None  # curate.select.queries.Queries | None
    index: Any = None  # the AnnIndex ``similar`` searches (None: exact search)
    slug: str | None = None  # the embedding store read

    @property
    def ids(self) -> list[str]:
        return self.manifest.column("id").to_pylist()

    @property
    def labeled(self) -> np.ndarray:
        return self.known.rows


def build_pool(ws: Workspace, config: Any, inputs: Resolved, device: torch.device) -> Candidates:
    """The candidates and the pool of a run of ``config`` (a ``SelectConfig``) on its resolved inputs."""
    store = inputs.store
    strategy = registry.get(config.strategy)
    manifest = ws.read_manifest(MANIFEST_COLUMNS)
    ids = manifest.column("id").to_pylist()
    n = len(ids)
    up = upstream(ws, config.upstream, manifest=manifest.select(["id", "status", "reason"]), runs=inputs.runs)
    ok = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
    preds = load_predictions(config.predictions, ids, ok) if config.predictions else None

    store_row = store.store_rows(n) if store is not None else np.full(n, -1, dtype=np.int64)
    slug = store.slug if store is not None else None
    has_emb = store_row >= 0 if store is not None else np.ones(n, dtype=bool)
    known = labeled_set(config.labeled, manifest, ok, up.kept & has_emb)
    queries, is_query = _queries(config, store, ids, device)
    pred_row = np.full(n, -1, dtype=np.int64)
    if preds is not None:
        pred_row[preds.rows] = np.arange(len(preds.rows))
    has_pred = (pred_row >= 0) if preds is not None else np.ones(n, dtype=bool)

    available = up.kept & ~known.rows
    forced, barred = _override_rows(inputs.overrides, ids)  # review: always pick / never pick
    candidates = available & has_pred & has_emb & ~is_query & ~forced & ~barred
    rows = np.flatnonzero(candidates | (known.rows & has_emb))  # pool row -> manifest row

    needs_emb = "embeddings" in strategy.needs or config.probe
    embeddings = store.gather(store_row[rows]) if needs_emb else None
    probs, mc, feats, class_names = _model_outputs(config, manifest, known, rows, embeddings, preds, pred_row, slug,
                                                   device)
    if "mc" in strategy.needs and mc is None:
        raise CurateError(f"strategy {config.strategy} needs MC-dropout samples, {config.predictions} has none")

    index = None
    if queries is not None:
        from curate.select.mining import open_index

        index = open_index(ws, slug, store, int(candidates.sum()), device)
    groups = _groups(up)
    pool = registry.Pool(candidates[rows], known.rows[rows], embeddings, probs, mc, feats,
                         vectors=store.vectors if store is not None else None,
                         store_rows=store_row[rows] if store is not None else None,
                         queries=queries.vectors if queries is not None else None, index=index,
                         groups=groups[rows] if groups is not None else None)
    return Candidates(manifest, ok, up, known, available, has_pred, has_emb, is_query, forced, candidates, rows,
                      pool, class_names, queries, index, slug)


def _queries(config: Any, store: Any, ids: list[str], device: torch.device) -> tuple[Any, np.ndarray]:
    """The --queries of ``similar`` (None without), and which manifest rows are workspace queries."""
    is_query = np.zeros(len(ids), dtype=bool)
    if not config.queries:
        return None, is_query
    from curate.select.queries import load_queries

    queries = load_queries(config.queries, store, ids, device)
    is_query[queries.manifest_rows[queries.manifest_rows >= 0]] = True
    return queries, is_query


def _model_outputs(config: Any, manifest: pa.Table, known: LabeledSet, rows: np.ndarray,
                   embeddings: np.ndarray | None, preds: Any, pred_row: np.ndarray, slug: str | None,
                   device: torch.device):
    """Probabilities, MC samples, features and class names of the pool rows: the --predictions',
    else those of the --probe trained here, else none."""
    if preds is not None:
        fill = np.maximum(pred_row[rows], 0)
        probs = preds.probs[fill]
        mc = preds.mc[fill] if preds.mc is not None else None
        feats = preds.features[fill] if preds.features is not None else None
        return probs, mc, feats, [str(i) for i in range(probs.shape[1])]
    if config.probe:
        probs, class_names = _probe(manifest, known, rows, embeddings, config, slug, device)
        return probs, None, None, class_names
    return None, None, None, []


def _groups(up: Upstream) -> np.ndarray | None:
    """Dedup group of every manifest row from the latest dedup run (None when none ran)."""
    from curate.select.redundancy import dedup_groups

    run = next((r for r in up.runs if r.stage == "dedup"), None)
    return dedup_groups(run.table) if run is not None else None


def labeled_set(path: str | None, manifest: pa.Table, ok: np.ndarray, pickable: np.ndarray) -> LabeledSet:
    """The ids in ``path`` (--labeled); without it, the ok items with a manifest label, unless every
    ``pickable`` item has one: then they are the dataset's own labels (class folders), nothing is left
    to label, so none counts as labeled (they still train --probe)."""
    n = manifest.num_rows
    has_label = ok & np.array([lab is not None for lab in manifest.column("label").to_pylist()], dtype=bool)
    if path:
        rows, labels = load_labeled(path, manifest.column("id").to_pylist())
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        return LabeledSet(mask, {int(r): lab for r, lab in zip(rows, labels) if lab is not None}, mask, "file")
    if not has_label.any():
        return LabeledSet(has_label, {}, has_label, "none")
    if not (pickable & ~has_label).any():
        return LabeledSet(np.zeros(n, dtype=bool), {}, has_label, "given")
    return LabeledSet(has_label, {}, has_label, "manifest")


def _probe(manifest: pa.Table, known: LabeledSet, rows: np.ndarray, embeddings: np.ndarray, config: Any,
           slug: str | None, device: torch.device) -> tuple[np.ndarray, list[str]]:
    """Train the linear probe on the pool items with a known label; probabilities for the pool."""
    from curate.select.probe import ProbeConfig, predict_proba, train_probe

    manifest_labels = manifest.column("label").to_pylist()
    pos = np.flatnonzero(known.train[rows])
    labels = [known.labels.get(int(rows[p]), manifest_labels[rows[p]]) for p in pos]
    train = [(p, lab) for p, lab in zip(pos, labels) if lab is not None]
    if not train:
        raise CurateError(_no_probe_labels(known, config.labeled, slug))
    names = sorted({lab for _, lab in train})
    index = {name: i for i, name in enumerate(names)}
    x = embeddings[[p for p, _ in train]]
    y = np.array([index[lab] for _, lab in train])
    probe = train_probe(x, y, len(names), ProbeConfig(seed=config.seed, device=device), stats_from=embeddings)
    return predict_proba(probe, embeddings, device), names


def _no_probe_labels(known: LabeledSet, path: str | None, slug: str | None) -> str:
    """Why --probe has nothing to train on, in one line."""
    if known.source == "none":
        return ("--probe needs labels to train on: the manifest has none and no --labeled file was given "
                "(CSV/Parquet with `id` and `label`)")
    if known.source == "file" and not any(known.labels.get(int(r)) for r in np.flatnonzero(known.rows)):
        return (f"--probe: no item in --labeled {path} has a label (add a `label` column, or ingest the labels "
                "into the manifest)")
    return f"--probe: none of the labeled items has an embedding in store {slug} (run `curate embed`)"


def _override_rows(overrides, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Manifest rows a reviewer said to always pick (``keep``) or never pick (``remove``)."""
    forced = np.zeros(len(ids), dtype=bool)
    barred = np.zeros(len(ids), dtype=bool)
    if overrides is not None and overrides.records:
        for row, sid in enumerate(ids):
            rec = overrides.records.get(sid)
            if rec is not None:
                (forced if rec.action == "keep" else barred)[row] = True
    return forced, barred
