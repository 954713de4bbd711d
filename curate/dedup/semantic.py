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
The FAISS index for later ``--against`` runs is saved only with ``save_index`` (writing 1 GB per
1M x 512 items cost a quarter of the run); without it, ``--against`` builds one in memory when
the other workspace is large.

Memory: the store stays memory-mapped (clusters are gathered batch by batch), and the decision
table is built with Arrow/NumPy, never one Python object per row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from curate.dedup.boundary import boundary_links
from curate.dedup.groups import decision_table, dedup_output
from curate.dedup.keep import parse_policy, priority_ranks
from curate.dedup.rules import check_thresholds, decide
from curate.dedup.scoring import within_clusters
from curate.embed.store import StoredEmbeddings, choose_store, open_store
from curate.errors import CurateError
from curate.index.assign import assign
from curate.index.kmeans import KMeansConfig, fit_spherical_kmeans
from curate.inputs import Manifest, Overrides, Resolved, Store
from curate.io import atomic
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.vectors import gather
from curate.workspace import Workspace, same_place

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
    save_index: bool = False  # a FAISS index under index/<slug>/ now; else --against builds one when it needs it
    precision: str = "auto"  # auto: bf16 screen + exact rescoring where fast (max_sim exact >= thresholds) | fp32


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
        if config.executor == "ray":
            from curate.extras import require_ray

            require_ray()  # a missing Ray is a one-line error before any work
        parse_policy(config.keep)

    def check(self, ws: Workspace, config: SemanticConfig) -> None:
        if config.against is not None:
            check_against(ws, config.against)

    def prefix(self, config: SemanticConfig) -> str:
        return "semantic"

    def settings(self, config: SemanticConfig) -> dict:
        out = config_dict(config)
        out.pop("executor")  # where the work runs changes nothing in the result
        return out

    def inputs(self, config: SemanticConfig) -> tuple:
        return (Manifest(), Store(), Overrides())

    def resolve(self, ws: Workspace, config: SemanticConfig) -> Resolved:
        got = super().resolve(ws, config)
        against = _against_fingerprint(config.against, got.store.slug)  # the other workspace's same-model store
        return dataclasses.replace(got, fingerprints={**got.fingerprints, "against": against})

    def compute(self, ctx: RunContext) -> Output:
        return _semantic(ctx.ws, ctx.config, ctx.inputs.store, ctx)


def check_against(ws: Workspace, against: str) -> None:
    """``--against`` must name another workspace with a manifest, before any work: against itself (the
    same folder or URI, or a copy with the same manifest fingerprint) every item would duplicate itself,
    be removed, and that run would become the dedup run prune and export apply."""
    other = Workspace(against)
    if same_place(ws.root, other.root):
        raise CurateError(f"--against {against} is this workspace ({ws.root.uri}): every item would be removed as a "
                          "duplicate of itself; name another workspace")
    other.require_manifest()
    if other.manifest_fingerprint() == ws.manifest_fingerprint():
        raise CurateError(f"--against {against} has the same manifest as this workspace ({ws.root.uri}; fingerprint "
                          f"{ws.manifest_fingerprint()[:12]}): every item would be removed as a duplicate of itself; "
                          "name a workspace of other data")


def semantic_dedup(ws: Workspace, config: SemanticConfig = SemanticConfig(), **run: Any) -> StageResult:
    """Score and decide; reuse the run when manifest, store and config are unchanged."""
    return run_stage(ws, SemanticDedup(), config, **run)


def _semantic(ws: Workspace, config: SemanticConfig, store: StoredEmbeddings, clock: RunContext) -> Output:
    device = clock.device  # resolved once for the run (RunContext.device)
    manifest = ws.read_manifest(manifest_columns(config.keep))
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

        index = build_index(vectors, valid, centroids=centroids, assignments=labels, device=device)
        save_index(index, index_dir(ws, store.slug), {"store_fingerprint": store.meta["fingerprint"]})
        clock.lap("index")
    return dedup_output(table, leakage, "semantic", store.slug, k, len(boundary))


def manifest_columns(keep: str) -> list[str]:
    """The manifest columns the decision table and the keep policy read (not paths and the rest:
    at 10M rows they would be gigabytes)."""
    from curate.manifest import SCHEMA

    kind, column, _ = parse_policy(keep)
    needed = ["id", "content_hash", "split"]
    if kind == "quality":
        needed += ["kind", "text", "width", "height", "bytes"]
    elif kind == "column" and column in SCHEMA.names and column not in needed:
        needed.append(column)
    return needed


