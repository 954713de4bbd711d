"""Semantic dedup (SemDeDup family) over an embedding store, with its known flaws fixed.

1. Spherical k-means on a sample, every row assigned with its ``neighbours`` nearest centroids.
2. One global keep priority (``keep.py``); within each cluster, every item's max cosine
   similarity to a higher-priority item (the ``max_sim_earlier`` kernel, blockwise).
3. Items near a cluster boundary are also compared with the adjacent cluster, so
   duplicates split by a boundary are found (SemDeDup misses them).
4. Each threshold is applied with an explicit chaining rule (``rules.py``); all thresholds
   come from one pass, and per-item ``max_sim`` is saved so a new threshold needs no rerun.
5. ``against``: items that duplicate anything in another workspace (same model) go first.

``precision="auto"``: on hardware with native bf16, similarities are screened in bf16 and
rescored in fp32 wherever they can reach the lowest threshold (see
``kernels.max_sim_earlier.max_sim_earlier_screened``), so the decisions are the fp32 ones.

Output: ``decisions/dedup/<run-id>.parquet``, one row per manifest id; the centroids go to
``index/<slug>/`` for later batches; test/val items duplicating train items are reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from curate.dedup.boundary import boundary_links
from curate.dedup.keep import parse_policy, priority_ranks
from curate.dedup.rules import decide, group_roots
from curate.dedup.scoring import Neighbours, within_clusters
from curate.embed.base import resolve_runtime
from curate.embed.store import StoredEmbeddings, choose_store, open_store
from curate.errors import CurateError
from curate.index.assign import assign
from curate.index.kmeans import KMeansConfig, fit_spherical_kmeans
from curate.io import atomic
from curate.runner import Inputs, Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.vectors import gather_tensor as gather
from curate.workspace import Workspace

STAGE = "dedup"


@dataclass(frozen=True)
class SemanticConfig:
    threshold: tuple[float, ...] = (0.9,)  # the first decides `kept`; each gets a kept@T column
    model: str | None = None  # store slug or model spec; None: the only store
    clusters: int | None = None  # None: about sqrt(N)
    sample: int | None = None  # k-means training rows; None: 64 per cluster (FAISS suggests 39..256)
    iterations: int = 10  # fewer leave fuzzier boundaries: 5 instead of 10 links ~15x more rows across them
    keep: str = "quality"
    chain: bool = False
    margin: float = 0.03  # boundary: 2nd..4th centroid within this cosine of the nearest
    neighbours: int = 4  # centroids per item considered for the boundary pass
    seed: int = 0
    device: str = "auto"
    against: str | None = None
    batch_rows: int = 262_144
    executor: str = "local"  # local | ray (cluster batches as Ray tasks)
    save_index: bool = True  # a FAISS index under index/<slug>/ for later --against runs
    precision: str = "auto"  # auto: bf16 screen + exact rescoring where fast (max_sim exact >= thresholds) | fp32


def check_thresholds(thresholds: tuple[float, ...]) -> None:
    if not thresholds or not all(np.isfinite(t) and -1.0 <= t <= 1.0 for t in thresholds):
        raise CurateError(f"--threshold must be cosine similarities in [-1, 1], not {', '.join(map(str, thresholds))}")


def check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise CurateError(f"--{name.replace('_', '-')} must be >= 1, not {value}")


class SemanticDedup(Stage):
    """``curate dedup --method semantic`` on the runner: reads the manifest and one embedding store."""

    name = STAGE
    config_type = SemanticConfig

    def validate(self, config: SemanticConfig) -> None:
        check_thresholds(config.threshold)
        if not (np.isfinite(config.margin) and 0.0 <= config.margin <= 2.0):
            raise CurateError(f"--margin must be a cosine difference in [0, 2], not {config.margin}")
        check_positive(clusters=config.clusters, sample=config.sample, iterations=config.iterations,
                       neighbours=config.neighbours, batch_rows=config.batch_rows)
        if config.precision not in ("auto", "fp32"):
            raise CurateError(f"unknown precision {config.precision!r} (auto or fp32)")
        if config.executor not in ("local", "ray"):
            raise CurateError(f"unknown executor {config.executor!r} (local or ray)")
        parse_policy(config.keep)

    def prefix(self, config: SemanticConfig) -> str:
        return "semantic"

    def settings(self, config: SemanticConfig) -> dict:
        out = config_dict(config)
        out.pop("executor")  # where the work runs changes nothing in the result
        return out

    def resolve(self, ws: Workspace, config: SemanticConfig) -> Inputs:
        slug = choose_store(ws, config.model)
        store = open_store(ws, slug)
        return Inputs({"manifest": ws.manifest_fingerprint(), "store": store.meta["fingerprint"],
                       "against": _against_fingerprint(config.against, slug)}, {"store": store})

    def compute(self, ctx: RunContext) -> Output:
        return _semantic(ctx.ws, ctx.config, ctx["store"], ctx)


def semantic_dedup(ws: Workspace, config: SemanticConfig = SemanticConfig(), **run: Any) -> StageResult:
    """Score and decide; reuse the run when manifest, store and config are unchanged."""
    return run_stage(ws, SemanticDedup(), config, **run)


def _semantic(ws: Workspace, config: SemanticConfig, store: StoredEmbeddings, clock: RunContext) -> Output:
    device = resolve_runtime(config.device, "fp32").device
    manifest = ws.read_manifest()
    vectors, valid = store.vectors, store.valid
    centroids, labels, top_ids, top_sims, members, offsets = _cluster(vectors, valid, config, clock)
    k = len(centroids)
    ranks = priority_ranks(config.keep, top_sims[:, 0], store.manifest_rows, manifest, config.seed)
    ranks = np.where(valid, ranks, np.iinfo(np.int64).max)  # failed embeddings never outrank anything

    links = boundary_links(labels, top_ids, top_sims, config.margin)
    boundary = np.unique(links[0])
    clock.lap("ranks")
    nb = within_clusters(vectors, members, offsets, ranks, device, config.batch_rows, config.executor,
                         exact_above=_exact_above(config), links=links)
    clock.lap("score")
    forced, against_ids = _against(ws, store, store.slug, config, device)

    hood = _Neighbourhood(labels, members, offsets, links)

    def similarity(i: int, pool: np.ndarray) -> np.ndarray:
        return (gather(vectors, pool, device) @ gather(vectors, np.array([i]), device)[0]).cpu().numpy()

    decisions = {t: decide(nb, ranks, t, config.chain, hood, similarity, forced) for t in config.threshold}
    clock.lap("decide")
    table, leakage = decision_table(manifest, store, labels, nb, decisions, config.threshold, forced, against_ids,
                                    config.against)
    _save_index(ws, store.slug, centroids, top_ids)
    clock.lap("table")
    if config.save_index:
        from curate.index.ann import build_index, index_dir, save_index

        index = build_index(vectors, valid, centroids=centroids, assignments=labels, device=config.device)
        save_index(index, index_dir(ws, store.slug), {"store_fingerprint": store.meta["fingerprint"]})
        clock.lap("index")
    return dedup_output(table, leakage, "semantic", store.slug, k, len(boundary))


def dedup_output(table: pa.Table, leakage: pa.Table, method: str, slug: str, clusters: int,
                 boundary: int) -> Output:
    facts = {"method": method, "model": slug, "clusters": clusters, "boundary_rows": boundary,
             "leakage": len(leakage)}
    return Output(table, facts, {"leakage": leakage} if len(leakage) else {})


def _exact_above(config: SemanticConfig) -> float | None:
    """Where ``max_sim`` must be exact: from the lowest threshold up (None: everywhere)."""
    return None if config.precision == "fp32" else min(config.threshold)


def _cluster(vectors: np.ndarray, valid: np.ndarray, config: SemanticConfig, clock: RunContext):
    n_valid = int(valid.sum())
    k = config.clusters or max(1, min(n_valid, int(round(np.sqrt(n_valid)))))
    sample = config.sample or max(64 * k, 10_000)
    screen = config.precision == "auto"
    centroids = fit_spherical_kmeans(vectors, valid, KMeansConfig(
        clusters=k, sample=sample, iterations=config.iterations, seed=config.seed, device=config.device,
        init="random", screen=screen))
    k = len(centroids)
    clock.lap("kmeans")
    a = assign(vectors, centroids, valid=valid, top=min(config.neighbours, k), device=config.device, screen=screen)
    labels = np.where(valid, a.labels, -1).astype(np.int64)
    top_ids = a.centroid_ids.astype(np.int64)
    top_sims = a.sims
    rows = np.flatnonzero(labels >= 0)
    members = rows[np.argsort(labels[rows], kind="stable")]
    offsets = np.searchsorted(labels[members], np.arange(k + 1)).astype(np.int64)
    clock.lap("assign")
    return centroids, labels, top_ids, top_sims, members, offsets


class _Neighbourhood:
    """Rows an item can be compared with: its cluster, the clusters it is linked to across
    a boundary, and boundary rows of other clusters linked into its cluster."""

    def __init__(self, labels: np.ndarray, members: np.ndarray, offsets: np.ndarray,
                 links: tuple[np.ndarray, np.ndarray]) -> None:
        self.labels, self.members, self.offsets = labels, members, offsets
        rows, targets = links
        by_row = np.argsort(rows, kind="stable")
        self.out_rows, self.out_targets = rows[by_row], targets[by_row]
        by_target = np.argsort(targets, kind="stable")
        self.in_targets, self.in_rows = targets[by_target], rows[by_target]

    def _cluster(self, c: int) -> np.ndarray:
        return self.members[self.offsets[c]:self.offsets[c + 1]]

    def __call__(self, i: int) -> np.ndarray:
        c = self.labels[i]
        parts = [self._cluster(c)]
        lo, hi = np.searchsorted(self.out_rows, [i, i + 1])
        parts.extend(self._cluster(t) for t in self.out_targets[lo:hi])
        lo, hi = np.searchsorted(self.in_targets, [c, c + 1])
        parts.append(self.in_rows[lo:hi])
        return np.unique(np.concatenate(parts))


def _against(ws: Workspace, store: StoredEmbeddings, slug: str, config: SemanticConfig,
             device: torch.device) -> tuple[np.ndarray | None, list]:
    """Rows duplicating an item of ``config.against`` (same model) above the first threshold."""
    if config.against is None:
        return None, []
    other_ws = Workspace(config.against)
    other_ws.require_manifest()
    other_slug = choose_store(other_ws, slug)
    other = open_store(other_ws, other_slug)
    if other.vectors.shape[1] != store.vectors.shape[1]:
        raise CurateError(f"--against {config.against}: its embeddings have dim {other.vectors.shape[1]}, "
                          f"these have {store.vectors.shape[1]}")
    best, where = _best_match(store.vectors, store.valid, other_ws, other, device)
    forced = store.valid & (best > config.threshold[0])
    ids = [(other.ids[w], float(s)) if f else None for f, w, s in zip(forced, where, best)]
    return forced, ids


def _best_match(queries: np.ndarray, q_valid: np.ndarray, other_ws: Workspace, other: StoredEmbeddings,
                device: torch.device, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 similarity and store row in the other workspace for every valid query row:
    through the other workspace's saved FAISS index when it matches its store, else exact."""
    from curate.index.ann import search
    from curate.kernels.dispatch import topk_cosine

    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.full(len(queries), -1, dtype=np.int64)
    rows = np.flatnonzero(q_valid)
    index = other.saved_index(other_ws, str(device))
    if index is not None:
        for lo in range(0, len(rows), block):
            part = rows[lo:lo + block]
            sims, hits = search(index, np.asarray(queries[part], dtype=np.float32), 1)
            best[part], where[part] = sims[:, 0], hits[:, 0]
        return best, where
    base_rows = np.flatnonzero(other.valid)
    for lo in range(0, len(rows), block):
        part = rows[lo:lo + block]
        for b0 in range(0, len(base_rows), 262_144):
            base = base_rows[b0:b0 + 262_144]
            sims, idx = topk_cosine(gather(queries, part, device), gather(other.vectors, base, device), 1)
            sims, idx = sims[:, 0].cpu().numpy(), idx[:, 0].cpu().numpy()
            better = sims > best[part]
            best[part[better]], where[part[better]] = sims[better], base[idx[better]]
    return best, where


