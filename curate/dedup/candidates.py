"""Candidate pairs for ``fuzzy``/``near``, one function per signal; they only propose, every pair is
then verified (:mod:`curate.dedup.verify`).

- ``exact``: every row paired with the first row of the same bytes;
- ``minhash``: texts sharing a MinHash LSH bucket (:mod:`curate.dedup.minhash`), and texts sharing
  content-defined chunks that few other texts hold, for truncated and wrapped copies whose Jaccard
  is low (:mod:`curate.dedup.containment`; same pass over the shingles);
- ``phash``: images whose perceptual hashes differ in at most ``hamming`` bits, each image's
  ``MAX_IMAGE_CANDIDATES`` nearest (:mod:`curate.dedup.phash`); and, for re-framed copies, images
  whose border-trimmed hash is within ``WINDOW_HAMMING`` bits of the other's border-trimmed
  hash or of a hash of one of its windows (an off-centre crop, a letterbox; plain DCT hashes,
  :func:`~curate.dedup.phash.window_hashes`), each image's
  ``MAX_WINDOW_CANDIDATES`` nearest of those;
- ``semantic``: each item's ``knn`` nearest neighbours in an embedding store with cosine >=
  ``candidate_threshold``.

Pairs are ``[m, 2]`` int64 manifest rows; :func:`propose` files them by pair (a < b) with the
signals that proposed each.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup import minhash, phash
from curate.dedup.containment import ChunkIndex
from curate.dedup.pictures import Pictures
from curate.index.ann import build_index, search

SIGNALS = ("exact", "minhash", "phash", "semantic")
MAX_IMAGE_CANDIDATES = 8  # perceptual-hash candidates verified per image: its nearest by Hamming distance
MAX_WINDOW_CANDIDATES = 4  # and re-framed candidates (trimmed and window hashes) per image
WINDOW_HAMMING = 12  # bits a trimmed hash and a trimmed or window hash may differ in (unrelated: 18 or more)
WINDOW_BANDS = 6  # the window search's bit bands: pairs within 5 bits always meet, farther ones often

Found = dict[tuple[int, int], set[str]]  # pair (a < b) -> the signals that proposed it


def propose(found: Found, signal: str, pairs: np.ndarray) -> None:
    for a, b in pairs.tolist():
        key = (a, b) if a < b else (b, a)
        if a != b:
            found.setdefault(key, set()).add(signal)


def exact_candidates(manifest: pa.Table, ok: np.ndarray) -> np.ndarray:
    """Every ok row paired with the first ok row of the same bytes."""
    hashes = manifest.column("content_hash").to_pylist()
    first: dict[str, int] = {}
    out = []
    for i in np.flatnonzero(ok).tolist():
        h = hashes[i]
        if h is None:
            continue
        if h in first:
            out.append((first[h], i))
        else:
            first[h] = i
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def minhash_candidates(text_values: list, rows: np.ndarray, config, workers: int | None = None) -> np.ndarray:
    """Pairs of ``rows`` (texts) that share a MinHash LSH bucket; ``workers``: signature threads."""
    mh = minhash.MinHashConfig(ngram=config.ngram, bands=config.bands, rows=config.rows, threshold=config.jaccard,
                               seed=config.seed)
    sigs = minhash.signatures([text_values[r] or "" for r in rows.tolist()], mh, workers=workers,
                              device=config.device)
    local = minhash.candidate_pairs(sigs, config.bands, config.rows)
    return rows[local] if len(local) else np.empty((0, 2), dtype=np.int64)


def image_hashes(pictures: Pictures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's perceptual hash, its :func:`~curate.dedup.phash.window_hashes` ([n, 37]) and whether
    it could be decoded; one decode per image."""
    hashes = np.zeros(len(rows), dtype=np.uint64)
    windows = np.zeros((len(rows), 1 + len(phash.WINDOW_SIDES) * len(phash.WINDOW_PLACES) ** 2), dtype=np.uint64)
    have = np.zeros(len(rows), dtype=bool)
    for k, r in enumerate(pictures.bar(iterable=rows.tolist(), desc="perceptual hashes", unit=" images")):
        img = pictures.decode(r)
        if img is not None:
            hashes[k], windows[k], have[k] = np.uint64(phash.image_hash(img)), phash.window_hashes(img), True
    return hashes, windows, have


