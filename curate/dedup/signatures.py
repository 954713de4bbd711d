"""What the candidate search keeps of every image: its hashes, from one decode, in worker processes.

Per image (:func:`signature`): the mirror-invariant canonical hash and the 64 coefficients it
thresholds (:func:`curate.dedup.phash.canonical_coefficients`), the plain DCT hashes of the
border-trimmed image and its windows (:func:`curate.dedup.phash.window_hashes`) and of the mirrored
trimmed image. About 400 bytes an image, so a million fit in memory; nothing else of the picture is
kept (verification decodes the few images in candidate pairs again).

The pass is one decode and a few small array steps per image whose Python glue holds the GIL, so
it runs in spawned worker processes (``workers``), the main process only reading the bytes.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate.dedup import phash
from curate.dedup.pictures import Pictures, decode_payload

WINDOWS = 1 + len(phash.WINDOW_SIDES) * len(phash.WINDOW_PLACES) ** 2
MIN_POOLED = 256  # fewer images are hashed in this process: spawning workers would cost more
CHUNK = 32  # images per task sent to a worker


@dataclass(frozen=True)
class Signatures:
    """Per image (rows of the arrays follow the rows asked for); ``have``: False where it could not be decoded."""

    have: np.ndarray  # bool[n]
    canonical: np.ndarray  # uint64[n]: phash.image_hash
    coefficients: np.ndarray  # float32[n, 64]: what the canonical hash thresholds, unit vectors
    windows: np.ndarray  # uint64[n, WINDOWS]: the trimmed image's plain DCT hash, then its windows'
    mirror: np.ndarray  # uint64[n]: the plain DCT hash of the mirrored trimmed image

    @property
    def plain(self) -> np.ndarray:
        """The plain DCT hash of each border-trimmed image."""
        return self.windows[:, 0]

    def take(self, which: np.ndarray) -> Signatures:
        return Signatures(self.have[which], self.canonical[which], self.coefficients[which], self.windows[which],
                          self.mirror[which])


def signature(data: bytes | None, max_side: int = 256) -> tuple[int, np.ndarray, np.ndarray, int] | None:
    """``(canonical hash, coefficients, window hashes, mirror hash)`` of an encoded image, None when it
    cannot be decoded."""
    img = decode_payload(data, max_side)
    if img is None:
        return None
    try:
        coefficients = phash.canonical_coefficients(img)
        windows, mirror = phash.frame_hashes(img)
    except Exception:  # a decoded picture the hashes cannot take (it is then never a duplicate)
        return None
    return phash.hash_of_coefficients(coefficients), coefficients, windows, mirror


def _signatures_of(chunk: list[bytes | None]) -> list:
    return [signature(data) for data in chunk]


def image_signatures(pictures: Pictures, rows: np.ndarray, workers: int = 2,
                     bar: Callable[..., Any] | None = None, min_pooled: int = MIN_POOLED) -> Signatures:
    """The :class:`Signatures` of ``rows``; each image read and decoded once, in ``workers`` processes
    (from ``min_pooled`` images up)."""
    n = len(rows)
    out = Signatures(np.zeros(n, bool), np.zeros(n, np.uint64), np.zeros((n, 64), np.float32),
                     np.zeros((n, WINDOWS), np.uint64), np.zeros(n, np.uint64))
    chunks = [rows[k:k + CHUNK].tolist() for k in range(0, n, CHUNK)]
    payloads = ([pictures.payload(r) for r in chunk] for chunk in chunks)
    bar = bar or pictures.bar
    with bar(total=n, desc="perceptual hashes", unit=" images") as progress:
        if workers > 1 and n >= min_pooled:
            context = multiprocessing.get_context("spawn")  # the caller may hold torch or other threads
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                _fill(out, _bounded_map(pool, payloads, ahead=4 * workers), progress)
        else:
            _fill(out, map(_signatures_of, payloads), progress)
    pictures.decodes += n
    return out


def _bounded_map(pool: ProcessPoolExecutor, chunks, ahead: int):
    """``pool.map`` over ``chunks`` in order, with at most ``ahead`` chunks read and not yet done (the
    executor's own map reads every chunk's bytes first)."""
    pending: deque = deque()
    for chunk in chunks:
        pending.append(pool.submit(_signatures_of, chunk))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _fill(out: Signatures, results, progress) -> None:
    k = 0
    for chunk in results:
        for got in chunk:
            if got is not None:
                out.have[k] = True
                out.canonical[k], out.coefficients[k], out.windows[k], out.mirror[k] = got
            k += 1
        progress.update(len(chunk))