def decision_table(manifest: pa.Table, store: StoredEmbeddings, labels: np.ndarray, nb: Neighbours, decisions: dict,
                   thresholds: tuple[float, ...], forced: np.ndarray | None, against_ids: list,
                   against: str | None = None) -> tuple[pa.Table, pa.Table]:
    """The dedup decision table (one row per manifest id) and the leakage pairs."""
    n = manifest.num_rows
    mrows = store.manifest_rows
    ids = manifest.column("id").to_pylist()
    hashes = manifest.column("content_hash").to_pylist()
    primary = thresholds[0]
    removed, dup_of = decisions[primary]
    roots = group_roots(removed, dup_of)
    in_store = np.zeros(n, dtype=bool)
    in_store[mrows[store.valid]] = True

    kept = np.zeros(n, dtype=bool)
    kept[mrows] = store.valid & ~removed
    reason: list[str | None] = [None if k else "quarantined" for k in kept]
    duplicate_of: list[str | None] = [None] * n
    group = np.full(n, -1, dtype=np.int64)
    # a group is a kept item with at least one duplicate; numbered in manifest order of the keeper
    linked = np.flatnonzero(removed & (dup_of >= 0))
    keepers = np.unique(roots[linked])
    number = {int(r): g for g, r in enumerate(keepers[np.argsort(mrows[keepers], kind="stable")])}
    # exact-duplicate: a KEPT item of the same group has the same bytes (duplicate_of points at it,
    # whichever member the chain or component linked the item to); else the linked item itself
    # has the same bytes (a chain through a removed byte twin); else semantic-duplicate
    kept_twin: dict[tuple[int, str], int] = {}
    for r in np.flatnonzero(store.valid & ~removed):
        h = hashes[int(mrows[r])]
        if h is not None:
            kept_twin.setdefault((int(roots[r]), h), int(mrows[r]))
    for s in np.flatnonzero(store.valid & removed):
        m = int(mrows[s])
        if forced is not None and forced[s]:
            other_id, _ = against_ids[s]
            reason[m], duplicate_of[m] = "semantic-duplicate", f"{against}::{other_id}"
            continue
        d = int(mrows[dup_of[s]])
        twin = kept_twin.get((int(roots[s]), hashes[m])) if hashes[m] is not None else None
        if twin is not None:
            reason[m], duplicate_of[m] = "exact-duplicate", ids[twin]
        else:
            duplicate_of[m] = ids[d]
            reason[m] = "exact-duplicate" if hashes[m] is not None and hashes[m] == hashes[d] else "semantic-duplicate"
        group[m] = number[int(roots[s])]
    for r, g in number.items():
        group[mrows[r]] = g
    max_sim = np.full(n, np.nan, dtype=np.float32)
    max_sim[mrows] = np.where(np.isfinite(nb.max_sim), nb.max_sim, np.nan)
    cluster = np.full(n, -1, dtype=np.int64)
    cluster[mrows] = labels
    columns = {
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.array(reason, pa.string()),
        "duplicate_of": pa.array(duplicate_of, pa.string()),
        "group": pa.array(group, pa.int64(), mask=group < 0),
        "max_sim": pa.array(max_sim, pa.float32(), mask=np.isnan(max_sim)),
        "cluster": pa.array(cluster, pa.int64(), mask=cluster < 0),
    }
    for t in thresholds:
        k_t = np.zeros(n, dtype=bool)
        k_t[mrows] = store.valid & ~decisions[t][0]
        columns[f"kept@{t:g}"] = pa.array(k_t)
    return pa.table(columns), _leakage(manifest, mrows, removed, dup_of, nb.max_sim)