def _exact_above(config: SemanticConfig) -> float | None:
    """Where ``max_sim`` must be exact: from the lowest threshold up (None: everywhere)."""
    return None if config.precision == "fp32" else min(config.threshold)


# The bf16 assignment screen pays for its exact rescoring pass (a gather and a dot product per row,
# memory-bound) only when the matmul is large: at 100k rows (k = 316) it took 7-9 s against 3 s
# for plain fp32 on a busy 2-core machine; at 1M (k = 1,000) about the same as fp32.
SCREEN_ASSIGN_CLUSTERS = 1000


def _cluster(vectors: np.ndarray, valid: np.ndarray, config: SemanticConfig, clock: RunContext):
    n_valid = int(valid.sum())
    k = config.clusters or max(1, min(n_valid, int(round(np.sqrt(n_valid)))))
    sample = config.sample or max(64 * k, 10_000)
    screen = config.precision == "auto"
    centroids = fit_spherical_kmeans(vectors, valid, KMeansConfig(
        clusters=k, sample=sample, iterations=config.iterations, seed=config.seed, device=clock.device,
        init="random", screen=screen))
    k = len(centroids)
    clock.lap("kmeans")
    a = assign(vectors, centroids, valid=valid, top=min(config.neighbours, k), device=clock.device,
               screen=screen and k >= SCREEN_ASSIGN_CLUSTERS)
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
             device: torch.device) -> tuple[np.ndarray | None, pa.Array | None]:
    """Rows duplicating an item of ``config.against`` (same model) above the first threshold, and
    the id of that item per row (null where none)."""
    if config.against is None:
        return None, None
    other_ws = Workspace(config.against)
    other_ws.require_manifest()
    other_slug = choose_store(other_ws, slug)
    other = open_store(other_ws, other_slug)
    if other.vectors.shape[1] != store.vectors.shape[1]:
        raise CurateError(f"--against {config.against}: its embeddings have dim {other.vectors.shape[1]}, "
                          f"these have {store.vectors.shape[1]}")
    best, where = _best_match(store.vectors, store.valid, other_ws, other, device)
    forced = store.valid & (best > config.threshold[0])
    hits = np.where(forced, where, -1)
    return forced, other.ids.arrow.take(pa.array(hits, mask=hits < 0))


# Above this many valid rows in the other workspace, --against without a saved index builds one
# (IVF, in memory) instead of scanning every row exactly.
AGAINST_INDEX_ROWS = 200_000


def _against_index(other_ws: Workspace, other: StoredEmbeddings, device: torch.device):
    """The other workspace's saved FAISS index when it matches its store; else a new in-memory one
    when that store is large and FAISS is installed; else None (exact scan)."""
    from curate.index.ann import build_index
    from curate.index.kmeans import import_faiss

    index = other.saved_index(other_ws, device)
    if index is None and int(other.valid.sum()) >= AGAINST_INDEX_ROWS and import_faiss() is not None:
        index = build_index(other.vectors, other.valid, device=device)
    return index


def _best_match(queries: np.ndarray, q_valid: np.ndarray, other_ws: Workspace, other: StoredEmbeddings,
                device: torch.device, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 similarity and store row in the other workspace for every valid query row: through
    a FAISS index (see :func:`_against_index`) when there is one, else exact."""
    from curate.index.ann import search
    from curate.kernels.dispatch import topk_cosine

    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.full(len(queries), -1, dtype=np.int64)
    rows = np.flatnonzero(q_valid)
    index = _against_index(other_ws, other, device)
    if index is not None:
        for lo in range(0, len(rows), block):
            part = rows[lo:lo + block]
            sims, hits = search(index, gather(queries, part), 1)
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


def _save_index(ws: Workspace, slug: str, centroids: np.ndarray, top_ids: np.ndarray) -> None:
    """Centroids and per-row nearest clusters, for later batches and for audits."""
    folder = ws.loc("index", slug)
    atomic.write_bytes(folder.join("centroids.npy"), _npy_bytes(centroids))
    atomic.write_parquet(folder.join("assignments.parquet"), pa.table({
        "row": pa.array(np.arange(len(top_ids))),
        "clusters": pa.FixedSizeListArray.from_arrays(np.ascontiguousarray(top_ids, dtype=np.int64).reshape(-1),
                                                      top_ids.shape[1]),
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
