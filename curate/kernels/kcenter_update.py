"""kcenter_update: one fused step of k-center greedy (coreset) selection.

Given L2-normalised rows ``x`` [n, d], the newly picked center ``c`` [d] and the running
distance-to-nearest-center ``mind`` [n] (float32), do in one pass over ``x``::

    mind = min(mind, 1 - x @ c)        # in place; cosine distance
    return mind, argmax(mind), max(mind)

so the next pick is known without a second pass. Ties go to the smallest row index. Products
accumulate in fp32 whatever the input dtype.

- ``kcenter_update_reference``: torch, row blocks (memory: ``block`` fp32 products at a time).
- ``kcenter_update_triton``: each program reads one row block once (a GEMV, so no ``tl.dot``),
  updates ``mind`` and writes its block's max and argmax; the tiny final reduction over blocks
  runs in torch. Memory-bound by design: one read of ``x`` and one read/write of ``mind``.
"""

from __future__ import annotations

import torch

from ._runtime import HAS_TRITON, check_launch, next_pow2, tl, triton


def _check(x: torch.Tensor, c: torch.Tensor, mind: torch.Tensor) -> None:
    if x.dim() != 2 or c.shape != (x.shape[1],) or mind.shape != (x.shape[0],):
        raise ValueError(f"shapes must be x [n, d], c [d], mind [n]; got {tuple(x.shape)}, "
                         f"{tuple(c.shape)}, {tuple(mind.shape)}")
    if mind.dtype != torch.float32:
        raise TypeError(f"mind must be float32 (updated in place), got {mind.dtype}")
    if x.shape[0] == 0:
        raise ValueError("x has no rows")


@torch.no_grad()
def kcenter_update_reference(x: torch.Tensor, c: torch.Tensor, mind: torch.Tensor,
                             block: int = 16384) -> tuple[torch.Tensor, int, float]:
    """Blockwise torch reference; returns (mind, index of its max, that max)."""
    _check(x, c, mind)
    c32 = c.to(device=x.device, dtype=torch.float32)
    for lo in range(0, x.shape[0], block):
        part = mind[lo:lo + block]
        torch.minimum(part, 1.0 - x[lo:lo + block].float() @ c32, out=part)
    i = torch.argmax(mind)  # first maximum
    return mind, *_index_and_value(i, mind[i])


def _index_and_value(index: torch.Tensor, value: torch.Tensor) -> tuple[int, float]:
    """Both scalars in one device-to-host copy (float64 holds any row index and fp32 value exactly)."""
    i, v = torch.stack((index.double(), value.double())).tolist()
    return int(i), v


if HAS_TRITON:

    @triton.jit
    def _kcenter_update_kernel(X, stride_x, C, MIND, PART_VAL, PART_IDX, N, D,
                               BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        pid = tl.program_id(0)
        rows = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        offs_d = tl.arange(0, BLOCK_D)
        dot = tl.zeros([BLOCK_N], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            d = d0 + offs_d
            xb = tl.load(X + rows[:, None] * stride_x + d[None, :], mask=row_ok[:, None] & (d[None, :] < D),
                         other=0.0).to(tl.float32)
            cb = tl.load(C + d, mask=d < D, other=0.0)
            dot += tl.sum(xb * cb[None, :], axis=1)
        m = tl.load(MIND + rows, mask=row_ok, other=0.0)
        m = tl.minimum(m, 1.0 - dot)
        tl.store(MIND + rows, m, mask=row_ok)
        m = tl.where(row_ok, m, float("-inf"))
        best = tl.max(m, axis=0)
        at = tl.min(tl.where(m == best, rows, N), axis=0)  # smallest row among the block's maxima
        tl.store(PART_VAL + pid, best)
        tl.store(PART_IDX + pid, at)


def kcenter_update_triton(x: torch.Tensor, c: torch.Tensor, mind: torch.Tensor, block_n: int = 128,
                          block_d: int = 128, num_warps: int = 4) -> tuple[torch.Tensor, int, float]:
    """Triton kernel; same contract as :func:`kcenter_update_reference`."""
    _check(x, c, mind)
    check_launch(x)
    if not mind.is_contiguous():
        raise ValueError("mind must be contiguous (it is updated in place)")
    x = x.contiguous()
    n, d = x.shape
    c32 = c.to(device=x.device, dtype=torch.float32).contiguous()
    blocks = triton.cdiv(n, block_n)
    part_val = torch.empty(blocks, dtype=torch.float32, device=x.device)
    part_idx = torch.empty(blocks, dtype=torch.int64, device=x.device)
    _kcenter_update_kernel[(blocks,)](x, x.stride(0), c32, mind, part_val, part_idx, n, d,
                                      BLOCK_N=block_n, BLOCK_D=min(block_d, next_pow2(d)), num_warps=num_warps)
    b = torch.argmax(part_val)  # first maximum: blocks are in row order, so the smallest row wins
    return mind, *_index_and_value(part_idx[b], part_val[b])
