"""Candidate pairs for ``fuzzy``/``near``, one function per signal; they only propose, every pair is
then verified (:mod:`curate.dedup.verify`).

- ``exact``: every row paired with the first row of the same bytes;
- ``minhash``: texts sharing a MinHash LSH bucket (:mod:`curate.dedup.minhash`), and texts sharing
  content-defined chunks that few other texts hold, for truncated and wrapped copies whose Jaccard
  is low (:mod:`curate.dedup.containment`; same pass over the shingles);
- ``phash``: images from one hashing pass (:mod:`curate.dedup.signatures`: one decode per image, in
  worker processes): images whose plain DCT hashes of the border-trimmed picture (one of them maybe
  mirrored) differ in at most ``hamming`` bits, and images whose mirror-invariant canonical hashes do
  (rotated copies) when they also agree on more (:func:`hash_pairs`), each image's
  ``MAX_IMAGE_CANDIDATES`` nearest; and, for re-framed copies, images whose border-trimmed hash is
  within ``WINDOW_HAMMING`` bits of the other's or of a hash of one of its windows (an off-centre
  crop, a letterbox; :func:`~curate.dedup.phash.window_hashes`), each image's
  ``MAX_WINDOW_CANDIDATES`` nearest of those. Every hash search is a banded join in bounded memory
  (:mod:`curate.dedup.hash_search`) with as many bands as the join can afford at this N: complete
  for small sets, pairs within ``MIN_BANDS - 1`` bits always met at a million;
- ``semantic``: each item's ``knn`` nearest neighbours in an embedding store with cosine >=
  ``candidate_threshold``.

Pairs are ``[m, 2]`` int64 manifest rows; :func:`propose` files them by pair (a < b) with the
signals that proposed each.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup import minhash
from curate.dedup.containment import ChunkIndex
from curate.dedup.hash_search import as_pairs, join_load, near_hashes
from curate.dedup.phash import HASH_BITS, popcount
from curate.dedup.pictures import Pictures
from curate.dedup.signatures import Signatures, image_signatures

SIGNALS = ("exact", "minhash", "phash", "semantic")
MAX_IMAGE_CANDIDATES = 8  # perceptual-hash candidates verified per image: its nearest by Hamming distance
MAX_WINDOW_CANDIDATES = 4  # and re-framed candidates (trimmed and window hashes) per image
WINDOW_HAMMING = 12  # bits a trimmed hash and a trimmed or window hash may differ in (unrelated: 18 or more)
WINDOW_BANDS = 6  # the window search's bit bands: pairs within 5 bits always meet, farther ones often
AGREE_BITS = 16  # canonical-hash candidates: plain hashes this close (unrelated images: 24 and more, mostly)
CANON_COSINE = 0.97  # or canonical coefficients this close (a copy rotated 3 degrees: 0.96-0.99)
MIN_BANDS = 5  # hash joins use at least this many bit bands (pairs within 4 bits always meet)
SEARCH_BUDGET = 300_000_000  # same-band pairs a hash join may look at (about 10 s of NumPy on one core)
LOAD_SAMPLE = 4096  # queries (and 16 times as many base hashes) a join's load is counted on

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
    """Pairs of ``rows`` (images) from their hashes (:mod:`curate.dedup.signatures`, one decode each):
    :func:`hash_pairs`, each image's nearest few only, and the re-framed pairs of :func:`window_pairs`."""
    signatures = image_signatures(pictures, rows, getattr(config, "workers", 1))
    usable = rows[signatures.have]
    signatures = signatures.take(signatures.have)
    if len(usable) < 2:
        return np.empty((0, 2), dtype=np.int64)
    out = [usable[window_pairs(signatures.windows, min(config.hamming, WINDOW_HAMMING))]]
    local, distance = hash_pairs(signatures, config.hamming)
    if len(local):
        out.append(usable[nearest_per_item(local, distance, MAX_IMAGE_CANDIDATES)])
    return np.concatenate(out)


