"""The select stage: choose the next labeling batch and record why every item was (not) chosen.

Candidates are the manifest rows that earlier stages kept (``curate.decisions.upstream``:
ok in the manifest, not removed by the latest dedup run), that are not labeled yet and that
have what the strategy needs (predictions and/or an embedding); labeled: the --labeled ids, else
the items with a manifest label (``labeled_set``). The strategy (``registry``)
picks up to ``budget`` of them; the batch is exported for a labeling tool (``exports``) and
the run is recorded as ``decisions/select/<run-id>.parquet``: one row per manifest id with
``id``, ``kept`` (= selected), ``reason`` (null | ``not-selected`` | ``labeled`` |
``no-prediction`` | ``no-embedding`` | ``query`` | upstream reasons), ``score``, ``rank`` (and
for ``similar``: ``query``, the query that mined the pick; ``score`` is its cosine to it); the
sidecar holds the round (one per labeled set), strategy and config. Same inputs + config + seed
-> same batch. A Label Studio export gets ``labeling-config.xml`` and ``LABELING.md`` beside it (``handoff``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

from curate.decisions import list_runs, upstream
from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Resolved, Store, Upstream, UserFile
from curate.io import atomic
from curate.io.fs import CAP_ID_LIST, Location, locate
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.select import registry
from curate.select.exports import ExportOptions, data_key, guess_format, write_export
from curate.select.predictions import load_labeled, load_predictions
from curate.workspace import Workspace

STAGE = "select"


@dataclass(frozen=True)
class BatchOptions:
    """How the strategies shape a batch (each strategy reads the ones it has)."""

    uncertainty: str = "margin"  # hybrid: margin | entropy | least-confidence
    preselect: float = 10.0  # hybrid / cluster-margin: consider preselect x budget most uncertain
    power: float = 1.0  # hybrid: weight = uncertainty ** power
    typical_per_class: float = 3.0  # hybrid: TypiClust batches while labeled < this x classes
    # hybrid / similar: never two picks (or a pick and a labeled item) above this cosine; "auto": hybrid derives
    # it from the pool's own neighbour distances (similar: 0.9); "off": no check. Dedup groups apply regardless.
    dup_threshold: float | str | None = "auto"
    min_similarity: float | None = None  # similar: never pick an item less similar than this to its query
    quota_per_class: int | None = None  # hybrid: at most this many picks per predicted class
    class_quota: tuple[tuple[str, float], ...] = ()  # (class, count >= 1 or share of the budget < 1)
    clusters: int | None = None  # cluster-margin: k-means clusters; similar: query groups
    per_query: int | None = None  # similar: at most this many picks per query


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
    if config.handoff.out:
        guess_format(config.handoff.out, config.handoff.format)  # an unknown --out suffix: before any work
    return strategy


def dup_threshold(value: float | str | None) -> float | str | None:
    """``--dup-threshold`` as the strategies take it: a cosine in [-1, 1], ``"auto"``, or None (``off``)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str) and value.lower() in ("off", "none"):
        return None
    try:
        cosine = float(value)
    except (TypeError, ValueError):
        raise CurateError(f"--dup-threshold takes a cosine in [-1, 1], auto or off, not {value!r}") from None
    if not -1.0 <= cosine <= 1.0:
        raise CurateError("--dup-threshold must be a cosine similarity in [-1, 1] (or auto, off)")
    return cosine


def _groups(up, n: int) -> np.ndarray | None:
    """Dedup group of every manifest row from the latest dedup run (None when none ran)."""
    from curate.select.redundancy import dedup_groups

    run = next((r for r in up.runs if r.stage == "dedup"), None)
    return dedup_groups(run.table) if run is not None else None


def _quota(config: SelectConfig, names: list[str]) -> dict[int, int] | int | None:
    batch = config.batch
    if not batch.class_quota:
        return batch.quota_per_class
    index = {n: i for i, n in enumerate(names)}
    caps: dict[int, int] = {}
    for name, value in batch.class_quota:
        if name not in index:
            raise CurateError(f"class quota for unknown class {name!r} (classes: {', '.join(names[:20])})")
        caps[index[name]] = int(value) if value >= 1 else int(np.ceil(value * config.budget))
    if batch.quota_per_class is not None:
        return {i: caps.get(i, batch.quota_per_class) for i in range(len(names))}
    return caps


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
        return config_dict(replace(config, handoff=HandoffOptions()))

    def inputs(self, config: SelectConfig) -> tuple:
        return (Manifest(), Upstream(tuple(config.upstream)),
                Store(prefer="dedup", need="always" if self.needs_store(config) else "never"),
                UserFile("predictions"), UserFile("labeled", max_bytes=CAP_ID_LIST), UserFile("queries"), Overrides())

    def is_current(self, ws: Workspace, meta: dict) -> bool:
        """A finished run is reused only while the batch file it exported is still there."""
        return meta.get("export") is None or locate(meta["export"]).exists()

    def compute(self, ctx: RunContext) -> Output:
        return _select(ctx.ws, ctx.config, ctx.inputs, ctx.run_id)


