"""Rows of a (memory-mapped) vector array: the one place every stage reads vectors from.

Stores are ``[count, dim]`` fp16 ``.npy`` files mapped read-only; features handed in by users
are fp32 arrays. ``as_tensor`` views either without copying. :func:`blocks` is the one reader:
it walks any rows (a range, or row numbers in any order, repeats included) ``block`` rows at a
time (the FAISS contrib block-iterator pattern: memory is bounded by the block, not the rows)
and yields ``(offset, block)``, the block as fp32 numpy (``device=None``) or as a torch tensor
on ``device``. :func:`gather` is ``blocks`` collected into one array or tensor.

Conversions: a run of consecutive rows is read as a slice, other rows by fancy indexing (numpy)
or ``index_select`` (torch gathers several times faster than numpy fancy indexing); on a GPU the
rows travel as stored (fp16: half the transfer), then widen there; ``unit`` L2-normalises each row
in fp32 numpy on the CPU before anything moves, so every path gives the same bits.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

Rows = np.ndarray | range


def as_tensor(vectors: np.ndarray) -> torch.Tensor:
    """A zero-copy CPU tensor view of an array (a read-only memory map included: never write to it)."""
    if isinstance(vectors, torch.Tensor):
        return vectors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "array is not writable": it is only read
        return torch.from_numpy(vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors))


def blocks(vectors: np.ndarray, rows: Rows, device: torch.device | None = None, *, block: int = 65536,
           unit: bool = False, widen: bool = True, copy: bool = False
           ) -> Iterator[tuple[int, np.ndarray | torch.Tensor]]:
    """``(start, vectors[rows[start:start + block]])`` for each block of ``rows``, in order.

    ``rows``: a ``range`` (step 1) or row numbers in any order (repeats allowed). A block is fp32
    numpy when ``device`` is None, else an fp32 tensor on ``device``; ``unit``: each row L2-normalised
    (in numpy, then moved); ``widen=False`` (CPU tensors, without ``unit``): the rows as stored (fp16
    for a store). A block that needs no conversion (fp32 rows read as a slice) is a view of
    ``vectors`` (read it, never write it) unless ``copy``.
    """
    if block < 1:
        raise ValueError(f"block must be at least 1, not {block}")
    if not widen and (unit or device is None or device.type != "cpu"):
        raise ValueError("widen=False gives CPU tensors as stored, without unit")
    if isinstance(rows, range):
        if rows.step != 1:
            raise ValueError(f"a range of rows must have step 1, not {rows.step}")
    else:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    source = None  # all of vectors as a tensor view, made when rows need index_select
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        span = _span(part)
        if device is None or unit:  # numpy: fp32 rows, normalised here when asked
            x, shared = _read_numpy(vectors, part, span)
            if unit:
                norm = np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
                x = x / norm if shared else np.divide(x, norm, out=x)  # never into vectors
                shared = False
            x = x.copy() if shared and copy else x
            yield start, (x if device is None else torch.from_numpy(x).to(device))
            continue
        if span is not None:
            t = as_tensor(vectors[span[0]:span[1]])  # a slice: only these rows are read
        else:
            source = as_tensor(vectors) if source is None else source
            t = source.index_select(0, torch.from_numpy(part))
        if widen:  # on a GPU the rows travel as stored, then widen there
            t = t.float() if device.type == "cpu" else t.to(device).float()
        if copy and span is not None and t.device.type == "cpu" and _views(t, vectors):
            t = t.clone()
        yield start, t


def gather(vectors: np.ndarray, rows: Rows, device: torch.device | None = None, *, block: int = 65536,
           unit: bool = False, widen: bool = True) -> np.ndarray | torch.Tensor:
    """``vectors[rows]`` as one new fp32 array (``device=None``) or tensor on ``device``, read through
    :func:`blocks` (same arguments)."""
    count = len(rows)
    out = None
    for start, x in blocks(vectors, rows, device, block=block, unit=unit, widen=widen, copy=True):
        if len(x) == count and not (unit and device is not None):
            return x  # one block, already new memory of its own (unit tensors are moved into torch's below)
        if out is None:
            out = (np.empty((count, x.shape[1]), dtype=np.float32) if device is None
                   else torch.empty((count, x.shape[1]), dtype=x.dtype, device=x.device))
        out[start:start + len(x)] = x
    if out is None:  # no rows
        d = vectors.shape[1]
        dtype = torch.float32 if widen else as_tensor(vectors).dtype
        out = np.empty((0, d), dtype=np.float32) if device is None else torch.empty((0, d), dtype=dtype, device=device)
    return out


def _span(part: Rows) -> tuple[int, int] | None:
    """``(first, stop)`` when ``part`` is one ascending run of consecutive rows (a slice reads it)."""
    if isinstance(part, range):
        return part.start, part.stop
    if len(part) and part[0] >= 0 and part[-1] - part[0] + 1 == len(part) and bool((np.diff(part) == 1).all()):
        return int(part[0]), int(part[-1]) + 1
    return None


def _read_numpy(vectors: np.ndarray, part: Rows, span: tuple[int, int] | None) -> tuple[np.ndarray, bool]:
    """The rows as contiguous fp32, and whether that is a view of ``vectors`` (fp32 rows read as a slice)."""
    if span is None:
        return np.ascontiguousarray(vectors[part], dtype=np.float32), False  # fancy indexing copies
    picked = vectors[span[0]:span[1]]
    x = np.ascontiguousarray(picked, dtype=np.float32)
    return x, bool(np.may_share_memory(x, picked))


def _views(t: torch.Tensor, vectors: np.ndarray) -> bool:
    """Whether a CPU tensor block shares memory with ``vectors`` (a slice that needed no conversion)."""
    base = vectors.numpy() if isinstance(vectors, torch.Tensor) else vectors
    return not isinstance(base, np.ndarray) or bool(np.may_share_memory(t.numpy(), base))