def text_candidates(text_values: list, rows: np.ndarray, config,
                    workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs, boilerplate)``: pairs of ``rows`` (texts) that share a MinHash LSH bucket or, each text's
    few best, content-defined chunks (containment candidates); the keys of the chunks more than
    ``config.boilerplate_df`` distinct texts hold (:mod:`curate.dedup.containment`)."""
    mh = minhash.MinHashConfig(ngram=config.ngram, bands=config.bands, rows=config.rows, threshold=config.jaccard,
                               seed=config.seed)
    texts = [text_values[r] or "" for r in rows.tolist()]
    chunks = ChunkIndex(len(texts), config.ngram)
    sigs = minhash.signatures(texts, mh, workers=workers, device=config.device, on_shingles=chunks.add)
    lsh = minhash.candidate_pairs(sigs, config.bands, config.rows)
    del sigs
    distinct = np.asarray(pc.index_in(pa.array(texts, pa.large_string()),
                                      value_set=pc.unique(pa.array(texts, pa.large_string()))), dtype=np.int64)
    contained, boilerplate = chunks.candidates(distinct, config.boilerplate_df)
    local = lsh
    if len(contained):  # both paths propose most true pairs: once each
        codes = np.unique(np.concatenate([lsh[:, 0] * len(texts) + lsh[:, 1],
                                          contained[:, 0] * len(texts) + contained[:, 1]]))
        local = np.stack([codes // len(texts), codes % len(texts)], axis=1)
    return (rows[local] if len(local) else np.empty((0, 2), dtype=np.int64)), boilerplate


def phash_candidates(pictures: Pictures, rows: np.ndarray, config) -> np.ndarray:
    """Pairs of ``rows`` (images) within ``hamming`` bits, each image's nearest few only, and the
    re-framed pairs of :func:`window_pairs`."""
    hashes, windows, have = image_hashes(pictures, rows)
    usable, hashes, windows = rows[have], hashes[have], windows[have]
    if len(usable) < 2:
        return np.empty((0, 2), dtype=np.int64)
    out = [usable[window_pairs(windows, min(config.hamming, WINDOW_HAMMING))]]
    local = phash.candidate_pairs(hashes, config.hamming)
    if len(local):
        distance = phash.popcount(hashes[local[:, 0]] ^ hashes[local[:, 1]])
        out.append(usable[nearest_per_item(local, distance, MAX_IMAGE_CANDIDATES)])
    return np.concatenate(out)


def window_pairs(windows: np.ndarray, max_distance: int, bands: int = WINDOW_BANDS) -> np.ndarray:
    """Pairs of items (``[m, 2]`` indices, a < b) where the border-trimmed hash of one (``windows[:, 0]``)
    is within ``max_distance`` bits of the other's or of one of its window hashes, each item's
    ``MAX_WINDOW_CANDIDATES`` nearest. A banded join of the n trimmed hashes with all the hashes (two
    hashes that agree on one of ``bands`` bit bands meet; within ``bands - 1`` bits they always do):
    no n x n step, and window hashes are never compared with each other."""
    n, per = windows.shape
    every = windows.ravel()
    owner = np.repeat(np.arange(n), per)
    whole_keys, every_keys = phash.band_keys(windows[:, 0], bands), phash.band_keys(every, bands)
    found = [_band_join(whole_keys[b], every_keys[b]) for b in range(bands)]
    i = np.concatenate([f[0] for f in found])  # an item
    j = np.concatenate([f[1] for f in found])  # a hash of every
    keep = (owner[j] != i) & (phash.popcount(windows[i, 0] ^ every[j]) <= max_distance)
    i, j = i[keep], j[keep]
    if not len(i):
        return np.empty((0, 2), dtype=np.int64)
    a, b = np.minimum(i, owner[j]), np.maximum(i, owner[j])
    distance = phash.popcount(windows[i, 0] ^ every[j])
    order = np.lexsort((distance, b, a))  # the nearest hash pair of each item pair first
    a, b, distance = a[order], b[order], distance[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    pairs = np.stack([a[first], b[first]], axis=1)
    return nearest_per_item(pairs, distance[first], MAX_WINDOW_CANDIDATES)


def _band_join(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with ``left[i] == right[j]``, by sorting ``right`` once."""
    order = np.argsort(right, kind="stable")
    keys = right[order]
    lo, hi = np.searchsorted(keys, left, "left"), np.searchsorted(keys, left, "right")
    counts = hi - lo
    i = np.repeat(np.arange(len(left)), counts)
    j = order[np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)]
    return i, j


def nearest_per_item(pairs: np.ndarray, distance: np.ndarray, k: int) -> np.ndarray:
    """The pairs that are among the ``k`` nearest (smallest ``distance``, then earliest) of either
    of their items: a crowd of look-alikes (scans of one digit) gives each item dozens of candidates,
    and its copies are among its nearest."""
    ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
    which = np.concatenate([np.arange(len(pairs)), np.arange(len(pairs))])
    order = np.lexsort((which, np.concatenate([distance, distance]), ends))
    ends, which = ends[order], which[order]
    starts = np.flatnonzero(np.r_[True, ends[1:] != ends[:-1]])
    rank = np.arange(len(ends)) - np.repeat(starts, np.diff(np.r_[starts, len(ends)]))
    keep = np.zeros(len(pairs), dtype=bool)
    keep[which[rank < k]] = True
    return pairs[keep]


def semantic_candidates(store, config, block: int = 16384) -> np.ndarray:
    """Pairs of manifest rows among each item's ``knn`` nearest with cosine >= ``candidate_threshold``."""
    valid = np.flatnonzero(store.valid)
    if len(valid) < 2:
        return np.empty((0, 2), dtype=np.int64)
    index = build_index(store.vectors, store.valid, device=config.device)
    k = min(config.knn + 1, len(valid))
    out = []
    for lo in range(0, len(valid), block):
        part = valid[lo:lo + block]
        sims, hits = search(index, store.gather(part), k)
        keep = (hits >= 0) & (sims >= config.candidate_threshold) & (hits != part[:, None])
        a = np.repeat(part, k).reshape(len(part), k)[keep]
        out.append(np.stack([store.manifest_rows[a], store.manifest_rows[hits[keep]]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)
