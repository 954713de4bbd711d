"""``--method knn``: duplicate groups as connected components of the similarity graph.

A FAISS index (flat for small stores, IVF above; GPU when available) answers a range
search at the lowest threshold; pairs above each threshold are joined with union-find.
In each component the highest-priority item (``--keep``; ``hard``/``easy`` measure the
distance to the component's mean direction) is kept and every other item is removed as
its duplicate. Components are transitive (a~b~c groups a with c), which is the point of
this grouping and also its cost: it removes more than the no-chain rule of ``semantic``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.dedup.groups import components, decision_table, dedup_output
from curate.dedup.keep import parse_policy, priority_ranks
from curate.dedup.rules import check_thresholds
from curate.dedup.scoring import Neighbours
from curate.index.ann import build_index, range_search
from curate.inputs import Manifest, Overrides, Store
from curate.runner import Output, RunContext, Stage


@dataclass(frozen=True)
class KnnConfig:
    threshold: tuple[float, ...] = (0.9,)  # the first decides `kept`; each gets a kept@T column
    model: str | None = None  # store slug or model spec; None: the only store
    keep: str = "quality"
    seed: int = 0
    device: str = "auto"


class KnnDedup(Stage):
    """``curate dedup --method knn`` on the runner: reads the manifest and one embedding store."""

    name = "dedup"
    config_type = KnnConfig

    def validate(self, config: KnnConfig) -> None:
        check_thresholds(config.threshold)
        parse_policy(config.keep)

    def prefix(self, config: KnnConfig) -> str:
        return "knn"

    def inputs(self, config: KnnConfig) -> tuple:
        return (Manifest(), Store(), Overrides())

    def compute(self, ctx: RunContext) -> Output:
        store, config = ctx.inputs.store, ctx.config
        manifest = ctx.ws.read_manifest()
        labels, nb, decisions = knn_decisions(store.vectors, store.valid, store.manifest_rows, manifest,
                                              config.threshold, config.keep, config.seed, ctx.device)
        ctx.lap("score")
        table, leakage = decision_table(manifest, store, labels, nb, decisions, config.threshold, None, [])
        return dedup_output(table, leakage, "knn", store.slug, int(len(np.unique(labels[labels >= 0]))), 0)


def knn_decisions(vectors: np.ndarray, valid: np.ndarray, manifest_rows: np.ndarray, manifest,
                  thresholds: tuple[float, ...], keep: str, seed: int, device: torch.device | str):
    """``(labels, neighbours, {threshold: (removed, duplicate_of)})`` over the store rows."""
    n = len(valid)
    index = build_index(vectors, valid, device=device)
    lims, sims, rows = range_search(index, vectors, min(thresholds))
    owner = np.repeat(np.arange(n), np.diff(lims))
    pair = (owner != rows) & valid[owner]
    owner, rows, sims = owner[pair], rows[pair], sims[pair]
    best = np.full(n, -np.inf, dtype=np.float32)
    arg = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((rows, -sims, owner))  # per owner, best neighbour first
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]] if len(order) else order
    best[owner[first]], arg[owner[first]] = sims[first], rows[first]

    decisions = {}
    labels = np.full(n, -1, dtype=np.int64)
    for t in thresholds:
        keep_pair = sims > t
        root = components(n, owner[keep_pair], rows[keep_pair])
        mean = np.zeros((n, vectors.shape[1]), dtype=np.float32)
        np.add.at(mean, root[valid], vectors[valid].astype(np.float32))
        mean /= np.linalg.norm(mean, axis=1, keepdims=True).clip(1e-12)
        centre_sim = np.einsum("ij,ij->i", vectors.astype(np.float32), mean[root])
        ranks = priority_ranks(keep, centre_sim, manifest_rows, manifest, seed)
        ranks = np.where(valid, ranks, np.iinfo(np.int64).max)
        keeper = np.full(n, -1, dtype=np.int64)
        for r in np.argsort(ranks, kind="stable"):  # first (best-ranked) member claims its component
            if keeper[root[r]] < 0:
                keeper[root[r]] = r
        removed = valid & (keeper[root] != np.arange(n))
        decisions[t] = (removed, np.where(removed, keeper[root], -1))
        if t == thresholds[0]:
            labels = np.where(valid, root, -1)
    return labels, Neighbours(best, arg), decisions