def select(ws: Workspace, config: SelectConfig, **run: Any) -> StageResult:
    """Pick the batch, write the decision table (and the export when ``config.handoff.out``)."""
    return run_stage(ws, Select(), config, **run)


def picked(result: StageResult) -> list[str]:
    """The ids a select run picked, in rank order."""
    table = result.table.filter(result.table.column("kept"))
    order = np.argsort(table.column("rank").to_numpy(zero_copy_only=False), kind="stable")
    return [table.column("id")[int(i)].as_py() for i in order]


def _select(ws: Workspace, config: SelectConfig, inputs: Resolved, run_id: str) -> Output:
    store = inputs.store
    strategy = registry.get(config.strategy)
    manifest = ws.read_manifest(["id", "source", "kind", "label", "text", "status", "reason"])
    ids = manifest.column("id").to_pylist()
    n = len(ids)
    up = upstream(ws, config.upstream, manifest=manifest.select(["id", "status", "reason"]), runs=inputs.runs)
    ok = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
    preds = load_predictions(config.predictions, ids, ok) if config.predictions else None

    needs_emb = "embeddings" in strategy.needs or config.probe
    store_row = store.store_rows(n) if store is not None else np.full(n, -1, dtype=np.int64)
    slug = store.slug if store is not None else None
    has_emb = store_row >= 0 if store is not None else np.ones(n, dtype=bool)
    known = labeled_set(config.labeled, manifest, ok, up.kept & has_emb)
    labeled = known.rows
    queries = None
    if config.queries:
        from curate.select.queries import load_queries

        queries = load_queries(config.queries, store, ids, config.device)
    is_query = np.zeros(n, dtype=bool)
    if queries is not None:
        is_query[queries.manifest_rows[queries.manifest_rows >= 0]] = True
    pred_row = np.full(n, -1, dtype=np.int64)
    if preds is not None:
        pred_row[preds.rows] = np.arange(len(preds.rows))
    has_pred = (pred_row >= 0) if preds is not None else np.ones(n, dtype=bool)

    available = up.kept & ~labeled
    forced, barred = _override_rows(inputs.overrides, ids)  # review: always pick / never pick
    candidates = available & has_pred & has_emb & ~is_query & ~forced & ~barred
    members = candidates | (labeled & has_emb)
    rows = np.flatnonzero(members)  # pool row -> manifest row

    embeddings = store.gather(store_row[rows]) if needs_emb else None
    probs = mc = feats = None
    class_names: list[str] = []
    if preds is not None:
        at = pred_row[rows]
        fill = np.maximum(at, 0)
        probs = preds.probs[fill]
        mc = preds.mc[fill] if preds.mc is not None else None
        feats = preds.features[fill] if preds.features is not None else None
        class_names = [str(i) for i in range(probs.shape[1])]
    elif config.probe:
        probs, class_names = _probe(manifest, known, rows, embeddings, config, slug)
    if "mc" in strategy.needs and mc is None:
        raise CurateError(f"strategy {config.strategy} needs MC-dropout samples, {config.predictions} has none")

    index = None
    if queries is not None:
        from curate.select.mining import open_index

        index = open_index(ws, slug, store, int(candidates.sum()), config.device)
    groups = _groups(up, n)
    pool = registry.Pool(candidates[rows], labeled[rows], embeddings, probs, mc, feats,
                         vectors=store.vectors if store is not None else None,
                         store_rows=store_row[rows] if store is not None else None,
                         queries=queries.vectors if queries is not None else None, index=index,
                         groups=groups[rows] if groups is not None else None)
    b = config.batch
    options = registry.Options(uncertainty=b.uncertainty, preselect=b.preselect, power=b.power,
                               typical_per_class=b.typical_per_class, dup_threshold=dup_threshold(b.dup_threshold),
                               quota=_quota(config, class_names), clusters=b.clusters, per_query=b.per_query,
                               min_similarity=b.min_similarity, device=config.device)
    if options.quota is not None and probs is None:
        raise CurateError("class quotas need predictions (or --probe)")
    if options.quota is not None and config.strategy != "hybrid":
        raise CurateError("class quotas are supported by the hybrid strategy")
    warmup = registry.hybrid_warmup(pool, options) if config.strategy == "hybrid" else None

    earlier = list_runs(ws, STAGE)
    key = labeled_key(ids, labeled)
    round_ = _round(earlier, run_id, config.round, key)

    rng = np.random.default_rng([config.seed, round_])
    forced_rows = np.flatnonzero(forced)
    budget = max(0, config.budget - len(forced_rows))
    picks, scores, *rest = strategy.fn(pool, min(budget, int(pool.candidates.sum())), rng, options)
    extra = rest[0] if rest else {}
    picked_rows = np.concatenate([forced_rows, rows[picks]]).astype(np.int64)
    scores = np.concatenate([np.full(len(forced_rows), np.nan), np.asarray(scores, dtype=np.float64)])
    if "query" in extra and len(forced_rows):
        extra = {**extra, "query": [-1] * len(forced_rows) + list(extra["query"])}
    pick_query = [queries.names[q] if q >= 0 else None for q in extra["query"]] if "query" in extra else None
    table = _table(manifest, up.reasons, labeled, available, has_pred, has_emb, picked_rows, scores, is_query,
                   pick_query)
    meta = {"strategy": config.strategy, "round": round_, "budget": config.budget, "picked": len(picks),
            "candidates": int(candidates.sum()), "labeled": int(labeled.sum()), "labeled_from": known.source,
            "labeled_set": key, "model": slug,
            "warmup": warmup,
            "predictions": config.predictions, "labeled_file": config.labeled, "probe": config.probe,
            "upstream_runs": {r.stage: r.run_id for r in up.runs}, "query_failures": [], "export": None,
            "handoff": None}
    if queries is not None:
        meta.update({"queries": config.queries, "queries_used": len(queries.names),
                     "queries_external": queries.external,
                     "query_failures": [list(f) for f in queries.failures[:1000]],
                     "retrieval": "exact" if index is None else f"index:{index.kind}",
                     "min_similarity": b.min_similarity,
                     "weak_queries": [queries.names[q] for q in extra.get("weak", [])][:1000]})
    export = handoff = None
    handoff_options = config.handoff
    if handoff_options.out:
        from curate.select.handoff import check_owners, handoff_paths

        batch = _batch(manifest, picked_rows, scores, config.strategy, round_,
                       probs[picks] if probs is not None else None, class_names, pick_query)
        options = ExportOptions(format=guess_format(handoff_options.out, handoff_options.format),
                                data_key=handoff_options.data_key, document_root=handoff_options.document_root)
        dest = locate(handoff_options.out)
        targets = [dest] + (list(handoff_paths(dest)) if options.format == "labelstudio" else [])
        claims = _claims(ws)
        check_owners(targets, earlier + claims, run_id, force=handoff_options.force)  # before writing anything
        _claim(ws, run_id, targets)  # a run killed after this point still owns what it began to write
        export = write_export(batch, handoff_options.out, options)
        meta["export"] = export.uri
        if options.format == "labelstudio":
            handoff = _handoff(batch, export, manifest, ok, known, class_names, options, run_id, warmup)
            meta["handoff"] = [loc.uri for loc in handoff]
    return Output(table, meta)


