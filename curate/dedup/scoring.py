"""Per-item "max similarity to a higher-priority item": within clusters and across boundaries.

Within a cluster, rows sorted by keep rank go through the ``max_sim_earlier`` kernel
(blockwise, never n x n); clusters are packed into batches of at most ``batch_rows`` rows
so memory is bounded by the batch, not the largest cluster squared.

SemDeDup never compares items of different clusters, so a duplicate pair split by a
boundary survives. Here an item is also compared with all items of each of its 2nd..4th
nearest clusters whose centroid is within ``margin`` of its nearest one; each such block
updates both sides (the boundary item and the other cluster's items), with the same rule:
only a higher-priority item (smaller rank) can make an item a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from curate.dedup.boundary import across_batch
from curate.index.pages import release
from curate.kernels._runtime import bf16_matmul_is_fast
from curate.kernels.dispatch import max_sim_earlier
from curate.vectors import gather


@dataclass(frozen=True)
class Neighbours:
    """Best higher-priority neighbour of every store row (``-1`` / ``-inf`` when none)."""

    max_sim: np.ndarray  # float32 [N]
    argmax: np.ndarray  # int64 [N], store row


@dataclass(frozen=True)
class Batch:
    """Whole clusters scored together, plus the boundary rows of other clusters linked into them."""

    rows: np.ndarray  # store rows, cluster by cluster, by rank within each cluster
    seg: np.ndarray  # int64 [clusters + 1] offsets of each cluster in ``rows``
    row_ranks: np.ndarray  # ranks[rows]
    probes: np.ndarray  # boundary rows (any cluster) compared with one cluster of this batch
    probe_seg: np.ndarray  # which segment each probe is compared with (non-decreasing)
    probe_ranks: np.ndarray  # ranks[probes]


def cluster_batches(members: np.ndarray, offsets: np.ndarray, ranks: np.ndarray, batch_rows: int,
                    links: tuple[np.ndarray, np.ndarray] | None = None) -> list[Batch]:
    """Whole clusters packed into batches of at most ``batch_rows`` rows (a bigger cluster is a
    batch of its own), each with the ``links`` (boundary row, target cluster) that target it."""
    link_rows, targets = links if links is not None else (np.empty(0, np.int64), np.empty(0, np.int64))
    by_target = np.argsort(targets, kind="stable")
    link_rows, targets = link_rows[by_target], targets[by_target]
    batches = []
    k = len(offsets) - 1
    start = 0
    while start < k:
        stop, rows_in = start, 0
        while stop < k and (rows_in == 0 or rows_in + offsets[stop + 1] - offsets[stop] <= batch_rows):
            rows_in += offsets[stop + 1] - offsets[stop]
            stop += 1
        rows, seg = [], [0]
        for c in range(start, stop):
            cluster = members[offsets[c]:offsets[c + 1]]
            rows.append(cluster[np.argsort(ranks[cluster], kind="stable")])
            seg.append(seg[-1] + len(rows[-1]))
        if seg[-1]:
            lo, hi = np.searchsorted(targets, [start, stop])
            rows_all = np.concatenate(rows)
            batches.append(Batch(rows_all, np.asarray(seg, dtype=np.int64), ranks[rows_all], link_rows[lo:hi],
                                 targets[lo:hi] - start, ranks[link_rows[lo:hi]]))
        start = stop
    return batches


@dataclass(frozen=True)
class BatchScores:
    """One batch's results: within-cluster best (per batch row) and across-boundary best for
    the batch rows and for the probes (store rows; -1 / -inf when none)."""

    within: tuple[np.ndarray, np.ndarray]
    rows_across: tuple[np.ndarray, np.ndarray]
    probes_across: tuple[np.ndarray, np.ndarray]


def score_batch(vectors: np.ndarray, batch: Batch, device: torch.device,
                exact_above: float | None = None) -> BatchScores:
    """``max_sim_earlier`` over the batch's clusters, then its probes against their target clusters.

    The batch is gathered once and serves both passes. ``exact_above``: within-cluster values
    from there up are exact; below it they may come from a bf16 screen (within 1/64), which
    is all a dedup threshold at or above it needs. Across-boundary values are always exact.

    The rows stay as stored (fp16, half the memory and copying) where the CPU bf16 screen reads
    them (it widens block by block), else fp32."""
    as_stored = device.type == "cpu" and exact_above is not None and bf16_matmul_is_fast("cpu")
    x = gather(vectors, batch.rows, device, widen=not as_stored)
    sims, idx = max_sim_earlier(x, torch.from_numpy(batch.seg).to(device), exact_above=exact_above)
    sims, idx = sims.cpu().numpy(), idx.cpu().numpy()
    within = (sims, _to_store(batch.rows, idx))
    q = gather(vectors, batch.probes, device)
    release(vectors)  # both are copies now: the store's mapped pages need not stay resident
    (row_best, row_arg), (probe_best, probe_arg) = across_batch(
        x, batch.seg, torch.from_numpy(batch.row_ranks).to(device), q, batch.probe_seg,
        torch.from_numpy(batch.probe_ranks).to(device))
    return BatchScores(within, (row_best, _to_store(batch.probes, row_arg)),
                       (probe_best, _to_store(batch.rows, probe_arg)))


def _to_store(rows: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Batch-local indices (-1: none) as store rows."""
    return np.where(local >= 0, rows[np.clip(local, 0, None)], -1) if len(rows) else np.full_like(local, -1)


