"""MinHash's permutation-and-minimum step on a torch device (a GPU when there is one).

The same arithmetic as the numpy path in :mod:`curate.dedup.minhash`, so signatures are equal bit
for bit: each shingle's top 32 hash bits ``h`` give ``((h ^ mask_k) * odd_k) mod 2^32`` for every
permutation ``k``, and each text keeps the minimum over its shingles. torch has no unsigned 32-bit
multiply, so the values live in int64: the product of two 32-bit values may wrap past 2^63, but
its low 32 bits (all that ``mod 2^32`` keeps) are the same either way. The minimum per text is a
``scatter_reduce(amin)`` over the shingles' text index, in chunks of ``chunk`` shingles so device
memory stays at ``chunk x k x 8`` bytes (136 MB at 65,536 x 260) plus the output.
"""

from __future__ import annotations

import numpy as np
import torch

from curate.device import resolve_device

_LOW32 = 0xFFFFFFFF


def minhash_on_device(hashes: np.ndarray, offsets: np.ndarray, mask: np.ndarray, odd: np.ndarray,
                      device: str | torch.device, chunk: int = 1 << 16) -> np.ndarray:
    """``[len(offsets) - 1, len(mask)]`` uint64 minima of the permuted shingle hashes of each text
    (``hashes`` uint64, text ``i``'s shingles at ``offsets[i]:offsets[i+1]``); a text without
    shingles gets ``2^32 - 1`` in every column (the caller's EMPTY)."""
    dev = resolve_device(device)
    n, k = len(offsets) - 1, len(mask)
    result = torch.full((n, k), _LOW32, dtype=torch.int64, device=dev)
    if len(hashes):
        top = torch.from_numpy((np.asarray(hashes, dtype=np.uint64) >> np.uint64(32)).astype(np.int64)).to(dev)
        text = torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))).to(dev)
        masks = torch.from_numpy(mask.astype(np.int64)).to(dev)[None, :]
        odds = torch.from_numpy(odd.astype(np.int64)).to(dev)[None, :]
        for c0 in range(0, len(top), chunk):
            values = torch.bitwise_and(torch.bitwise_xor(top[c0:c0 + chunk, None], masks) * odds, _LOW32)
            index = text[c0:c0 + chunk, None].expand(-1, k)
            result.scatter_reduce_(0, index, values, reduce="amin", include_self=True)
    return result.cpu().numpy().astype(np.uint64)
