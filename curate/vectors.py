"""Rows of a (memory-mapped) vector array: the one place every stage gathers vectors from.

Stores are ``[count, dim]`` fp16 ``.npy`` files mapped read-only; features handed in by users
are fp32 arrays. ``as_tensor`` views either without copying; ``gather_tensor`` picks rows on a
device (torch gathers and widens several times faster than numpy fancy indexing; on a GPU the
fp16 rows travel, then widen); ``gather_numpy`` reads rows in blocks into one fp32 array,
optionally L2-normalised.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def as_tensor(vectors: np.ndarray) -> torch.Tensor:
    """A zero-copy CPU tensor view of an array (a read-only memory map included: never write to it)."""
    if isinstance(vectors, torch.Tensor):
        return vectors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "array is not writable": it is only read
        return torch.from_numpy(vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors))


def gather_tensor(vectors: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """``vectors[rows]`` as fp32 on ``device``."""
    picked = as_tensor(vectors).index_select(0, torch.from_numpy(np.asarray(rows, dtype=np.int64)))
    return picked.float() if device.type == "cpu" else picked.to(device).float()


def gather_numpy(vectors: np.ndarray, rows: np.ndarray, unit: bool = False, block: int = 65536) -> np.ndarray:
    """``vectors[rows]`` as one fp32 array, read ``block`` rows at a time; ``unit``: L2-normalised."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), block):
        out[start:start + block] = vectors[rows[start:start + block]]
    if unit:
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)
    return out
