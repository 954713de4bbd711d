"""Assign every store row to its nearest centroids, blockwise over the memory-mapped store.

Rows are read ``block`` at a time from the fp16 array (:func:`curate.vectors.blocks`), converted
to fp32 and multiplied by the centroids with torch (on the stage's device), so peak memory is
about block x (d + k) floats, never N x k. ``top=2`` also records the second-nearest
centroid: the dedup stage compares items near a cluster boundary with that cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.device import resolve_device
from curate.index.pages import release
from curate.vectors import as_tensor, blocks  # noqa: F401 (as_tensor: re-exported)

# Cap on one block's [block, k] similarity matrix: with many centroids the block shrinks.
MAX_SIMS_BYTES = 1 << 30


@dataclass(frozen=True)
class Assignment:
    """Nearest centroids of every row; invalid rows have label -1, ids -1 and NaN sims.

    When ``top`` exceeds the number of centroids the missing columns hold id -1, sim -inf.
    """

    labels: np.ndarray  # int32 [N]
    sims: np.ndarray  # float32 [N, top], cosine, descending
    centroid_ids: np.ndarray  # int32 [N, top]


def assign(vectors: np.ndarray, centroids: np.ndarray, valid: np.ndarray | None = None, block: int = 65536,
           top: int = 2, device: str | torch.device = "auto", screen: bool = False) -> Assignment:
    """Label each row of ``vectors`` [N, d] with its most similar of ``centroids`` [k, d].

    ``vectors`` may be an ``np.memmap``: only ``block`` rows are materialised at a time.
    Similarities are inner products, i.e. cosines for unit vectors.

    ``screen=True`` scores in bf16 where bf16 matmuls are fast (about 2x on CPUs with
    AVX512-BF16/AMX): ``sims[:, 0]`` is still the exact fp32 similarity to the chosen centroid,
    which is the nearest unless another scores within 1/64 of it (those rows are re-checked
    against their second choice exactly); ``sims[:, 1:]`` are within 1/64.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    n, d = vectors.shape
    cents = np.ascontiguousarray(centroids, dtype=np.float32)
    if cents.ndim != 2 or cents.shape[1] != d:
        raise ValueError(f"centroids of shape {cents.shape} do not match vectors of dimension {d}")
    k = cents.shape[0]
    dev = resolve_device(device)
    labels = np.full(n, -1, dtype=np.int32)
    sims = np.full((n, top), -np.inf, dtype=np.float32)
    ids = np.full((n, top), -1, dtype=np.int32)
    if n == 0 or k == 0:
        return Assignment(labels, sims, ids)
    step = max(1, min(int(block), MAX_SIMS_BYTES // (4 * k)))
    got = min(top, k)
    cents_t = torch.from_numpy(cents).to(dev).T.contiguous()
    nearest = _screened_nearest(cents_t, dev) if screen else None
    as_stored = nearest is not None and dev.type == "cpu"  # the screen widens what it needs
    with torch.inference_mode():
        for start, x in blocks(vectors, range(n), dev, block=step, widen=not as_stored):
            stop = start + len(x)
            s, i = torch.topk(x @ cents_t, got, dim=1) if nearest is None else nearest(x, got)
            release(vectors)  # the block is read: its mapped pages need not stay resident
            sims[start:stop, :got] = s.cpu().numpy()
            ids[start:stop, :got] = i.to(torch.int32).cpu().numpy()
    labels[:] = ids[:, 0]
    if valid is not None:
        invalid = ~np.asarray(valid, dtype=bool)
        if invalid.shape != (n,):
            raise ValueError(f"valid mask of shape {invalid.shape} does not match {n} rows")
        labels[invalid] = -1
        ids[invalid] = -1
        sims[invalid] = np.nan
    return Assignment(labels, sims, ids)


def _screened_nearest(cents_t: torch.Tensor, device: torch.device):
    """``nearest(x, top)`` -> (sims, ids) like ``topk(x @ cents_t)``, scored in bf16 where that
    is fast, with the first column made exact (see :func:`assign`)."""
    from curate.kernels._runtime import bf16_matmul_is_fast
    from curate.kernels.max_sim_earlier import BF16_SCREEN_EPS

    if not bf16_matmul_is_fast(device.type):
        return lambda x, top: torch.topk(x.float() @ cents_t, top, dim=1)  # rows may come as stored (fp16)
    screened_t = cents_t.to(torch.bfloat16).contiguous()
    cents = cents_t.T.contiguous()

    def nearest(x: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, i = torch.topk(x.to(torch.bfloat16) @ screened_t, max(top, 2) if len(cents) > 1 else 1, dim=1)
        s = s.float()
        s[:, 0] = rowwise_dot(x, cents, i[:, 0])
        if s.shape[1] > 1:  # the runner-up may be the true nearest when it scored within the error
            close = torch.nonzero(s[:, 0] - s[:, 1] < 2 * BF16_SCREEN_EPS).flatten()
            second = rowwise_dot(x[close], cents, i[close, 1])
            swap = close[second > s[close, 0]]
            s[swap, 1] = s[swap, 0]
            s[swap, 0] = second[second > s[close, 0]]
            i[swap] = i[swap][:, [1, 0, *range(2, i.shape[1])]]
        return s[:, :top], i[:, :top]
    return nearest


def rowwise_dot(x: torch.Tensor, cents: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x[r] . cents[ids[r]]`` in fp32 for every row (``x`` may be fp16). One op per block: many
    small chunked ops measured slower on a busy machine (each waits at an intra-op barrier)."""
    return torch.einsum("bd,bd->b", x.float(), cents.index_select(0, ids))


def cluster_members(labels: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by cluster: ``order[offsets[c]:offsets[c + 1]]`` are cluster ``c``'s rows.

    The sort is stable, so rows stay in store order within a cluster; rows labelled -1
    (invalid) are left out. ``order`` is int64, ``offsets`` int64 [k + 1].
    """
    labels = np.asarray(labels)
    keep = labels >= 0
    if k is None:
        k = int(labels[keep].max()) + 1 if keep.any() else 0
    elif keep.any() and int(labels.max()) >= k:
        raise ValueError(f"label {int(labels.max())} is out of range for k={k}")
    order = np.argsort(labels, kind="stable").astype(np.int64, copy=False)
    order = order[len(labels) - int(keep.sum()):]
    counts = np.bincount(labels[keep], minlength=k)
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return order, offsets
