"""Targeted mining: the unlabeled items nearest to a set of queries (e.g. the model's failures).

1. Retrieval: each query's nearest store rows, through the workspace's saved FAISS index when
   it matches the store (``index/<slug>/``, GPU FAISS when present), else an exact blockwise
   search over the candidates (torch, GPU when present) for pools below ``FLAT_LIMIT``, else a
   FAISS index built for the store and saved for the next run. ``k`` starts at
   ``4 x per_query`` and doubles for a query whose list runs dry before the batch is full
   (filtered rows: labeled, dedup-removed, queries, near-duplicates).
2. Spreading: queries are grouped by spherical k-means on their embeddings (k ~ sqrt(Q)); the
   budget is dealt round-robin over the groups, then over the queries within a group, each
   turn taking that query's next-nearest acceptable item. One over-represented failure mode
   cannot take the whole batch; ``per_query`` caps what one query takes.
3. ``min_similarity``: an item less similar than this to a query is never picked for it; a query
   that yields nothing above it is a weak query (``weak`` in the result), reported instead of
   padding the batch with unrelated items.
4. Dedup-aware: an item whose cosine to a labeled item or to an earlier pick exceeds
   ``dup_threshold`` is skipped (the labeled set is scanned blockwise, only for items reached).

Memory: Q x k candidate lists, budget x d picked vectors, and (exact path) the candidates as
fp32 when they fit in ``cache_bytes``; the store itself stays memory-mapped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from curate.device import resolve_device
from curate.embed.store import StoredEmbeddings
from curate.index.ann import FLAT_LIMIT, AnnIndex, exact_search, search
from curate.select.hybrid import max_similarity
from curate.vectors import gather
from curate.workspace import Workspace

SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Retriever:
    """``search(queries fp32 [q, d], k) -> (sims [q, k], store rows [q, k])``, rows -1 past the end."""

    search: SearchFn
    kind: str  # index:flat | index:ivf | exact
    limit: int  # the most rows a search can return


@dataclass(frozen=True)
class MiningResult:
    rows: np.ndarray  # int64 store rows, in pick order
    similarity: np.ndarray  # float64 cosine of each pick to its query
    query: np.ndarray  # int64 query index of each pick
    groups: np.ndarray  # int64 query group of every query
    searches: int  # search calls (1 + k growths)
    retriever: str
    weak: np.ndarray | None = None  # int64 queries with no candidate at min_similarity or above


def index_retriever(index: AnnIndex) -> Retriever:
    """Search a FAISS index over the whole store (non-candidates are filtered by the miner)."""
    return Retriever(lambda q, k: search(index, q, max(1, min(k, index.count))), f"index:{index.kind}", index.count)


def exact_retriever(vectors: np.ndarray, searchable: np.ndarray, device: str | torch.device = "auto",
                    cache_bytes: int = 1 << 30) -> Retriever:
    """Exact top-k over the ``searchable`` store rows: held as fp32 on the device when they fit
    in ``cache_bytes``, else streamed from the memory map per search."""
    dev = resolve_device(device)
    rows = np.flatnonzero(searchable)
    if len(rows) * vectors.shape[1] * 4 > cache_bytes:
        return Retriever(lambda q, k: exact_search(vectors, q, max(1, k), valid=searchable, device=dev),
                         "exact", len(rows))
    base = gather(vectors, rows, dev)

    def run(q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from curate.kernels.dispatch import topk_cosine

        if not len(rows):
            return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        sims, idx = topk_cosine(torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)).to(dev), base, max(1, k))
        sims, idx = sims.cpu().numpy(), idx.cpu().numpy()
        return sims, np.where(idx >= 0, rows[np.clip(idx, 0, None)], -1)

    return Retriever(run, "exact", len(rows))


def choose_retriever(vectors: np.ndarray, candidates: np.ndarray, index: AnnIndex | None,
                     device: str | torch.device = "auto", flat_limit: int = FLAT_LIMIT) -> Retriever:
    """The index when given and the pool has ``flat_limit`` candidates or more; else exact search
    over the candidates (same answer as a flat index, nothing to filter)."""
    if index is not None and candidates.sum() >= flat_limit:
        return index_retriever(index)
    return exact_retriever(vectors, candidates, device)


def open_index(ws: Workspace, slug: str, store: StoredEmbeddings, candidates: int, device: str | torch.device = "auto",
               flat_limit: int = FLAT_LIMIT) -> AnnIndex | None:
    """None (exact search) for pools below ``flat_limit``; else the saved ``index/<slug>/`` when it
    was built from this store, else a new index over the store, saved for the next run."""
    from curate.index.ann import build_index, index_dir, save_index

    if candidates < flat_limit:
        return None
    saved = store.saved_index(ws, device)
    if saved is not None:
        return saved
    index = build_index(store.vectors, store.valid, device=device)
    save_index(index, index_dir(ws, slug), {"store_fingerprint": store.meta["fingerprint"]})
    return index


def query_groups(queries: np.ndarray, clusters: int | None, seed: int,
                 device: str | torch.device = "auto") -> np.ndarray:
    """Group of each query: spherical k-means with ``clusters`` (default round(sqrt(Q))) groups,
    numbered in order of each group's first query; one group when k <= 1."""
    q = len(queries)
    k = min(q, clusters if clusters is not None else int(round(math.sqrt(q))))
    if k <= 1:
        return np.zeros(q, dtype=np.int64)
    from curate.select.typiclust import cluster_pool

    labels = cluster_pool(queries, np.ones(q, dtype=bool), k, seed, device)
    _, first = np.unique(labels, return_index=True)
    renumber = {int(labels[f]): g for g, f in enumerate(sorted(first))}
    return np.array([renumber[int(v)] for v in labels], dtype=np.int64)