def within_clusters(vectors: np.ndarray, members: np.ndarray, offsets: np.ndarray, ranks: np.ndarray,
                    device: torch.device, batch_rows: int = 262_144, executor: str = "local",
                    exact_above: float | None = None,
                    links: tuple[np.ndarray, np.ndarray] | None = None) -> Neighbours:
    """Max similarity of each row to a higher-ranked row of its own cluster, or of a cluster
    it is linked to across a boundary (``links``: (row, other cluster) pairs, see
    :func:`curate.dedup.boundary.boundary_links`).

    Batches are independent: ``executor="ray"`` runs them as Ray tasks (each opens the
    memory-mapped store by path, so workers need the workspace on a shared filesystem)."""
    n = len(ranks)
    inside = Neighbours(np.full(n, -np.inf, dtype=np.float32), np.full(n, -1, dtype=np.int64))
    across = Neighbours(np.full(n, -np.inf, dtype=np.float32), np.full(n, -1, dtype=np.int64))
    workers = torch.get_num_threads() if device.type == "cpu" and executor == "local" else 1
    if workers > 1:  # enough batches to keep every worker busy
        batch_rows = max(1, min(batch_rows, -(-len(members) // (4 * workers))))
    batches = cluster_batches(members, offsets, ranks, batch_rows, links)
    if executor == "ray":
        results = _score_on_ray(vectors, batches, device, exact_above)
    elif workers > 1:
        results = _score_on_threads(vectors, batches, device, exact_above, workers)
    else:
        results = (score_batch(vectors, batch, device, exact_above) for batch in batches)
    for batch, scores in zip(batches, results):
        inside.max_sim[batch.rows], inside.argmax[batch.rows] = scores.within
        merge_max(across, batch.rows, *scores.rows_across)
        merge_max(across, batch.probes, *scores.probes_across)
    return combine(inside, across)


def _score_on_threads(vectors: np.ndarray, batches: list[Batch], device: torch.device,
                      exact_above: float | None, workers: int) -> Iterator[BatchScores]:
    """Batches on ``workers`` threads, each running single-threaded torch ops (torch releases the
    GIL in them). A cluster's work is many small matmuls and reductions; with two intra-op threads
    each op ends at a barrier, and on a busy machine a barrier waits for a descheduled thread (on
    2 shared cores this made scoring ~10x slower); one thread per batch never waits for another."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield from pool.map(lambda batch: score_batch(vectors, batch, device, exact_above), batches)


def _score_on_ray(vectors: np.ndarray, batches: list[Batch], device: torch.device,
                  exact_above: float | None) -> list[BatchScores]:
    from curate.extras import require_ray

    ray = require_ray()

    path = getattr(vectors, "filename", None)
    if path is None:
        raise ValueError("the Ray executor needs a memory-mapped store (a file path)")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)

    worker_device = torch.device(device.type)  # the driver's choice without its index: a worker sees its one GPU

    @ray.remote(num_gpus=1 if device.type == "cuda" else 0)
    def task(batch: Batch) -> BatchScores:
        local = np.load(path, mmap_mode="r")
        return score_batch(local, batch, worker_device, exact_above)

    return ray.get([task.remote(batch) for batch in batches])


def merge_max(into: Neighbours, rows: np.ndarray, values: np.ndarray, args: np.ndarray) -> None:
    """``into[rows] = max(into[rows], values)`` (with its argmax) where ``rows`` may repeat."""
    better = (args >= 0) & (values > into.max_sim[rows])
    rows, values, args = rows[better], values[better], args[better]
    order = np.lexsort((values, rows))  # by row, then value ascending: the last of a row is its best
    rows, values, args = rows[order], values[order], args[order]
    last = np.r_[rows[1:] != rows[:-1], True] if len(rows) else np.zeros(0, dtype=bool)
    into.max_sim[rows[last]] = values[last]
    into.argmax[rows[last]] = args[last]


def combine(a: Neighbours, b: Neighbours) -> Neighbours:
    take_b = b.max_sim > a.max_sim
    return Neighbours(np.where(take_b, b.max_sim, a.max_sim), np.where(take_b, b.argmax, a.argmax))

