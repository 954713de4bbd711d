"""Candidate pairs for ``fuzzy``/``near``, one function per signal; they only propose, every pair is
then verified (:mod:`curate.dedup.verify`).

- ``exact``: every row paired with the first row of the same bytes;
- ``minhash``: texts sharing a MinHash LSH bucket (:mod:`curate.dedup.minhash`), and texts sharing
  content-defined chunks that few other texts hold, for truncated and wrapped copies whose Jaccard
  is low (:mod:`curate.dedup.containment`; same pass over the shingles);
- ``phash``: images whose perceptual hashes differ in at most ``hamming`` bits, each image's
  ``MAX_IMAGE_CANDIDATES`` nearest (:mod:`curate.dedup.phash`);
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
    """Pairs of ``rows`` (images) within ``hamming`` bits, each image's nearest few only."""
    hashes, have = pictures.hashes(rows)
    usable, hashes = rows[have], hashes[have]
    local = phash.candidate_pairs(hashes, config.hamming)
    if not len(local):
        return np.empty((0, 2), dtype=np.int64)
    distance = phash.popcount(hashes[local[:, 0]] ^ hashes[local[:, 1]])
    return usable[nearest_per_item(local, distance, MAX_IMAGE_CANDIDATES)]


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