@dataclass(frozen=True)
class LabeledSet:
    """The items already labeled (never candidates; the diversity reference) and whose labels train --probe."""

    rows: np.ndarray  # bool [n]: labeled manifest rows
    labels: dict[int, str]  # the --labeled file's labels by row (manifest labels fill in the others)
    train: np.ndarray  # bool [n]: rows whose label (file, else manifest) teaches --probe
    source: str  # file | manifest | given (every candidate has a manifest label: none counts) | none


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


def labeled_key(ids: list[str], labeled: np.ndarray) -> str:
    """A digest of the labeled ids: select runs with the same labeled set are one labeling round."""
    digest = hashlib.sha256("\n".join(sorted(ids[r] for r in np.flatnonzero(labeled))).encode())
    return digest.hexdigest()[:16]


def _round(earlier: list[dict], run_id: str, given: int | None, key: str) -> int:
    """The run's labeling round: its own (a rerun), ``--round``, the round of an earlier run with the
    same labeled set (a new budget or strategy is no new round), else one past the latest."""
    same = [m for m in earlier if m.get("run_id") == run_id]  # rerun after its export file was removed
    if same:
        return same[-1]["round"]
    if given:
        return given
    alike = [m for m in earlier if m.get("labeled_set") == key]
    return alike[-1]["round"] if alike else 1 + max((m.get("round", 0) for m in earlier), default=0)