def hash_pairs(signatures: Signatures, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs, distance)``: images whose plain DCT hashes (border-trimmed, one of them maybe mirrored)
    differ in at most ``max_distance`` bits, and images whose canonical hashes do (rotated copies, which
    the plain hash does not see) when they agree on more: plain hashes within ``AGREE_BITS`` or canonical
    coefficients at cosine ``CANON_COSINE`` (the 64 canonical bits alone put thousands of unrelated
    photos within 12 bits of each other at 100,000 images)."""
    n = len(signatures.have)
    plain, mirror = signatures.plain, signatures.mirror
    items = np.arange(n)
    base = np.concatenate([plain, mirror])
    i, o, d = near_hashes(plain, base, np.concatenate([items, items]), max_distance,
                          affordable_bands(plain, base, max_distance))
    aligned, aligned_d = as_pairs(i, o, d)
    canonical = signatures.canonical
    i, o, d = near_hashes(canonical, canonical, items, max_distance, affordable_bands(canonical, canonical,
                                                                                       max_distance))
    rotated, rotated_d = as_pairs(i, o, d)
    a, b = rotated[:, 0], rotated[:, 1]
    agree = np.minimum(popcount(plain[a] ^ plain[b]), popcount(plain[a] ^ mirror[b])) <= AGREE_BITS
    close = np.einsum("ij,ij->i", signatures.coefficients[a], signatures.coefficients[b]) >= CANON_COSINE
    rotated, rotated_d = rotated[agree | close], rotated_d[agree | close]
    pairs, distance = np.concatenate([aligned, rotated]), np.concatenate([aligned_d, rotated_d])
    if not len(pairs):
        return pairs.reshape(-1, 2), distance
    return as_pairs(pairs[:, 0], pairs[:, 1], distance)


def affordable_bands(query: np.ndarray, base: np.ndarray, max_distance: int, most: int | None = None,
                     seed: int = 0) -> int:
    """Bit bands for a hash join of ``query`` against ``base`` hashes: enough for every pair within
    ``max_distance`` bits to meet (``max_distance + 1``, or ``most``) while the same-band pairs the join
    would look at stay under ``SEARCH_BUDGET``; never fewer than ``MIN_BANDS`` (pairs within
    ``MIN_BANDS - 1`` bits always meet, farther ones often). The load is counted on a sample of both
    sides: perceptual hash bits are far from uniform (the canonical hash's bands hold 5-30 times the
    pairs uniform bits would)."""
    top = min(max_distance + 1, HASH_BITS) if most is None else most
    rng = np.random.default_rng(seed)
    q = query if len(query) <= LOAD_SAMPLE else rng.choice(query, LOAD_SAMPLE, replace=False)
    b = base if len(base) <= 16 * LOAD_SAMPLE else rng.choice(base, 16 * LOAD_SAMPLE, replace=False)
    scale = (len(query) / max(1, len(q))) * (len(base) / max(1, len(b)))
    for bands in range(top, MIN_BANDS, -1):
        if len(query) * len(base) * bands / 2 ** (HASH_BITS / bands) > SEARCH_BUDGET:
            continue  # too many even for uniform bits
        if join_load(q, b, bands) * scale <= SEARCH_BUDGET:
            return bands
    return min(top, MIN_BANDS)


def window_pairs(windows: np.ndarray, max_distance: int, bands: int | None = None) -> np.ndarray:
    """Pairs of items (``[m, 2]`` indices, a < b) where the border-trimmed hash of one (``windows[:, 0]``)
    is within ``max_distance`` bits of the other's or of one of its window hashes, each item's
    ``MAX_WINDOW_CANDIDATES`` nearest. A banded join of the n trimmed hashes with all the hashes
    (:func:`curate.dedup.hash_search.near_hashes`; ``bands``: ``WINDOW_BANDS``, fewer where the join
    would cost too much): no n x n step, and window hashes are never compared with each other."""
    n, per = windows.shape
    every = windows.ravel()
    if bands is None:
        bands = affordable_bands(windows[:, 0], every, max_distance, most=WINDOW_BANDS)
    i, o, d = near_hashes(windows[:, 0], every, np.repeat(np.arange(n), per), max_distance, bands)
    if not len(i):
        return np.empty((0, 2), dtype=np.int64)
    pairs, distance = as_pairs(i, o, d)
    return nearest_per_item(pairs, distance, MAX_WINDOW_CANDIDATES)


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
    from curate.index.ann import build_index, search  # torch and FAISS: only where a store is used

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