def _labeled_check(vectors: np.ndarray, labeled: np.ndarray, dev: torch.device,
                   cache_bytes: int) -> Callable[[np.ndarray], np.ndarray]:
    """``rows -> max cosine to any labeled row``: the labeled vectors held on the device when they
    fit in ``cache_bytes``, else streamed blockwise (``hybrid.max_similarity``)."""
    rows = np.flatnonzero(labeled)
    if not len(rows):
        return lambda r: np.full(len(r), -np.inf, dtype=np.float32)
    if len(rows) * vectors.shape[1] * 4 > cache_bytes:
        return lambda r: max_similarity(vectors, r, rows, dev)[0]
    ref = gather(vectors, rows, dev, unit=True)

    def check(r: np.ndarray) -> np.ndarray:
        if not len(r):
            return np.empty(0, dtype=np.float32)
        x = torch.from_numpy(gather(vectors, r, unit=True)).to(dev)
        return (x @ ref.T).max(dim=1).values.cpu().numpy()

    return check


def mine(vectors: np.ndarray, queries: np.ndarray, candidates: np.ndarray, labeled: np.ndarray, budget: int,
         retriever: Retriever, per_query: int | None = None, dup_threshold: float | None = 0.9,
         clusters: int | None = None, seed: int = 0, device: str | torch.device = "auto",
         cache_bytes: int = 1 << 30, chunk: int = 16, min_similarity: float | None = None) -> MiningResult:
    """Pick up to ``budget`` of the ``candidates`` (bool over store rows) nearest to ``queries``
    ([Q, d] unit rows); ``labeled`` (bool over store rows) are never picked nor near-duplicated;
    nothing below ``min_similarity`` to its query is picked."""
    dev = resolve_device(device)
    nq = len(queries)
    budget = int(min(budget, candidates.sum(), nq * per_query if per_query else budget))
    empty = np.empty(0, np.int64)
    if nq == 0 or budget <= 0:
        return MiningResult(empty, np.empty(0), empty, np.zeros(nq, np.int64), 0, retriever.kind)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    groups = query_groups(queries, clusters, seed, dev)
    share = per_query or math.ceil(budget / nq)
    k0 = max(1, min(retriever.limit, 4 * share))
    sims, hits = retriever.search(queries, k0)
    lists = [(sims[i], hits[i]) for i in range(nq)]
    searches = 1
    near_labeled = _labeled_check(vectors, labeled, dev, cache_bytes) if dup_threshold is not None else None
    known: dict[int, float] = {}  # candidate row -> max cosine to a labeled item (filled lazily)
    if near_labeled is not None:  # the rows each query will most likely reach, in one product
        first = np.unique(hits[:, :share + max(2, share // 2)])
        first = first[first >= 0]
        first = first[candidates[first]]
        for lo in range(0, len(first), 4096):
            known.update(zip(first[lo:lo + 4096].tolist(), near_labeled(first[lo:lo + 4096]).tolist()))
    cursor = np.zeros(nq, dtype=np.int64)
    taken = np.zeros(nq, dtype=np.int64)
    below = np.zeros(nq, dtype=bool)  # stopped at min_similarity
    alive = np.ones(nq, dtype=bool)
    used: set[int] = set()
    picked = torch.empty((budget, queries.shape[1]), dtype=torch.float32, device=dev)
    out_rows: list[int] = []
    out_sims: list[float] = []
    out_query: list[int] = []

    def next_item(qi: int) -> bool:
        """Advance query ``qi`` to its next acceptable item and pick it; False when it has none."""
        nonlocal searches
        while True:
            s, r = lists[qi]
            while cursor[qi] < len(r):
                row, sim = int(r[cursor[qi]]), float(s[cursor[qi]])
                cursor[qi] += 1
                if row < 0:
                    break
                if min_similarity is not None and sim < min_similarity:  # lists are sorted: the rest is weaker
                    below[qi] = True
                    return False
                if not candidates[row] or row in used:
                    continue
                if near_labeled is not None:
                    if row not in known:  # this and the next few rows of the list, in one product
                        ahead = r[cursor[qi] - 1:cursor[qi] - 1 + chunk]
                        ahead = np.unique(ahead[ahead >= 0])
                        ahead = ahead[candidates[ahead]]
                        known.update(zip(ahead.tolist(), near_labeled(ahead).tolist()))
                    if known[row] > dup_threshold:
                        continue
                v = torch.from_numpy(gather(vectors, np.array([row]), unit=True)[0]).to(dev)
                n = len(out_rows)
                if dup_threshold is not None and n and float((picked[:n] @ v).max()) > dup_threshold:
                    used.add(row)  # a near-duplicate of a pick stays one: never look at it again
                    continue
                picked[n] = v
                used.add(row)
                out_rows.append(row)
                out_sims.append(sim)
                out_query.append(qi)
                taken[qi] += 1
                return True
            if len(r) >= retriever.limit or (len(r) and r[-1] < 0):
                return False
            k = min(retriever.limit, 2 * len(r))  # ran dry: search this query deeper
            s2, r2 = retriever.search(queries[qi:qi + 1], k)
            searches += 1
            lists[qi] = (s2[0], r2[0])

    order = [np.flatnonzero(groups == g) for g in range(int(groups.max()) + 1)]
    turn = np.zeros(len(order), dtype=np.int64)  # each group's next query (round-robin)
    while len(out_rows) < budget and alive.any():
        for g, members in enumerate(order):
            if len(out_rows) >= budget:
                break
            for _ in range(len(members)):  # this group's turn: its next query that still yields
                qi = int(members[turn[g] % len(members)])
                turn[g] += 1
                if not alive[qi]:
                    continue
                if next_item(qi):
                    if per_query and taken[qi] >= per_query:
                        alive[qi] = False
                    break
                alive[qi] = False
    used.clear()
    weak = np.flatnonzero(below & (taken == 0)).astype(np.int64) if min_similarity is not None else None
    return MiningResult(np.asarray(out_rows, np.int64), np.asarray(out_sims, np.float64),
                        np.asarray(out_query, np.int64), groups, searches, retriever.kind, weak)
