"""Lexical near duplicates of texts: MinHash over character n-grams, LSH banding, exact check.

Pipeline (as ``--method fuzzy``/``near`` run it: :func:`curate.dedup.candidates.minhash_candidates`,
then :mod:`curate.dedup.verify`): every text is normalised (casefold, whitespace runs collapsed to
one space, ends stripped) and cut into its character ``ngram``-grams; ``signatures`` gives
each text ``bands * rows`` MinHash values; ``candidate_pairs`` pairs the texts that agree on
all ``rows`` values of at least one band; ``jaccard_pairs`` computes the exact Jaccard
similarity of the two shingle sets of every candidate, and only pairs at or above the
threshold count. LSH only proposes: every pair is verified.

Hashing, all vectorised with numpy (no Python loop per shingle or per permutation):

- shingle hash: a polynomial (Horner) hash mod 2^64 over the UTF-32 code points of the
  n-gram, finished with the murmur3 64-bit mixer. It is fixed (independent of ``seed``), so
  exact Jaccard values do not depend on the seed. Distinct n-grams collide with probability
  about 2^-64 per pair; "exact Jaccard" means exact over these 64-bit hashes.
- permutations: ``(h32 ^ mask_k) * odd_k mod 2^32`` on the top 32 bits of the shingle hash,
  with ``mask_k`` and ``odd_k`` drawn from ``seed``. This 32-bit xor-multiply family is about
  twice as fast in numpy as 64-bit arithmetic; tests check that its collision rate matches
  the Jaccard similarity within binomial tolerance and that the LSH S-curve is the
  theoretical ``1 - (1 - J^rows)^bands``.
- signatures are ``uint32``. ``EMPTY`` (``2^32 - 1``) is reserved: it is the whole row of a
  text without shingles (empty or whitespace-only after normalisation) and never occurs in
  a real signature (a real minimum of ``EMPTY`` is stored as ``EMPTY - 1``). A band whose
  values are all ``EMPTY`` is never bucketed, so empty texts pair with nothing, not even
  with each other (exact dedup is the place for identical empty texts).

Texts shorter than ``ngram`` (after normalisation) have one shingle: the whole text. So two
short texts pair only when equal after normalisation. Texts must be ``str`` (map missing
values to ``""`` first); any ``str`` works, lone surrogates included.

Speed: the permutation step is about 3 numpy passes over ``shingles x bands*rows`` uint32
values (xor, multiply, ``minimum.reduceat``) in ~8 MB blocks; it is ~85% of the time. Batches
run on ``workers`` threads (numpy releases the GIL); the default leaves one CPU free, so a
2-CPU machine uses one thread: on a busy 2-vCPU VM a second thread made it slower, not
faster. Measure on the target before raising it.

With 20 x 13 the LSH S-curve ``1 - (1 - J^13)^20`` is 0.68 at J = 0.8, 0.96 at 0.85 and
0.997 at 0.9: pairs just above the threshold are found with probability well below 1 (more
bands, fewer rows raise it, at the cost of more candidates to verify). The threshold
decision is made on the float64 Jaccard; the float32 values returned are for reporting.

Memory bounds (the stage author's budget):

- ``signatures``: the output ``n * bands * rows * 4`` bytes (1 KB per text at 260), plus
  per worker thread (``workers``, default usable CPUs less one, 1 to 8) one batch of at most
  ``batch`` texts and about ``_BATCH_CHARS`` (2M) characters at about 30 bytes per
  character (about 60 MB; a single text longer than that is a batch on its own) and a
  ``bands*rows x _CHUNK_SHINGLES`` uint32 buffer (8.5 MB at the defaults).
- ``candidate_pairs``: per band a few arrays of ``n`` 64-bit values, plus the pairs. A
  bucket (texts with equal band values) of more than ``max_bucket`` (1000) members is not
  expanded into all its pairs: each member is paired with the bucket's first (lowest
  index) member only, so a pathological bucket (boilerplate, templated pages) costs
  ``size - 1`` pairs instead of ``size^2 / 2``. Such buckets are counted in
  ``Candidates.capped_buckets`` / ``capped_members`` (``lsh_candidates``). Pairs that were
  not emitted can still be found via another band; otherwise they are missed, which is the
  price of the cap. Buckets up to the cap are fully
  expanded, so the number of candidate pairs is at most ``n * (max_bucket - 1) / 2`` per
  band, in practice about the number of true near-duplicate pairs.
- ``jaccard_pairs``: pairs are checked in chunks of ``_PAIR_CHUNK`` pairs; each chunk
  re-shingles its (at most ``2 * _PAIR_CHUNK``) texts, so memory is bounded by the chunk,
  not by the number of pairs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from curate.dedup.text_normalise import normalise as _normalise
from curate.dedup.text_normalise import normalise_many
from curate.errors import CurateError

SIG_DTYPE = np.uint32
EMPTY = np.iinfo(SIG_DTYPE).max  # the signature value of a text without shingles (reserved)

MAX_BUCKET = 1000  # buckets above this many members pair each member with the first only
_CHUNK_SHINGLES = 8192  # shingles per permutation block: bands*rows x this uint32 (8.5 MB at 260)
_BATCH_CHARS = 1 << 21  # characters per signature batch (besides the `batch` text count)
_PAIR_CHUNK = 8192  # pairs verified together by jaccard_pairs
_HASH_BLOCK = 1 << 15  # n-gram windows hashed together (256 KB of uint64)

_POLY = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the polynomial n-gram hash
_POLY_START = np.uint64(0x2545F4914F6CDD1D)  # non-zero start: leading NULs and length count
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)


# Upper bounds of the LSH shape: the work and the signatures grow with bands x rows (4 bytes per text and
# permutation), and past these no threshold gets sharper: 100,000 bands ran for minutes on 27 texts.
MAX_BANDS = 1024
MAX_ROWS = 64
MAX_PERMUTATIONS = 1024  # bands x rows: 8x the default 25 x 5; 4 KB of signature per text


def check_lsh(bands: object, rows: object, option: str = "--") -> None:
    """``bands`` and ``rows`` must be integers in [1, MAX_BANDS] and [1, MAX_ROWS] with at most
    MAX_PERMUTATIONS permutations in all; ``option`` prefixes the names in the one-line error."""
    for name, value, high in (("bands", bands, MAX_BANDS), ("rows", rows, MAX_ROWS)):
        if not _is_int(value) or not 1 <= value <= high:
            raise CurateError(f"{option}{name} must be an integer in [1, {high}], not {value!r}")
    if bands * rows > MAX_PERMUTATIONS:
        raise CurateError(f"{option}bands x {option}rows must be at most {MAX_PERMUTATIONS} MinHash permutations, "
                          f"not {bands} x {rows} = {bands * rows:,}")


@dataclass(frozen=True)
class MinHashConfig:
    ngram: int = 5  # character n-grams (NeMo Curator's default)
    bands: int = 20
    rows: int = 13  # bands x rows permutations
    threshold: float = 0.8  # verified Jaccard a pair needs
    seed: int = 0

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def validate(self) -> None:
        if not _is_int(self.ngram) or self.ngram < 1:
            raise CurateError(f"minhash ngram must be an integer >= 1, got {self.ngram!r}")
        check_lsh(self.bands, self.rows, "minhash ")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or math.isnan(t) \
                or not 0.0 < t <= 1.0:
            raise CurateError(f"minhash threshold must be in (0, 1], got {t!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise CurateError(f"minhash seed must be an integer >= 0, got {self.seed!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# shingles


def normalise(text: str) -> str:
    """Markup, Unicode forms, quotes and dashes, case and whitespace normalised (:mod:`curate.dedup.text_normalise`)."""
    return _normalise(text)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place (a bijection: it adds no collisions)."""
    h ^= h >> _S33
    h *= _FMIX1
    h ^= h >> _S33
    h *= _FMIX2
    h ^= h >> _S33
    return h


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (start, length), as int64."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted unique values (sort-based: numpy 2's hash-based ``np.unique`` is far slower here)."""
    s = np.sort(x)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)`` for a 1-D array, sort-based."""
    order = np.argsort(x)
    s = x[order]
    new = np.empty(len(s), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    inverse = np.empty(len(s), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return s[new], inverse


def _horner(cps: np.ndarray, positions: np.ndarray, width: int) -> np.ndarray:
    """Polynomial hash of ``cps[p:p + width]`` for every p in ``positions`` (not yet mixed)."""
    h = np.full(len(positions), _POLY_START, dtype=np.uint64)
    for j in range(width):
        h *= _POLY
        h += cps[positions + j]
    return h


def normalised_codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-32 code points of the concatenated normalised texts, each text's length).

    Lone surrogates are kept as code points (``surrogatepass``), so any ``str`` works.
    """
    normed = normalise_many(texts)
    lens = np.fromiter(map(len, normed), dtype=np.int64, count=len(normed))
    cps = np.frombuffer("".join(normed).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return cps, lens


def batch_shingles(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """All shingle hashes of ``texts``, flat and grouped by text (not deduplicated).

    Returns ``(hashes, offsets)``: uint64 ``hashes[offsets[i]:offsets[i + 1]]`` are text i's
    n-gram hashes in text order. A normalised text of length L >= ngram has L - ngram + 1,
    a shorter non-empty one has one (its whole text), an empty one none.
    """
    cps, lens = normalised_codepoints(texts)
    counts = np.where(lens >= ngram, lens - ngram + 1, np.minimum(lens, 1))
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = len(cps)
    if offsets[-1] == 0:
        return np.zeros(0, dtype=np.uint64), offsets
    starts = np.zeros(len(lens), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    # Horner over the window at every position of the concatenation (zero-padded at the end),
    # in cache-sized blocks: n multiply-adds and the mixer per block, no loop per text
    padded = np.zeros(total + ngram - 1, dtype=np.uint32)
    padded[:total] = cps
    h_all = np.empty(total, dtype=np.uint64)
    for p0 in range(0, total, _HASH_BLOCK):
        p1 = min(p0 + _HASH_BLOCK, total)
        h = h_all[p0:p1]
        h[:] = _POLY_START
        for j in range(ngram):
            h *= _POLY
            h += padded[p0 + j:p1 + j]
        _fmix64(h)
    # a text shorter than ngram: its whole-text hash at its first position
    short = np.flatnonzero((lens > 0) & (lens < ngram))
    for length in _unique(lens[short]):
        docs = short[lens[short] == length]
        h_all[starts[docs]] = _fmix64(_horner(padded, starts[docs], int(length)))
    # keep the first `counts` positions of every text (windows that lie inside it)
    inside = np.ones(total, dtype=bool)
    inside[_ranges(starts + counts, lens - counts)] = False
    return h_all[inside], offsets


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """Sorted unique uint64 hashes of the normalised text's character n-grams.

    A text shorter than ``ngram`` is one shingle (its whole normalised text); an empty or
    whitespace-only text has none.
    """
    if not _is_int(ngram) or ngram < 1:
        raise CurateError(f"minhash ngram must be an integer >= 1, got {ngram!r}")
    hashes, _ = batch_shingles([text], int(ngram))
    return _unique(hashes)


# ---------------------------------------------------------------------------------------------
# signatures


def permutation_params(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, odd)``: the uint32 parameters of the ``bands * rows`` permutations."""
    rng = np.random.default_rng(config.seed)
    k = config.num_perm
    mask = rng.integers(0, 1 << 32, size=k, dtype=np.uint64).astype(np.uint32)
    odd = rng.integers(0, 1 << 32, size=k, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    return mask, odd


def _minhash_into(out: np.ndarray, hashes: np.ndarray, offsets: np.ndarray,
                  mask: np.ndarray, odd: np.ndarray) -> None:
    """``out[i] = min over text i's shingles of every permutation`` (rows of ``out`` start at EMPTY).

    Blocks of ``_CHUNK_SHINGLES`` shingles: a [k, block] array of permuted values, then one
    ``np.minimum.reduceat`` along the shingles. A block may cut a text; its partial minimum
    is folded into ``out`` with ``np.minimum``.
    """
    h32 = (hashes >> _S32).astype(np.uint32)
    total = len(h32)
    k = len(mask)
    chunk = max(1, int(_CHUNK_SHINGLES))
    buf = np.empty((k, min(chunk, total)), dtype=np.uint32)
    mask_col, odd_col = mask[:, None], odd[:, None]
    for c0 in range(0, total, chunk):
        c1 = min(c0 + chunk, total)
        b = buf[:, :c1 - c0]
        np.bitwise_xor(h32[None, c0:c1], mask_col, out=b)
        np.multiply(b, odd_col, out=b)
        # texts overlapping [c0, c1): first is the one containing c0, last the one containing c1-1
        d0 = int(np.searchsorted(offsets, c0, side="right")) - 1
        d1 = int(np.searchsorted(offsets, c1 - 1, side="right"))  # exclusive
        lo = np.maximum(offsets[d0:d1], c0)
        hi = np.minimum(offsets[d0 + 1:d1 + 1], c1)
        keep = hi > lo  # texts with no shingles here (empty texts) have no segment
        docs = np.arange(d0, d1)[keep]
        mins = np.minimum.reduceat(b, lo[keep] - c0, axis=1)
        out[docs] = np.minimum(out[docs], mins.T)
    # EMPTY is reserved for texts without shingles: a real minimum of 2^32-1 becomes 2^32-2
    real = np.flatnonzero(np.diff(offsets) > 0)
    out[real] = np.minimum(out[real], EMPTY - 1)


def _batches(texts: Sequence[str], batch: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) ranges of at most ``batch`` texts and about ``_BATCH_CHARS`` chars."""
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ranges, start = [], 0
    while start < len(texts):
        cum = np.cumsum(lens[start:start + batch])
        end = start + max(1, int(np.searchsorted(cum, _BATCH_CHARS, side="right")))
        ranges.append((start, end))
        start = end
    return ranges


def default_workers() -> int:
    """Signature threads by default: the usable CPUs less one, 1 to 8.

    One CPU is left for the rest of the process: on a busy 2-vCPU VM, two threads ran
    1.0x-0.4x as fast as one (the GIL-holding thread gets descheduled; the vCPUs did not
    run SIMD code in parallel there).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus - 1))


def _on_device(out: np.ndarray, hashes: np.ndarray, offsets: np.ndarray, mask: np.ndarray, odd: np.ndarray,
               device) -> None:
    """``_minhash_into`` with the permutation step on a torch device (:mod:`curate.dedup.minhash_torch`)."""
    from curate.dedup.minhash_torch import minhash_on_device

    mins = minhash_on_device(hashes, offsets, mask, odd, device)
    real = np.diff(offsets) > 0
    mins[real] = np.minimum(mins[real], int(EMPTY) - 1)  # EMPTY stays reserved for texts without shingles
    out[:] = np.minimum(out, mins.astype(SIG_DTYPE))


def signatures(texts: Sequence[str], config: MinHashConfig, batch: int = 4096,
               workers: int | None = None, device: str | None = None,
               on_shingles: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
    """MinHash signatures ``[len(texts), bands * rows]`` (uint32) of the normalised texts.

    A text without shingles gets a row of ``EMPTY``, which never pairs. Batches of texts run
    on ``workers`` threads (default ``default_workers()``: usable CPUs less one, 1 to 8);
    the result does not depend on ``batch`` or ``workers``. ``device``: a torch device for the
    permutation step (``auto``: the GPU when torch sees one); None or a CPU device keeps the numpy
    threads, which are faster on a CPU. Signatures are the same bit for bit on every device.
    ``on_shingles(first, hashes, offsets)``: called with every batch's shingles (``batch_shingles`` of
    texts ``first ..``), so another index is built from the same pass (from worker threads).
    """
    config.validate()
    if not _is_int(batch) or batch < 1:
        raise CurateError(f"minhash batch must be an integer >= 1, got {batch!r}")
    n, k = len(texts), config.num_perm
    out = np.full((n, k), EMPTY, dtype=SIG_DTYPE)
    if n == 0:
        return out
    mask, odd = permutation_params(config)
    on_device = device is not None and _accelerated(device)

    def run(span: tuple[int, int]) -> None:
        s, e = span
        hashes, offsets = batch_shingles(texts[s:e], config.ngram)
        if on_shingles is not None:
            on_shingles(s, hashes, offsets)
        if len(hashes):
            (_on_device if on_device else _minhash_into)(out[s:e], hashes, offsets, mask, odd,
                                                           *((device,) if on_device else ()))

    spans = _batches(texts, int(batch))
    workers = 1 if on_device else default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(spans) == 1:
        for span in spans:
            run(span)
    else:
        with ThreadPoolExecutor(min(workers, len(spans))) as pool:
            for _ in pool.map(run, spans):
                pass
    return out


def _accelerated(device: str) -> bool:
    from curate.device import resolve_device

    return resolve_device(device).type != "cpu"


def signatures_of_sets(sets: Sequence[np.ndarray], config: MinHashConfig) -> np.ndarray:
    """Signatures of given uint64 shingle-hash sets (as ``signatures`` makes from texts).

    For tests and for callers that shingle differently; an empty set gives a row of EMPTY.
    """
    config.validate()
    k = config.num_perm
    out = np.full((len(sets), k), EMPTY, dtype=SIG_DTYPE)
    lens = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    if offsets[-1]:
        hashes = np.concatenate([np.asarray(s, dtype=np.uint64) for s in sets])
        mask, odd = permutation_params(config)
        _minhash_into(out, hashes, offsets, mask, odd)
    return out


# ---------------------------------------------------------------------------------------------
# LSH candidates


@dataclass(frozen=True)
class Candidates:
    pairs: np.ndarray  # [m, 2] int64, i < j, unique, sorted
    capped_buckets: int = 0  # (band, bucket)s with more than max_bucket members
    capped_members: int = 0  # members of those buckets, summed over bands


def _band_keys(band: np.ndarray) -> np.ndarray:
    """One uint64 per row of a [n, rows] band (64-bit collisions only cost a verification)."""
    h = np.full(band.shape[0], _POLY_START, dtype=np.uint64)
    for c in range(band.shape[1]):
        h ^= band[:, c].astype(np.uint64)
        h *= _POLY
        h ^= h >> _S32
    return _fmix64(h)


def _bucket_pairs(members: np.ndarray, keys: np.ndarray, max_bucket: int) -> tuple[np.ndarray, int, int]:
    """Pairs of rows inside runs of equal keys (buckets), the big-bucket rule applied.

    ``members`` are row indices (ascending), ``keys`` their band keys. Returns the pairs as
    [2, m] rows (first row < second row), the number of capped buckets and their members.
    """
    order = np.argsort(keys, kind="stable")  # stable: a run lists its rows in index order
    sk = keys[order]
    n = len(sk)
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    sizes = np.diff(np.r_[starts, n])
    small = (sizes >= 2) & (sizes <= max_bucket)
    big = sizes > max_bucket
    # every member of a small run with each later member of the run
    s_starts, s_sizes = starts[small], sizes[small]
    pos = _ranges(s_starts, s_sizes)
    later = np.repeat(s_starts + s_sizes, s_sizes) - pos - 1
    left = np.repeat(pos, later)
    right = _ranges(pos + 1, later)
    # a big run: its first member with every other member
    b_starts, b_sizes = starts[big], sizes[big]
    left = np.concatenate([left, np.repeat(b_starts, b_sizes - 1)])
    right = np.concatenate([right, _ranges(b_starts + 1, b_sizes - 1)])
    rows = members[order]
    return np.stack([rows[left], rows[right]]), int(big.sum()), int(b_sizes.sum())


def lsh_candidates(sigs: np.ndarray, bands: int, rows: int, max_bucket: int = MAX_BUCKET) -> Candidates:
    """Pairs of rows that agree on every value of at least one band, with big-bucket counts.

    Band b is columns ``[b * rows, (b + 1) * rows)``. Per band the rows are hashed to one
    uint64, sorted, and every run of equal keys (a bucket) gives its pairs; a bucket of more
    than ``max_bucket`` members gives only (first member, other member) pairs and is counted
    in ``capped_buckets``. A band whose values are all EMPTY (a text without shingles) is
    never bucketed. Equal band hashes with different band values (probability ~2^-64) can
    add a candidate, never drop one.
    """
    sigs = np.asarray(sigs)
    for name, value in (("bands", bands), ("rows", rows), ("max_bucket", max_bucket)):
        if not _is_int(value) or value < 1:
            raise CurateError(f"minhash {name} must be an integer >= 1, got {value!r}")
    if not np.issubdtype(sigs.dtype, np.integer):
        raise CurateError(f"minhash signatures must be integers, got {sigs.dtype}")
    if sigs.ndim != 2 or sigs.shape[1] != bands * rows:
        raise CurateError(f"minhash signatures must be [n, bands*rows = {bands * rows}], got shape {sigs.shape}")
    n = sigs.shape[0]
    empty = np.iinfo(sigs.dtype).max
    codes = np.zeros(0, dtype=np.int64)
    capped_buckets = capped_members = 0
    for b in range(bands):
        band = sigs[:, b * rows:(b + 1) * rows]
        members = np.arange(n, dtype=np.int64)
        real = ~(band == empty).all(axis=1)
        if not real.all():
            members, band = members[real], band[real]
        if len(members) < 2:
            continue
        pairs, nb, nm = _bucket_pairs(members, _band_keys(band), int(max_bucket))
        capped_buckets += nb
        capped_members += nm
        if pairs.shape[1]:
            codes = _unique(np.concatenate([codes, pairs[0] * n + pairs[1]]))
    out = np.stack([codes // max(n, 1), codes % max(n, 1)], axis=1) if len(codes) else np.zeros((0, 2), np.int64)
    return Candidates(out.astype(np.int64, copy=False), capped_buckets, capped_members)


def candidate_pairs(sigs: np.ndarray, bands: int, rows: int, max_bucket: int = MAX_BUCKET) -> np.ndarray:
    """``[m, 2]`` int64 pairs ``i < j`` sharing at least one band bucket (unique, sorted).

    See ``lsh_candidates`` for the big-bucket rule and its counts.
    """
    return lsh_candidates(sigs, bands, rows, max_bucket).pairs


# ---------------------------------------------------------------------------------------------
# exact verification


def jaccard_pairs(texts: Sequence[str], pairs: np.ndarray, ngram: int) -> np.ndarray:
    """Exact Jaccard similarity (float32) of the normalised n-gram sets of every pair.

    Two texts without shingles have Jaccard 0 (empty texts are never near duplicates here).
    """
    return _jaccard64(texts, pairs, ngram).astype(np.float32)


def _jaccard64(texts: Sequence[str], pairs: np.ndarray, ngram: int) -> np.ndarray:
    if not _is_int(ngram) or ngram < 1:
        raise CurateError(f"minhash ngram must be an integer >= 1, got {ngram!r}")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(len(pairs), dtype=np.float64)
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(texts)):
        raise CurateError(f"minhash pairs must index the {len(texts)} texts")
    for p0 in range(0, len(pairs), _PAIR_CHUNK):
        out[p0:p0 + _PAIR_CHUNK] = _jaccard_chunk(texts, pairs[p0:p0 + _PAIR_CHUNK], int(ngram))
    return out


def _jaccard_chunk(texts: Sequence[str], pairs: np.ndarray, ngram: int) -> np.ndarray:
    """Jaccard of a chunk of pairs: each text's shingle set once, then one merge per pair.

    Small per-text and per-pair sorts stay in cache; one global sort of all the chunk's
    shingles (argsort, ranks) measured 10x slower for the usual one or two pairs per text.
    """
    docs, local = _unique_inverse(pairs.ravel())
    local = local.reshape(-1, 2)
    hashes, offsets = batch_shingles([texts[int(d)] for d in docs], ngram)
    sets = [_unique(hashes[offsets[i]:offsets[i + 1]]) for i in range(len(docs))]
    out = np.zeros(len(pairs), dtype=np.float64)
    for k, (a, b) in enumerate(local.tolist()):
        sa, sb = sets[a], sets[b]
        if len(sa) > len(sb):
            sa, sb = sb, sa
        if not len(sa):
            continue
        if a == b:
            inter = len(sa)
        elif 8 * len(sa) < len(sb):  # a small set against a large one: binary search
            at = np.searchsorted(sb, sa)
            at[at == len(sb)] = len(sb) - 1
            inter = int(np.count_nonzero(sb[at] == sa))
        else:  # similar sizes: sort the concatenation, count equal neighbours
            both = np.concatenate([sa, sb])
            both.sort()
            inter = int(np.count_nonzero(both[1:] == both[:-1]))
        out[k] = inter / (len(sa) + len(sb) - inter)
    return out