def _leakage(manifest: pa.Table, mrows: np.ndarray, removed: np.ndarray, dup_of: np.ndarray,
             sims: np.ndarray) -> pa.Table:
    """Pairs (test/val item, train item) that duplicate each other, whichever was kept."""
    split = manifest.column("split").to_pylist()
    ids = manifest.column("id").to_pylist()
    rows = []
    for s in np.flatnonzero(removed & (dup_of >= 0)):
        a, b = int(mrows[s]), int(mrows[dup_of[s]])
        pair = {split[a], split[b]}
        if "train" in pair and pair & {"test", "val"}:
            held, train = (a, b) if split[a] != "train" else (b, a)
            rows.append({"id": ids[held], "split": split[held], "train_id": ids[train], "similarity": float(sims[s])})
    schema = pa.schema([("id", pa.string()), ("split", pa.string()), ("train_id", pa.string()),
                        ("similarity", pa.float32())])
    return pa.Table.from_pylist(rows, schema=schema)


def _save_index(ws: Workspace, slug: str, centroids: np.ndarray, top_ids: np.ndarray) -> None:
    """Centroids and per-row nearest clusters, for later batches and for audits."""
    folder = ws.loc("index", slug)
    atomic.write_bytes(folder.join("centroids.npy"), _npy_bytes(centroids))
    atomic.write_parquet(folder.join("assignments.parquet"), pa.table({
        "row": pa.array(np.arange(len(top_ids))),
        "clusters": pa.array(list(top_ids), pa.list_(pa.int64())),
    }))


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _against_fingerprint(against: str | None, slug: str) -> str | None:
    if against is None:
        return None
    meta = Workspace(against).loc("embeddings", slug, "meta.json")
    return atomic.read_json(meta).get("fingerprint") if meta.exists() else against
