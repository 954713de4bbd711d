"""Every candidate pair of ``fuzzy``/``near`` verified by the precise measure of its kind.

- texts: character n-gram Jaccard >= ``jaccard``; with ``edit`` (``near``) also a normalised edit
  similarity >= ``edit_similarity`` (typos break many n-grams but few characters), and then a pair
  that only swaps a word or two for other real words is rejected (:mod:`curate.dedup.text_verify`).
  Short texts (under ``EDIT_MIN_CHARS`` normalised characters) are not matched by edit similarity and
  need a Jaccard of ``SHORT_JACCARD`` at least: there one changed word ("Return the number of items
  in the queue." / "... in the stack.") is within any edit bar and at Jaccard 0.7.
- texts, containment (truncated and wrapped copies): or at least ``containment`` of the shorter text's
  shingles inside the longer one, not counting shingles of boilerplate chunks (chunks that more than
  ``boilerplate_df`` texts hold: a shared header or footer), when the shorter text is at least
  ``containment_ratio`` of the longer one's length (a short quote in a long text is no copy) and has at
  least ``containment_chars`` characters outside boilerplate (:mod:`curate.dedup.containment`). A pair
  that passed by Jaccard or edit similarity is rejected when, without the boilerplate shingles, its
  Jaccard is below ``jaccard`` and both texts have content besides it (pages alike by their template).
- a text empty after normalisation (markup only, whitespace) matches nothing.
- images: perceptual similarity after flip / crop / rotation alignment and tone mapping >= the pair's
  bar, ``image_similarity`` raised for images whose every copy scores high
  (:mod:`curate.dedup.image_verify`); a pair the alignment misses is checked again re-framed
  (border-trimmed, or the crop / stretch / scale its keypoints agree on) against the same bar. Pairs
  far below the lowest bar are screened out before any copy floor is measured. Images are decoded as
  a person sees them (:mod:`curate.io.images`); a pair with a featureless image (a solid colour, a
  1 x 1 image) passes only when both are near-uniform and their mean colours match
  (:mod:`curate.dedup.featureless`); an undecodable image never passes.
- identical bytes (the ``exact`` signal) always pass, at score 1.

``loose``: the bar an item two verified steps from its keeper must clear with the keeper itself,
``2 * bar - 1`` (what two steps within the bar allow for a distance ``1 - similarity`` that obeys the
triangle inequality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from rapidfuzz.distance import Levenshtein
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import reverse_cuthill_mckee

from curate.dedup.candidates import SIGNALS
from curate.dedup.containment import containment_pairs, content_jaccard
from curate.dedup.featureless import featureless_pair
from curate.dedup.image_verify import SCREEN_MARGIN, coarse_similarity, copy_similarity, pair_bar, reframed_similarity
from curate.dedup.minhash import jaccard_pairs
from curate.dedup.pictures import Pictures
from curate.dedup.text_normalise import normalise_many
from curate.dedup.text_verify import SwapCheck

EDIT_MIN_CHARS = 100  # texts shorter than this (normalised) pass on Jaccard only, at SHORT_JACCARD at least
SHORT_JACCARD = 0.85  # one changed word of a 40-character sentence leaves a Jaccard of about 0.7


@dataclass
class Pairs:
    """Verified pairs of manifest rows (a < b), their score and the signals that proposed them."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    signal: list[str]  # "minhash", "exact,phash", ...

    def table(self, ids: pa.ChunkedArray) -> pa.Table:
        """The pairs by id (``<run-id>-pairs.parquet``)."""
        return pa.table({"a": ids.take(pa.array(self.a, pa.int64())), "b": ids.take(pa.array(self.b, pa.int64())),
                         "score": pa.array(self.score, pa.float32()), "signal": pa.array(self.signal, pa.string())})


