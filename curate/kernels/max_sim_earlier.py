"""max_sim_earlier: the SemDeDup core, "how similar is each item to an item ranked before it".

``x`` [n, d] holds L2-normalised rows (fp16 or fp32); ``segments`` [s+1] int64 offsets cut it
into segments (clusters, each already sorted in keep order), so thousands of clusters run in
one call. For every row i of segment [a, b):

    max_sim[i] = max_{a <= j < i} x_i . x_j      (-inf when i == a)
    argmax[i]  = that j, as a global row index of x (-1 when none)

Ties go to the smallest j (the highest-priority item), in both implementations. Rows outside
every segment get -inf / -1. Accumulation is fp32 throughout; n x n is never materialised.

- ``max_sim_earlier_reference``: plain torch, the CPU production path (any device works).
  Segments of similar length are padded into one batch and scored with batched matmuls: each
  query block (32-512 rows, by segment length) is multiplied with the keys before it only
  (lower-triangular block skipping; the diagonal block is masked), so a little over half of the
  n^2 d products are done. On CPU both this and a full per-segment ``x @ x.T`` run at matmul
  peak, so that halving is the whole speed-up over it (1.6-2x measured on 2 cores, d=512).
  Padding needs no mask: a valid query row i only sees keys j < i, never padding.
- ``max_sim_earlier_triton``: one program per query tile of one segment, looping over the
  earlier key tiles of that segment with a running max / argmax in registers (``tl.dot``, fp32
  accumulate, ``input_precision="ieee"`` so fp32 inputs are not rounded to tf32).
"""

from __future__ import annotations

import numpy as np
import torch

from ._runtime import HAS_TRITON, check_launch, next_pow2, tl, triton


def query_block(pad: int) -> int:
    """Query rows per matmul in the reference: small blocks skip more of the upper triangle, large
    ones run the matmul closer to peak; tuned on a 2-core AVX-512 CPU at d=512."""
    return 32 if pad <= 128 else 64 if pad <= 512 else 128 if pad <= 2048 else 256 if pad <= 8192 else 512


