"""Give back the pages of a memory-mapped store that a pass has finished reading.

A read-only map's pages count in the process's resident memory once touched, so one pass
over a 10M x 256 fp16 store (5.1 GB) would leave all of it resident. ``release`` tells the
kernel the process no longer needs them (``MADV_DONTNEED``): they stay in the page cache, and
a later read maps them again without disk I/O. A no-op for arrays that are not memory maps
and where ``madvise`` is not available.
"""

from __future__ import annotations

import mmap

import numpy as np


def release(vectors: np.ndarray) -> None:
    """Drop the resident pages of ``vectors``' memory map (its data is unchanged)."""
    base = vectors
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    handle = getattr(base, "_mmap", None)
    if handle is None or not hasattr(mmap, "MADV_DONTNEED") or not hasattr(handle, "madvise"):
        return
    try:
        handle.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):  # a closed or unusual map: keeping the pages is always correct
        return