def _claim(ws: Workspace, run_id: str, targets: list[Location]) -> None:
    """Record, before writing them, the hand-off files run ``run_id`` is about to write."""
    atomic.write_json(ws.state(STAGE).join(f"claim-{run_id}.json"),
                      {"run_id": run_id, "handoff": [t.uri for t in targets], "at": time.time()})


def _claims(ws: Workspace) -> list[dict]:
    """Claims of select runs that began writing hand-off files (finished or killed), oldest first."""
    folder = ws.state(STAGE)
    if not folder.exists():
        return []
    names = sorted(p.rsplit("/", 1)[-1] for p in folder.fs.ls(folder.path, detail=False))
    claims = [atomic.read_json(folder.join(n)) for n in names if n.startswith("claim-") and n.endswith(".json")]
    return sorted(claims, key=lambda c: c.get("at", 0.0))


def _handoff(batch: pa.Table, export: Location, manifest: pa.Table, ok: np.ndarray, done: LabeledSet,
             class_names: list[str], options: ExportOptions, run_id: str | None = None,
             warmup: str | None = None) -> tuple[Location, Location]:
    """labeling-config.xml + LABELING.md beside a Label Studio export. Choices: every known label name
    (manifest labels, --labeled file labels, every class of the predictions); counts and examples: only
    the already-labeled items (``done``; the --labeled file's label, else the manifest's)."""
    from curate.select.handoff import label_set, write_handoff

    labeled, file_labels = done.rows, done.labels
    kinds = batch.column("kind").to_pylist() or manifest.column("kind").filter(pa.array(ok)).to_pylist()[:1]
    kind = max(set(kinds), key=kinds.count) if kinds else "image"
    ids = manifest.column("id").to_pylist()
    manifest_labels = manifest.column("label").to_pylist()
    known = {lab for r, lab in enumerate(manifest_labels) if lab is not None and ok[r]}
    known |= set(file_labels.values()) | set(class_names)
    rows = np.flatnonzero(labeled)
    labels = label_set([ids[r] for r in rows], [file_labels.get(int(r), manifest_labels[r]) for r in rows],
                       extra=sorted(known))
    return write_handoff(batch, export, labels, data_key(kind, options), kind, options.from_name, run_id,
                         warmup=warmup, labeled_from=done.source)


def _probe(manifest: pa.Table, known: LabeledSet, rows: np.ndarray, embeddings: np.ndarray, config: SelectConfig,
           slug: str | None) -> tuple[np.ndarray, list[str]]:
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
    probe = train_probe(x, y, len(names), ProbeConfig(seed=config.seed, device=config.device), stats_from=embeddings)
    return predict_proba(probe, embeddings, config.device), names


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


def _table(manifest: pa.Table, up_reasons: list, labeled: np.ndarray, available: np.ndarray, has_pred: np.ndarray,
           has_emb: np.ndarray, picked: np.ndarray, scores: np.ndarray, is_query: np.ndarray | None = None,
           pick_query: list[str] | None = None) -> pa.Table:
    n = manifest.num_rows
    reason = np.array(["not-selected"] * n, dtype=object)
    reason[~has_pred] = "no-prediction"
    reason[~has_emb] = "no-embedding"
    if is_query is not None:
        reason[is_query & has_emb] = "query"
    for i in np.flatnonzero(~available):
        reason[i] = up_reasons[i]
    reason[labeled] = "labeled"
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


def _batch(manifest: pa.Table, picked: np.ndarray, scores: np.ndarray, strategy: str, round_: int,
           probs: np.ndarray | None, class_names: list[str], pick_query: list[str] | None = None) -> pa.Table:
    """The export table: one row per pick in rank order."""
    take = manifest.take(pa.array(picked, pa.int64()))
    columns = {
        "id": take.column("id"), "source": take.column("source"),
        "score": pa.array(scores, pa.float64(), mask=~np.isfinite(scores)),
        "rank": pa.array(np.arange(1, len(picked) + 1), pa.int64()),
        "strategy": pa.array([strategy] * len(picked), pa.string()),
        "round": pa.array([round_] * len(picked), pa.int64()),
        "kind": take.column("kind"), "text": take.column("text"),
    }
    if probs is not None:
        columns["prediction"] = pa.array([class_names[c] for c in np.argmax(probs, axis=1)], pa.string())
        columns["confidence"] = pa.array(np.max(probs, axis=1).astype(np.float64), pa.float64())
    if pick_query is not None:
        columns["query"] = pa.array(pick_query, pa.string())
        columns["similarity"] = pa.array(scores, pa.float64())
    return pa.table(columns)