class Verifier:
    """The precise pairwise measures of two manifest rows; ``edit``: near's text checks too."""

    def __init__(self, kinds: list, text_values: list, pictures: Pictures, config, edit: bool,
                 boilerplate: np.ndarray | None = None) -> None:
        self.kinds, self.pictures, self.config, self.edit = kinds, pictures, config, edit
        self.texts = [t or "" for t in text_values]
        self.boilerplate = np.zeros(0, np.uint64) if boilerplate is None else np.asarray(boilerplate, np.uint64)
        self._swap_check: SwapCheck | None = None

    def text_pairs(self, a: np.ndarray, b: np.ndarray, loose: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Jaccard of every pair, or containment (truncated and wrapped copies), or (``edit``) normalised
        edit similarity where both miss it."""
        cfg = self.config
        jaccard, edit, contained = cfg.jaccard, cfg.edit_similarity, cfg.containment
        if loose:
            jaccard, edit, contained = 2 * jaccard - 1, 2 * edit - 1, 2 * contained - 1
        pairs = np.stack([a, b], axis=1).reshape(-1, 2)
        score = jaccard_pairs(self.texts, pairs, cfg.ngram).astype(np.float32)
        docs, local = np.unique(pairs.ravel(), return_inverse=True)
        normed = normalise_many([self.texts[d] for d in docs.tolist()])
        shorter = np.fromiter(map(len, normed), dtype=np.int64, count=len(normed))[local].reshape(-1, 2).min(
            axis=1, initial=np.iinfo(np.int64).max)
        short = shorter < EDIT_MIN_CHARS
        short_bar = max(jaccard, 2 * SHORT_JACCARD - 1 if loose else SHORT_JACCARD)
        passed = score >= np.where(short, short_bar, jaccard) - 1e-6  # float32 scores: no false miss at the bar
        passed &= shorter > 0  # a text empty after normalisation matches nothing
        missed = np.flatnonzero(~passed & (shorter >= cfg.containment_chars))
        if len(missed):
            share, content, ratio = containment_pairs(self.texts, pairs[missed], cfg.ngram, self.boilerplate)
            hit = (share >= contained - 1e-9) & (ratio >= cfg.containment_ratio) \
                & (content + cfg.ngram - 1 >= cfg.containment_chars)
            score[missed[hit]], passed[missed[hit]] = share[hit], True
        if self.edit:
            for i in np.flatnonzero(~passed & ~short).tolist():
                x, y = normed[local[2 * i]], normed[local[2 * i + 1]]
                sim = Levenshtein.normalized_similarity(x, y, score_cutoff=edit)
                if sim >= edit:
                    score[i], passed[i] = sim, True
        by_shape = np.flatnonzero(passed)
        by_shape = by_shape[~np.isin(by_shape, missed[hit])] if len(missed) else by_shape
        if len(by_shape) and len(self.boilerplate):  # boilerplate alone must not make two texts alike
            # pages alike by their template alone share almost no content (Jaccard about 0.1 without it), while
            # a typo'd, OCR'd or word-dropped copy keeps about half its n-grams: where both have at least
            # ``containment_chars`` n-grams of content the bar is the loose one, 2 * jaccard - 1; a page with
            # only a line of its own (where a few common words reach any bar) must clear ``jaccard``
            similar, vetoable, content = content_jaccard(self.texts, pairs[by_shape], cfg.ngram, self.boilerplate)
            bar = np.where(content >= cfg.containment_chars, 2 * jaccard - 1, jaccard)
            passed[by_shape[vetoable & (similar < bar - 1e-9)]] = False
        if self.edit:
            checked = np.flatnonzero(passed)
            if len(checked):  # a swap of words other texts write: a look-alike, not a copy
                passed[checked[self._swaps().rejects(list(zip(a[checked].tolist(), b[checked].tolist())))]] = False
        return score, passed

    def _swaps(self) -> SwapCheck:
        if self._swap_check is None:
            self._swap_check = SwapCheck(self.texts, self.config.seed)
        return self._swap_check

    def image_pair(self, a: int, b: int, loose: bool = False) -> tuple[float, bool]:
        """Copy similarity against the pair's calibrated bar (:mod:`curate.dedup.image_verify`); a pair with a
        featureless image by colour instead (:mod:`curate.dedup.featureless`); an undecodable image never passes."""
        va, vb = self.pictures.view(a), self.pictures.view(b)
        if va is None or vb is None:
            return 0.0, False
        flat = featureless_pair(self.pictures.uniformity(a), self.pictures.uniformity(b), loose)
        if flat is not None:  # a featureless image: a copy only of one of its colour
            return flat
        relax = (lambda bar: 2 * bar - 1) if loose else (lambda bar: bar)
        lowest = relax(self.config.image_similarity) - SCREEN_MARGIN
        coarse = coarse_similarity(va, vb, enough=lowest)

        def bar() -> float:
            return relax(pair_bar(self.pictures.floor(a), self.pictures.floor(b), self.config.image_similarity))

        sim = coarse
        if coarse >= lowest:
            sim = copy_similarity(va, vb, bar())
            if sim >= bar():
                return sim, True
        reframed = reframed_similarity(va, vb, bar, lowest)  # a crop, stretch, border or overlay the alignment missed
        if reframed is None:
            return sim, False
        return max(sim, reframed), reframed >= bar()

    def score(self, a: int, b: int, loose: bool = False) -> tuple[float, bool]:
        kind = self.kinds[a]
        if kind != self.kinds[b] or kind not in ("text", "image"):
            return 0.0, False
        if kind == "image":
            return self.image_pair(a, b, loose)
        sc, ok = self.text_pairs(np.array([a]), np.array([b]), loose)
        return float(sc[0]), bool(ok[0])


def verify(found: dict[tuple[int, int], set[str]], verifier: Verifier, workers: int = 1) -> Pairs:
    """Keep the candidate pairs whose precise measure clears the bar (exact bytes always do). Image pairs
    are verified in ``workers`` processes when there are at least ``MIN_POOLED_PAIRS`` of them
    (:func:`image_pair_scores`)."""
    kinds = verifier.kinds
    keys = sorted(found)
    a = np.array([k[0] for k in keys], dtype=np.int64)
    b = np.array([k[1] for k in keys], dtype=np.int64)
    score = np.zeros(len(keys), dtype=np.float32)
    passed = np.zeros(len(keys), dtype=bool)
    exact = np.array(["exact" in found[k] for k in keys], dtype=bool)
    score[exact], passed[exact] = 1.0, True
    same_kind = np.array([kinds[x] == kinds[y] for x, y in keys], dtype=bool)
    exact_text = np.flatnonzero(exact & np.array([kinds[x] == "text" for x, _ in keys], dtype=bool))
    if len(exact_text):  # identical bytes, but nothing left after normalisation (markup only): no match
        empty = np.array([not t for t in normalise_many([verifier.texts[x] for x in a[exact_text].tolist()])])
        score[exact_text[empty]], passed[exact_text[empty]] = 0.0, False
    text = ~exact & same_kind & np.array([kinds[x] == "text" for x, _ in keys], dtype=bool)
    if text.any():
        score[text], passed[text] = verifier.text_pairs(a[text], b[text])
    image = ~exact & same_kind & np.array([kinds[x] == "image" for x, _ in keys], dtype=bool)
    order = locality_order(a, b, np.flatnonzero(image))
    score[order], passed[order] = image_pair_scores(verifier, a[order], b[order], workers)
    keep = np.flatnonzero(passed)
    return Pairs(a[keep], b[keep], score[keep], [",".join(s for s in SIGNALS if s in found[keys[i]]) for i in keep])


MIN_POOLED_PAIRS = 512  # fewer image pairs are verified in this process: spawning workers would cost more
PAIR_CHUNK = 256  # image pairs per task sent to a worker (consecutive in locality order: they share images)
WORKER_VIEWS = 512  # views a worker keeps (about 330 KB each): its pairs come in locality order
_worker_verifier: Verifier | None = None


def image_pair_scores(verifier: Verifier, a: np.ndarray, b: np.ndarray, workers: int = 1,
                      min_pooled: int = MIN_POOLED_PAIRS) -> tuple[np.ndarray, np.ndarray]:
    """``(score, passed)`` of image pairs ``a[i], b[i]`` (:meth:`Verifier.image_pair`), in ``workers``
    spawned processes from ``min_pooled`` pairs up: each worker decodes the images of its chunks of
    consecutive pairs, keeping its own views, so the pairs should come in :func:`locality_order`."""
    score = np.zeros(len(a), dtype=np.float32)
    passed = np.zeros(len(a), dtype=bool)
    if workers <= 1 or len(a) < min_pooled:
        for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
            score[i], passed[i] = verifier.image_pair(x, y)
        return score, passed
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pictures = verifier.pictures
    starts = range(0, len(a), PAIR_CHUNK)
    context = multiprocessing.get_context("spawn")  # the caller may hold torch or other threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(pictures.manifest, verifier.kinds, verifier.config, pictures.max_side)) as pool:
        chunks = [(a[s:s + PAIR_CHUNK].tolist(), b[s:s + PAIR_CHUNK].tolist()) for s in starts]
        with pictures.bar(total=len(a), desc="verifying image pairs", unit=" pairs") as progress:
            for s, (got_score, got_passed, decodes) in zip(starts, pool.map(_verify_chunk, chunks)):
                score[s:s + len(got_score)], passed[s:s + len(got_score)] = got_score, got_passed
                pictures.decodes += decodes
                progress.update(len(got_score))
    return score, passed


def _start_worker(manifest: pa.Table, kinds: list, config, max_side: int) -> None:
    global _worker_verifier
    from curate.runner import progress_bar

    pictures = Pictures(manifest, lambda **kwargs: progress_bar(False, **kwargs), max_side=max_side,
                        views=WORKER_VIEWS)
    _worker_verifier = Verifier(kinds, [None] * len(kinds), pictures, config, edit=False)


def _verify_chunk(pairs: tuple[list[int], list[int]]) -> tuple[list[float], list[bool], int]:
    """A chunk's scores and verdicts, and how many images the worker decoded for it."""
    before = _worker_verifier.pictures.decodes
    out = [_worker_verifier.image_pair(x, y) for x, y in zip(*pairs)]
    return [s for s, _ in out], [p for _, p in out], _worker_verifier.pictures.decodes - before


def locality_order(a: np.ndarray, b: np.ndarray, which: np.ndarray) -> np.ndarray:
    """``which`` (indices of pairs ``a[i], b[i]``) in an order that keeps each item's pairs close.

    Items are numbered along the candidate graph (reverse Cuthill-McKee: neighbours get near numbers)
    and a pair comes when its later-numbered item does; so the other item was seen a short while ago
    and its cached view is still there, where row order makes an image's later pairs scattered
    cache misses (each one decoded again). The verdicts do not depend on the order."""
    if len(which) < 2:
        return which
    rows, inverse = np.unique(np.concatenate([a[which], b[which]]), return_inverse=True)
    x, y = inverse[: len(which)], inverse[len(which):]
    graph = coo_matrix((np.ones(len(which), dtype=np.int8), (x, y)), shape=(len(rows), len(rows))).tocsr()
    position = np.empty(len(rows), dtype=np.int64)
    position[reverse_cuthill_mckee(graph, symmetric_mode=False)] = np.arange(len(rows))
    px, py = position[x], position[y]
    return which[np.lexsort((np.minimum(px, py), np.maximum(px, py)))]
