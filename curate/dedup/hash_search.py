"""Pairs of 64-bit hashes within a Hamming distance, by banded joins in bounded memory.

Each hash is cut into ``bands`` bit bands; two hashes within ``bands - 1`` bits agree on at least
one band (pigeonhole), and farther ones often do. So a pair is looked at only when the two agree
on a band: per band, the base hashes are sorted by that band once and every query finds its
equals by binary search. Nothing is n x n: the work is the number of same-band pairs, about
``queries * base / 2 ** (64 / bands)`` per band, and the queries are joined in blocks sized so
that a block's joined pairs stay under ``budget`` (what bounds memory at 100,000 images with
37 hashes each). Each candidate is then checked with its exact distance.
"""

from __future__ import annotations

import numpy as np

from curate.dedup.phash import band_keys, popcount

JOIN_BUDGET = 8_000_000  # same-band pairs one block of queries may produce (a few int64 arrays of this size)


def near_hashes(query: np.ndarray, base: np.ndarray, owner: np.ndarray, max_distance: int, bands: int,
                budget: int = JOIN_BUDGET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, o, distance)``: each query ``i`` and each owner ``o`` (``owner[j]`` of a base hash ``j``)
    with a base hash of that owner within ``max_distance`` bits of ``query[i]`` (met on one of ``bands``
    bands), ``o != i``, once per (i, o) at its smallest distance. ``owner``: which item each base hash
    belongs to (queries are items ``0 .. len(query) - 1``)."""
    query, base = np.asarray(query, dtype=np.uint64), np.asarray(base, dtype=np.uint64)
    owner = np.asarray(owner, dtype=np.int64)
    qkeys, bkeys = band_keys(query, bands), band_keys(base, bands)
    orders = [np.argsort(k, kind="stable") for k in bkeys]
    sorted_keys = [k[o] for k, o in zip(bkeys, orders)]
    spans = [(np.searchsorted(s, q, "left"), np.searchsorted(s, q, "right")) for s, q in zip(sorted_keys, qkeys)]
    load = np.sum([hi - lo for lo, hi in spans], axis=0)  # same-band pairs of each query, all bands
    out_i, out_o, out_d = [], [], []
    start = 0
    while start < len(query):
        stop = start + max(1, int(np.searchsorted(np.cumsum(load[start:]), budget, "right")))
        block_i, block_o, block_d = [], [], []
        for (lo, hi), order in zip(spans, orders):
            i, j = _expand(lo[start:stop], hi[start:stop], order)
            i += start
            o = owner[j]
            d = popcount(query[i] ^ base[j])
            keep = (o != i) & (d <= max_distance)
            block_i.append(i[keep])
            block_o.append(o[keep])
            block_d.append(d[keep])
        # a query's matches all come in its block: each (query, owner) once here keeps memory to the answer
        i, o, d = _nearest_once(np.concatenate(block_i), np.concatenate(block_o), np.concatenate(block_d))
        out_i.append(i)
        out_o.append(o)
        out_d.append(d)
        start = stop
    if not out_i:
        return (np.zeros(0, np.int64),) * 3
    return np.concatenate(out_i), np.concatenate(out_o), np.concatenate(out_d)


def _nearest_once(i: np.ndarray, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (query, owner) once, at its smallest distance, sorted by query then owner."""
    if not len(i):
        return i, o, d
    order = np.lexsort((d, o, i))  # the nearest base hash of each (query, owner) first
    i, o, d = i[order], o[order], d[order]
    first = np.r_[True, (i[1:] != i[:-1]) | (o[1:] != o[:-1])]
    return i[first], o[first], d[first]


def join_load(query: np.ndarray, base: np.ndarray, bands: int) -> int:
    """How many same-band pairs :func:`near_hashes` would look at with ``bands`` bands."""
    total = 0
    for q, b in zip(band_keys(np.asarray(query, np.uint64), bands), band_keys(np.asarray(base, np.uint64), bands)):
        keys = np.sort(b)
        total += int((np.searchsorted(keys, q, "right") - np.searchsorted(keys, q, "left")).sum())
    return total


def _expand(lo: np.ndarray, hi: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query k, base index) with the base index in ``order[lo[k]:hi[k]]``."""
    counts = hi - lo
    i = np.repeat(np.arange(len(lo)), counts)
    j = order[np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(lo, counts)]
    return i, j


def as_pairs(i: np.ndarray, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs [m, 2] with a < b, distance)``: the (query, owner) matches of :func:`near_hashes` as
    unordered pairs, once each at the smaller distance."""
    a, b = np.minimum(i, o), np.maximum(i, o)
    order = np.lexsort((d, b, a))
    a, b, d = a[order], b[order], d[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])] if len(a) else np.zeros(0, bool)
    return np.stack([a[first], b[first]], axis=1).reshape(-1, 2), d[first]
