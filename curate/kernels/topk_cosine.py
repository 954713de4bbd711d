"""topk_cosine: the k most similar base rows of every query row (cosine = dot of normalised rows).

``q`` [m, d] against ``b`` [n, d]: returns (sims [m, k] float32, descending; idx [m, k] int64 rows
of ``b``). The base is scanned in blocks, so memory is m x block, never m x n: each block's
scores go through ``torch.topk`` and are merged with the running top-k. With
``exclude_self=True``, ``q`` is the slice ``b[offset:offset + m]`` and row r never returns
itself (base row ``offset + r``). Missing places (k larger than what is left) hold -inf / -1.
Within the result, equal sims are ordered by base row; which of several rows tied at the k-th
place is kept is left to ``torch.topk``.

Reference only, on purpose: on a GPU this already runs as cuBLAS matmuls plus ``torch.topk`` on
the device, and a Triton kernel that only computed the score tiles would do the same work. A
fused running top-k in registers is future work; ``impl="triton"`` is refused for this op.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def topk_cosine_reference(q: torch.Tensor, b: torch.Tensor, k: int, *, exclude_self: bool = False,
                          offset: int = 0, block: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise top-k cosine neighbours; fp32 products whatever the input dtype."""
    if q.dim() != 2 or b.dim() != 2 or q.shape[1] != b.shape[1]:
        raise ValueError(f"q [m, d] and b [n, d] must agree on d; got {tuple(q.shape)} and {tuple(b.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    m, n = q.shape[0], b.shape[0]
    if exclude_self and not 0 <= offset <= n - m:
        raise ValueError(f"exclude_self: q must be b[offset:offset + {m}] with 0 <= offset <= {n - m}")
    sims = torch.full((m, k), float("-inf"), dtype=torch.float32, device=q.device)
    idx = torch.full((m, k), -1, dtype=torch.int64, device=q.device)
    q32 = q.float()
    rows = torch.arange(m, device=q.device)
    for lo in range(0, n, block):
        scores = q32 @ b[lo:lo + block].float().T  # [m, w]
        if exclude_self:
            own = rows + (offset - lo)
            mine = (own >= 0) & (own < scores.shape[1])
            scores[rows[mine], own[mine]] = float("-inf")
        v, i = scores.topk(min(k, scores.shape[1]), dim=1)
        sims, idx = _merge(torch.cat((sims, v), dim=1), torch.cat((idx, i + lo), dim=1), k)
    idx[sims == float("-inf")] = -1  # places nothing filled (or only excluded self rows)
    return sims, idx


def _merge(sims: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k of each row, by sim descending then base row ascending (deterministic order)."""
    by_row = torch.argsort(torch.where(idx < 0, torch.iinfo(torch.int64).max, idx), dim=1, stable=True)
    sims, idx = sims.gather(1, by_row), idx.gather(1, by_row)
    by_sim = torch.argsort(sims, dim=1, descending=True, stable=True)[:, :k]
    return sims.gather(1, by_sim), idx.gather(1, by_sim)
