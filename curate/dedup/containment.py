"""Truncated and wrapped copies of texts: most of the shorter text's shingles inside the longer one.

A copy cut to 75%, or wrapped in a site's header and footer, has a low Jaccard similarity with its
original (0.75, or 0.5 for a wrapper as long as the text) but holds almost all of its shingles.

Candidates (no n x n step): every text is cut into content-defined chunks of its shingle
sequence (a chunk ends where a shingle hash has its low ``CHUNK_BITS`` bits of the top word
zero: about 16 characters on average). A chunk's key depends only on its own shingles, so the
chunks inside a text and inside a copy that holds it (with anything before or after) have the
same keys. Texts that share at least ``MIN_SHARED`` chunks of at least ``MIN_CHUNK`` shingles are
candidates; each text keeps its ``MAX_CANDIDATES`` partners that share most chunks.

Boilerplate: a chunk held by more than ``boilerplate_df`` distinct texts (a header or footer that
many pages share) proposes no pair, and its shingles do not count toward containment. The chunk
counts are one sort over (chunk key, text) codes, 12 bytes per chunk (about 400 MB for 1M
texts of 700 characters, a few times that while sorting); only the boilerplate keys are kept. The
pairs a chunk proposes are at most ``boilerplate_df^2 / 2``; they are counted (one ``np.unique``)
before each text's best ``MAX_CANDIDATES`` are kept.

Verification (:func:`containment_pairs`): for the shorter text A (normalised characters) and the
longer B, ``|A' & B| / |A'|`` where A' is A's shingle set without the shingles of its
boilerplate chunks. The guards are the caller's (:mod:`curate.dedup.verify`): A at least
``containment_ratio`` of B's length, both outside boilerplate (a short quote in a long page is not a
copy), and at least ``containment_chars`` characters outside boilerplate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curate.dedup import minhash

CHUNK_BITS = 4  # a chunk ends after about 2^4 = 16 shingles (characters)
MIN_CHUNK = 8  # shorter chunks (common short phrases) propose nothing
MIN_SHARED = 2  # chunks two texts must share to be candidates (one is often a common phrase)
MAX_CANDIDATES = 8  # containment partners per text: those sharing most chunks
_SHIFT = np.uint64(40)
_CHUNK_MASK = np.uint64((1 << CHUNK_BITS) - 1)


@dataclass(frozen=True)
class Chunks:
    """Content-defined chunks of a batch of texts: key, owning text (batch-local), first shingle, length."""

    keys: np.ndarray  # uint64
    owner: np.ndarray  # int64
    start: np.ndarray  # int64, into the batch's flat shingle array
    length: np.ndarray  # int64, shingles


def chunks_of(hashes: np.ndarray, offsets: np.ndarray) -> Chunks:
    """The chunks of texts given as ``minhash.batch_shingles`` returns them (shingles in text order)."""
    counts = np.diff(offsets)
    total = len(hashes)
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Chunks(np.zeros(0, dtype=np.uint64), empty, empty, empty)
    boundary = ((hashes >> _SHIFT) & _CHUNK_MASK) == 0
    boundary[offsets[:-1][counts > 0]] = True  # every text starts a chunk: chunks never span texts
    start = np.flatnonzero(boundary)
    length = np.diff(np.r_[start, total])
    sums = np.add.reduceat(hashes, start)
    keys = minhash._fmix64(sums ^ (length.astype(np.uint64) * minhash._POLY))
    owner = np.repeat(np.arange(len(counts)), counts)[start]
    return Chunks(keys, owner.astype(np.int64), start.astype(np.int64), length.astype(np.int64))


class ChunkIndex:
    """Chunk keys of every text, collected batch by batch (as the MinHash signatures are computed)."""

    def __init__(self, n: int, ngram: int) -> None:
        self.n, self.ngram = n, ngram
        self._parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, first: int, hashes: np.ndarray, offsets: np.ndarray) -> None:
        """Record the chunks of texts ``first ..`` (their shingles as ``batch_shingles`` gives them)."""
        c = chunks_of(hashes, offsets)
        long_enough = c.length >= MIN_CHUNK
        self._parts[first] = (c.keys[long_enough], (c.owner[long_enough] + first).astype(np.int32))

    def candidates(self, distinct: np.ndarray, boilerplate_df: int) -> tuple[np.ndarray, np.ndarray]:
        """``(pairs [m, 2] of text positions, boilerplate chunk keys)``.

        ``distinct``: per text, the position of its first identical copy (identical texts count
        once toward a chunk's document frequency).
        """
        parts = [self._parts[k] for k in sorted(self._parts)]
        keys = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.uint64)
        owner = np.concatenate([p[1] for p in parts]).astype(np.int64) if parts else np.zeros(0, np.int64)
        self._parts.clear()
        if not len(keys):
            return np.zeros((0, 2), np.int64), np.zeros(0, np.uint64)
        order = np.lexsort((owner, keys))
        keys, owner = keys[order], owner[order]
        rep = distinct[owner]
        new_key = np.r_[True, keys[1:] != keys[:-1]]
        once = new_key | np.r_[True, owner[1:] != owner[:-1]]  # (key, text) once
        keys, owner, rep = keys[once], owner[once], rep[once]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        # distinct texts per key: texts whose first copy is another holder of the key do not count
        by_rep = np.lexsort((rep, keys))
        rk, rr = keys[by_rep], rep[by_rep]
        first_rep = np.r_[True, (rk[1:] != rk[:-1]) | (rr[1:] != rr[:-1])]
        df = np.add.reduceat(first_rep.astype(np.int64), starts)
        boilerplate = keys[starts[df > boilerplate_df]]
        usable = (sizes >= 2) & (df <= boilerplate_df)
        pairs = _posting_pairs(owner, starts[usable], sizes[usable])
        if not len(pairs):
            return np.zeros((0, 2), np.int64), boilerplate
        codes, shared = np.unique(pairs[:, 0] * self.n + pairs[:, 1], return_counts=True)
        codes, shared = codes[shared >= MIN_SHARED], shared[shared >= MIN_SHARED]
        pairs = np.stack([codes // self.n, codes % self.n], axis=1)
        from curate.dedup.candidates import nearest_per_item

        return nearest_per_item(pairs, -shared, MAX_CANDIDATES), boilerplate


def _posting_pairs(owner: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Every pair (a < b) of owners inside each run ``owner[start:start + size]`` (owners ascending)."""
    if not len(starts):
        return np.zeros((0, 2), np.int64)
    pos = minhash._ranges(starts, sizes)
    later = np.repeat(starts + sizes, sizes) - pos - 1
    left = np.repeat(pos, later)
    right = minhash._ranges(pos + 1, later)
    return np.stack([owner[left], owner[right]], axis=1)


def boilerplate_mask(hashes: np.ndarray, offsets: np.ndarray, boilerplate: np.ndarray) -> np.ndarray:
    """True for every shingle that lies in a boilerplate chunk (one entry per shingle of ``hashes``)."""
    out = np.zeros(len(hashes), dtype=bool)
    if not len(boilerplate) or not len(hashes):
        return out
    c = chunks_of(hashes, offsets)
    hit = np.isin(c.keys, boilerplate)
    if hit.any():
        out[minhash._ranges(c.start[hit], c.length[hit])] = True
    return out


def containment_pairs(texts: Sequence[str], pairs: np.ndarray, ngram: int,
                      boilerplate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(containment, content, ratio)`` of every pair: for the pair's shorter text A (fewer shingles;
    the first on a tie) and the longer B, ``|A' & B| / |A'|`` with A' A's shingles outside boilerplate
    chunks; ``content`` the number of A's shingles outside them; ``ratio`` that number over B's (a page
    wrapped in a header many pages share is as long as its text; all shingles where B has only
    boilerplate; 0 where a text has none)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    containment = np.zeros(len(pairs), dtype=np.float64)
    content = np.zeros(len(pairs), dtype=np.int64)
    ratio = np.zeros(len(pairs), dtype=np.float64)
    if not len(pairs):
        return containment, content, ratio
    docs, local = minhash._unique_inverse(pairs.ravel())
    local = local.reshape(-1, 2)
    hashes, offsets = minhash.batch_shingles([texts[int(d)] for d in docs], ngram)
    boiler = boilerplate_mask(hashes, offsets, np.asarray(boilerplate, dtype=np.uint64))
    sizes = np.diff(offsets)
    for k, (a, b) in enumerate(local.tolist()):
        if sizes[b] < sizes[a]:
            a, b = b, a
        own = hashes[offsets[a]:offsets[a + 1]][~boiler[offsets[a]:offsets[a + 1]]]
        content[k] = len(own)
        theirs_own = int(np.count_nonzero(~boiler[offsets[b]:offsets[b + 1]]))
        ratio[k] = len(own) / theirs_own if theirs_own else sizes[a] / sizes[b] if sizes[b] else 0.0
        if not len(own):
            continue
        mine = minhash._unique(own)
        theirs = minhash._unique(hashes[offsets[b]:offsets[b + 1]])
        at = np.minimum(np.searchsorted(theirs, mine), max(len(theirs) - 1, 0))
        inside = np.count_nonzero(theirs[at] == mine) if len(theirs) else 0
        containment[k] = inside / len(mine)
    return containment, content, ratio


def content_jaccard(texts: Sequence[str], pairs: np.ndarray, ngram: int,
                    boilerplate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(jaccard, vetoable, content)`` of every pair over the shingles outside boilerplate chunks;
    ``vetoable``: the pair has boilerplate shingles and both texts have content outside them (then the
    boilerplate, not the content, may be what makes the two alike); ``content``: the smaller of the two
    texts' distinct shingle counts outside boilerplate."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    jaccard = np.zeros(len(pairs), dtype=np.float64)
    vetoable = np.zeros(len(pairs), dtype=bool)
    content = np.zeros(len(pairs), dtype=np.int64)
    if not len(pairs) or not len(boilerplate):
        return jaccard, vetoable, content
    docs, local = minhash._unique_inverse(pairs.ravel())
    local = local.reshape(-1, 2)
    hashes, offsets = minhash.batch_shingles([texts[int(d)] for d in docs], ngram)
    boiler = boilerplate_mask(hashes, offsets, np.asarray(boilerplate, dtype=np.uint64))
    own = [minhash._unique(hashes[offsets[i]:offsets[i + 1]][~boiler[offsets[i]:offsets[i + 1]]])
           for i in range(len(docs))]
    has_boiler = np.add.reduceat(boiler, offsets[:-1]) > 0 if len(hashes) else np.zeros(len(docs), bool)
    has_boiler &= np.diff(offsets) > 0
    for k, (a, b) in enumerate(local.tolist()):
        sa, sb = own[a], own[b]
        vetoable[k] = (has_boiler[a] or has_boiler[b]) and len(sa) > 0 and len(sb) > 0
        content[k] = min(len(sa), len(sb))
        if vetoable[k]:
            inter = len(np.intersect1d(sa, sb, assume_unique=True))
            jaccard[k] = inter / (len(sa) + len(sb) - inter)
    return jaccard, vetoable, content