def check_segments(x: torch.Tensor, segments: torch.Tensor) -> np.ndarray:
    """Validate ``x`` and ``segments``; return the offsets as a host int64 array."""
    if x.dim() != 2:
        raise ValueError(f"x must be [n, d], got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"x must be fp16, bf16 or fp32, got {x.dtype}")
    bounds = np.asarray(segments.detach().cpu(), dtype=np.int64).reshape(-1)
    if bounds.size == 0:
        return np.zeros(1, dtype=np.int64)
    if bounds[0] < 0 or bounds[-1] > x.shape[0] or np.any(np.diff(bounds) < 0):
        raise ValueError(f"segments must be non-decreasing offsets within [0, {x.shape[0]}]")
    return bounds


@torch.no_grad()
def max_sim_earlier_reference(x: torch.Tensor, segments: torch.Tensor, block: int = 4096,
                              compute_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise torch reference; returns (max_sim float32 [n], argmax int64 [n]).

    ``compute_dtype=torch.bfloat16`` runs the matmuls in bf16 (fp32 accumulate, bf16 result):
    about 2.4x faster on CPUs with AVX512-BF16/AMX, values within :data:`BF16_SCREEN_EPS`;
    :func:`max_sim_earlier_screened` makes the values that matter exact again.

    Memory beyond the inputs: a packed batch of at most ``2 * block`` rows (or one segment
    longer than that, as a view when ``x`` already has ``compute_dtype``) plus a score tile of at
    most ``512 x block`` per segment in the batch.
    """
    bounds = check_segments(x, segments)
    n = x.shape[0]
    best = torch.full((n,), float("-inf"), dtype=torch.float32, device=x.device)
    arg = torch.full((n,), -1, dtype=torch.int64, device=x.device)
    starts, lengths = bounds[:-1], np.diff(bounds)
    todo = np.flatnonzero(lengths >= 2)
    todo = todo[np.argsort(-lengths[todo], kind="stable")]  # longest first: similar lengths share a batch
    tri = torch.ones(512, 512, dtype=torch.bool, device=x.device).triu_()  # j >= i
    for group in _batches(lengths, todo, max_rows=2 * block):
        _score_batch(x, starts[group], lengths[group], best, arg, block, tri, compute_dtype)
    return best, arg


def _batches(lengths: np.ndarray, order: np.ndarray, max_rows: int):
    """Runs of segments (longest first) padded to the first one's length, wasting < 1/8 of it."""
    i = 0
    while i < len(order):
        pad = int(lengths[order[i]])
        j = i + 1
        while j < len(order) and (j - i + 1) * pad <= max_rows and 8 * lengths[order[j]] >= 7 * pad:
            j += 1
        yield order[i:j]
        i = j


def _score_batch(x: torch.Tensor, starts: np.ndarray, lengths: np.ndarray, best: torch.Tensor,
                 arg: torch.Tensor, block: int, tri: torch.Tensor, dtype: torch.dtype, with_arg: bool = True) -> None:
    """Score one padded group of segments into ``best`` / ``arg`` (``with_arg=False``: values only,
    ``arg`` untouched; ``amax`` is about 3x cheaper than ``max`` with indices on bf16)."""
    g, pad = len(starts), int(lengths.max())
    device = x.device
    pos = torch.arange(pad, device=device)
    rows = torch.as_tensor(starts, device=device)[:, None] + pos  # [g, pad] global rows
    if g == 1:
        packed = x[int(starts[0]):int(starts[0]) + pad].unsqueeze(0)  # a view; chunks converted below
    else:  # padding rows repeat real rows: a valid query i only sees keys j < i, so they never count
        packed = x.index_select(0, rows.reshape(-1).clamp_(max=x.shape[0] - 1)).to(dtype).view(g, pad, -1)
    top = torch.full((g, pad), float("-inf"), dtype=torch.float32, device=device)
    top_j = torch.zeros((g, pad), dtype=torch.int64, device=device)
    step = query_block(pad)
    for k0 in range(0, pad, block):
        keys_t = packed[:, k0:k0 + block].to(dtype).transpose(1, 2)  # [g, d, kc]
        if dtype != torch.float32:  # oneDNN copies a sliced transposed bf16 operand on every bmm
            keys_t = keys_t.contiguous()
        for q0 in range(k0, pad, step):  # only query rows after the chunk start see it
            q1 = min(q0 + step, pad)
            width = min(keys_t.shape[2], q1 - k0)  # keys [k0, k0 + width) can precede a row of [q0, q1)
            sims = torch.bmm(packed[:, q0:q1].to(dtype), keys_t[:, :, :width])  # [g, bq, width]
            if q0 < k0 + width:  # the chunk reaches the diagonal: hide keys j >= i
                sims[:, :, q0 - k0:].masked_fill_(tri[:q1 - q0, :k0 + width - q0], float("-inf"))
            if not with_arg:
                value = sims.amax(dim=2).float()
                top[:, q0:q1] = value if k0 == 0 else torch.maximum(value, top[:, q0:q1])
                continue
            value, where = sims.max(dim=2)  # first maximum: the smallest j wins ties
            if k0 == 0:
                top[:, q0:q1], top_j[:, q0:q1] = value, where
            else:  # later chunks hold larger j: replace only on a strictly larger value
                better = value > top[:, q0:q1]
                top[:, q0:q1] = torch.where(better, value, top[:, q0:q1])
                top_j[:, q0:q1] = torch.where(better, where + k0, top_j[:, q0:q1])
    valid = pos[None, :] < torch.as_tensor(lengths, device=device)[:, None]
    found = top > float("-inf")
    top_j = torch.where(found, top_j + rows[:, :1], -1)
    flat = rows[valid]
    best[flat] = top[valid]
    if with_arg:
        arg[flat] = top_j[valid]



# |bf16 score - exact score| for unit rows: inputs rounded to bf16 (2 * 2^-8 relative per product,
# summed: <= 2^-7 by Cauchy-Schwarz), result rounded to bf16 (<= 2^-8), fp32 accumulation; with margin.
BF16_SCREEN_EPS = 1.0 / 64
HEAVY_FRACTION = 0.25  # segments with more flagged rows than this are redone in fp32 at once


# Segments longer than this are screened one by one in query blocks of this many rows (fewer,
# larger matmuls; 1.9x faster than the padded batches at ~1,000 rows); shorter ones are padded
# into batches (per-segment Python overhead would dominate there).
LONG_SEGMENT = 256


@torch.no_grad()
def max_sim_earlier_screened(x: torch.Tensor, segments: torch.Tensor, exact_above: float,
                             block: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``max_sim_earlier`` for unit rows with a bf16 screen: exact where it can matter.

    A bf16 pass bounds every row's max within :data:`BF16_SCREEN_EPS`; rows whose bound reaches
    ``exact_above - eps`` (the only ones whose exact max can be >= ``exact_above``) are then
    scored exactly in fp32 against the earlier rows of their segment. So for every row whose
    exact max is >= ``exact_above`` the result equals the fp32 reference (value and argmax, up to
    fp32 summation order); every other row reports a value below ``exact_above`` that is within
    eps of its exact max, and an argmax that may be -1 (the screen keeps none: a dedup never needs
    one below its threshold). A segment with many flagged rows is redone by the fp32 reference.
    ``x`` may be fp16 (a gathered store batch): it is widened block by block, never whole.
    """
    bounds = check_segments(x, segments)
    best = _bf16_screen(x, bounds, block)
    arg = torch.full((x.shape[0],), -1, dtype=torch.int64, device=x.device)
    flagged = torch.nonzero(best >= exact_above - BF16_SCREEN_EPS).flatten().cpu().numpy()
    seg_of = np.searchsorted(bounds, flagged, side="right") - 1
    lengths = np.diff(bounds)
    counts = np.bincount(seg_of, minlength=len(lengths))
    heavy = np.flatnonzero(counts > HEAVY_FRACTION * lengths)
    if len(heavy):
        _redo_segments(x, bounds, heavy, best, arg, block)
    light = ~np.isin(seg_of, heavy)
    flagged, seg_of = flagged[light], seg_of[light]
    cuts = np.flatnonzero(np.diff(seg_of)) + 1
    for rows, seg in zip(np.split(flagged, cuts), seg_of[np.r_[0, cuts]] if len(seg_of) else []):
        _exact_rows(x, int(bounds[seg]), rows, best, arg, block)
    return best, arg


def _bf16_screen(x: torch.Tensor, bounds: np.ndarray, block: int) -> torch.Tensor:
    """bf16 ``max_sim_earlier`` values (fp32 [n], -inf where no earlier row), no argmax."""
    best = torch.full((x.shape[0],), float("-inf"), dtype=torch.float32, device=x.device)
    starts, lengths = bounds[:-1], np.diff(bounds)
    short = np.flatnonzero((lengths >= 2) & (lengths <= LONG_SEGMENT))
    short = short[np.argsort(-lengths[short], kind="stable")]
    tri = torch.ones(512, 512, dtype=torch.bool, device=x.device).triu_()  # j >= i
    unused = torch.empty(0, dtype=torch.int64, device=x.device)
    for group in _batches(lengths, short, max_rows=2 * block):
        _score_batch(x, starts[group], lengths[group], best, unused, block, tri, torch.bfloat16, with_arg=False)
    step = LONG_SEGMENT
    diagonal = tri[:step, :step]
    for seg in np.flatnonzero(lengths > LONG_SEGMENT):
        a, m = int(starts[seg]), int(lengths[seg])
        rows = x[a:a + m].to(torch.bfloat16)
        for q0 in range(0, m, step):  # query block [q0, q1) against the keys before q1 only
            q1 = min(q0 + step, m)
            sims = rows[q0:q1] @ rows[:q1].T
            sims[:, q0:].masked_fill_(diagonal[:q1 - q0, :q1 - q0], float("-inf"))
            best[a + q0:a + q1] = sims.amax(dim=1).float()
    return best


def _redo_segments(x: torch.Tensor, bounds: np.ndarray, segs: np.ndarray, best: torch.Tensor,
                   arg: torch.Tensor, block: int) -> None:
    """The fp32 reference on the given segments only (packed together, then scattered back)."""
    rows = np.concatenate([np.arange(bounds[s], bounds[s + 1]) for s in segs])
    offsets = np.r_[0, np.cumsum(bounds[segs + 1] - bounds[segs])]
    picked = torch.from_numpy(rows).to(x.device)
    sims, where = max_sim_earlier_reference(x.index_select(0, picked), torch.from_numpy(offsets), block)
    best[picked] = sims
    arg[picked] = torch.where(where >= 0, picked[where.clamp(min=0)], -1)


def _exact_rows(x: torch.Tensor, start: int, rows: np.ndarray, best: torch.Tensor, arg: torch.Tensor,
                block: int, query_rows: int = 512) -> None:
    """Exact fp32 max / first argmax of ``rows`` (sorted, one segment from ``start``) over the
    segment's earlier rows, key block by key block."""
    for q0 in range(0, len(rows), query_rows):
        part = rows[q0:q0 + query_rows]
        q_idx = torch.from_numpy(part).to(x.device)
        q = x.index_select(0, q_idx).float()
        top = torch.full((len(part),), float("-inf"), device=x.device)
        top_j = torch.full((len(part),), -1, dtype=torch.int64, device=x.device)
        for k0 in range(start, int(part[-1]), block):
            k1 = min(k0 + block, int(part[-1]))
            sims = q @ x[k0:k1].float().T
            sims.masked_fill_(torch.arange(k0, k1, device=x.device)[None, :] >= q_idx[:, None], float("-inf"))
            value, where = sims.max(dim=1)
            better = value > top
            top = torch.where(better, value, top)
            top_j = torch.where(better, where + k0, top_j)
        best[q_idx], arg[q_idx] = top, top_j

if HAS_TRITON:

    @triton.jit
    def _max_sim_earlier_kernel(X, stride_x, PLAN, n_tiles, OUT_SIM, OUT_ARG, D,
                                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        pid = tl.program_id(0)
        row0 = tl.load(PLAN + pid)  # first query row of this tile
        seg0 = tl.load(PLAN + n_tiles + pid)  # first row of its segment
        seg1 = tl.load(PLAN + 2 * n_tiles + pid)  # one past its last row
        rows = row0 + tl.arange(0, BLOCK_M)
        row_ok = rows < seg1
        key_end = tl.minimum(row0 + BLOCK_M, seg1) - 1  # keys precede the tile's last row
        offs_d = tl.arange(0, BLOCK_D)
        best = tl.full([BLOCK_M], float("-inf"), tl.float32)
        best_j = tl.full([BLOCK_M], -1, tl.int64)
        for k0 in range(seg0, key_end, BLOCK_N):
            cols = k0 + tl.arange(0, BLOCK_N)
            acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                d = d0 + offs_d
                q = tl.load(X + rows[:, None] * stride_x + d[None, :],
                            mask=row_ok[:, None] & (d[None, :] < D), other=0.0)
                kt = tl.load(X + cols[None, :] * stride_x + d[:, None],
                             mask=(cols[None, :] < key_end) & (d[:, None] < D), other=0.0)
                acc += tl.dot(q, kt, input_precision="ieee")
            acc = tl.where(cols[None, :] < rows[:, None], acc, float("-inf"))
            tile_best = tl.max(acc, axis=1)
            tile_j = tl.min(tl.where(acc == tile_best[:, None], cols[None, :], seg1), axis=1)  # smallest j
            better = tile_best > best  # key tiles come in order: a tie keeps the earlier j
            best = tl.where(better, tile_best, best)
            best_j = tl.where(better, tile_j, best_j)
        tl.store(OUT_SIM + rows, best, mask=row_ok)
        tl.store(OUT_ARG + rows, best_j, mask=row_ok)


def _tile_plan(bounds: np.ndarray, block_m: int) -> np.ndarray:
    """[3, tiles] int64: (first row, segment start, segment end) per query tile, heaviest first."""
    starts, lengths = bounds[:-1], np.diff(bounds)
    keep = lengths >= 2
    starts, lengths = starts[keep], lengths[keep]
    tiles = -(-lengths // block_m)
    seg = np.repeat(np.arange(len(starts)), tiles)
    offset = (np.arange(len(seg)) - np.repeat(np.cumsum(tiles) - tiles, tiles)) * block_m
    order = np.argsort(-offset, kind="stable")  # late tiles see the most keys: launch them first
    seg, offset = seg[order], offset[order]
    return np.stack([starts[seg] + offset, starts[seg], starts[seg] + lengths[seg]]).astype(np.int64)


def max_sim_earlier_triton(x: torch.Tensor, segments: torch.Tensor, block_m: int = 64, block_n: int = 64,
                           block_d: int = 64, num_warps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton kernel; same contract as :func:`max_sim_earlier_reference`."""
    bounds = check_segments(x, segments)
    check_launch(x)
    x = x.contiguous()
    n, d = x.shape
    best = torch.full((n,), float("-inf"), dtype=torch.float32, device=x.device)
    arg = torch.full((n,), -1, dtype=torch.int64, device=x.device)
    plan = _tile_plan(bounds, block_m)
    if plan.shape[1] == 0:
        return best, arg
    plan_t = torch.from_numpy(plan).to(x.device)
    block_d = max(16, min(block_d, next_pow2(d)))
    _max_sim_earlier_kernel[(plan.shape[1],)](
        x, x.stride(0), plan_t, plan.shape[1], best, arg, d,
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, num_warps=num_warps)
    return best, arg
