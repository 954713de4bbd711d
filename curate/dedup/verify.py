"""Every candidate pair of ``fuzzy``/``near`` verified by the precise measure of its kind.

- texts: character n-gram Jaccard >= ``jaccard``; with ``edit`` (``near``) also a normalised edit
  similarity >= ``edit_similarity`` (typos break many n-grams but few characters), and then a pair
  that only swaps a word or two for other real words is rejected (:mod:`curate.dedup.text_verify`).
  Short texts (under ``EDIT_MIN_CHARS`` normalised characters) are not matched by edit similarity and
  need a Jaccard of ``SHORT_JACCARD`` at least: there one changed word ("Return the number of items
  in the queue." / "... in the stack.") is within any edit bar and at Jaccard 0.7.
- images: perceptual similarity after flip / crop / rotation alignment and tone mapping >= the pair's
  bar, ``image_similarity`` raised for images whose every copy scores high
  (:mod:`curate.dedup.image_verify`). Pairs far below the lowest bar are screened out before any
  copy floor is measured. Images are decoded as a person sees them (:mod:`curate.io.images`); a pair
  with a featureless image (a solid colour, a 1 x 1 image) passes only when both are near-uniform and
  their mean colours match (:mod:`curate.dedup.featureless`); an undecodable image never passes.
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
from curate.dedup.featureless import featureless_pair
from curate.dedup.image_verify import SCREEN_MARGIN, coarse_similarity, copy_similarity, pair_bar
from curate.dedup.minhash import jaccard_pairs, normalise
from curate.dedup.pictures import Pictures
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

    def __init__(self, kinds: list, text_values: list, pictures: Pictures, config, edit: bool) -> None:
        self.kinds, self.pictures, self.config, self.edit = kinds, pictures, config, edit
        self.texts = [t or "" for t in text_values]
        self._swap_check: SwapCheck | None = None

    def text_pairs(self, a: np.ndarray, b: np.ndarray, loose: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Jaccard of every pair, or (``edit``) normalised edit similarity where Jaccard misses it."""
        jaccard, edit = self.config.jaccard, self.config.edit_similarity
        if loose:
            jaccard, edit = 2 * jaccard - 1, 2 * edit - 1
        score = jaccard_pairs(self.texts, np.stack([a, b], axis=1), self.config.ngram).astype(np.float32)
        short = np.array([min(len(normalise(self.texts[x])), len(normalise(self.texts[y]))) < EDIT_MIN_CHARS
                          for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
        short_bar = max(jaccard, 2 * SHORT_JACCARD - 1 if loose else SHORT_JACCARD)
        passed = score >= np.where(short, short_bar, jaccard) - 1e-6  # float32 scores: no false miss at the bar
        if self.edit:
            for i in np.flatnonzero(~passed & ~short).tolist():
                x, y = normalise(self.texts[a[i]]), normalise(self.texts[b[i]])
                sim = Levenshtein.normalized_similarity(x, y, score_cutoff=edit)
                if sim >= edit:
                    score[i], passed[i] = sim, True
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
        if coarse < lowest:
            return coarse, False
        bar = relax(pair_bar(self.pictures.floor(a), self.pictures.floor(b), self.config.image_similarity))
        sim = copy_similarity(va, vb, bar)
        return sim, sim >= bar

    def score(self, a: int, b: int, loose: bool = False) -> tuple[float, bool]:
        kind = self.kinds[a]
        if kind != self.kinds[b] or kind not in ("text", "image"):
            return 0.0, False
        if kind == "image":
            return self.image_pair(a, b, loose)
        sc, ok = self.text_pairs(np.array([a]), np.array([b]), loose)
        return float(sc[0]), bool(ok[0])


def verify(found: dict[tuple[int, int], set[str]], verifier: Verifier) -> Pairs:
    """Keep the candidate pairs whose precise measure clears the bar (exact bytes always do)."""
    kinds = verifier.kinds
    keys = sorted(found)
    a = np.array([k[0] for k in keys], dtype=np.int64)
    b = np.array([k[1] for k in keys], dtype=np.int64)
    score = np.zeros(len(keys), dtype=np.float32)
    passed = np.zeros(len(keys), dtype=bool)
    exact = np.array(["exact" in found[k] for k in keys], dtype=bool)
    score[exact], passed[exact] = 1.0, True
    same_kind = np.array([kinds[x] == kinds[y] for x, y in keys], dtype=bool)
    text = ~exact & same_kind & np.array([kinds[x] == "text" for x, _ in keys], dtype=bool)
    if text.any():
        score[text], passed[text] = verifier.text_pairs(a[text], b[text])
    image = ~exact & same_kind & np.array([kinds[x] == "image" for x, _ in keys], dtype=bool)
    for i in locality_order(a, b, np.flatnonzero(image)).tolist():
        score[i], passed[i] = verifier.image_pair(int(a[i]), int(b[i]))
    keep = np.flatnonzero(passed)
    return Pairs(a[keep], b[keep], score[keep], [",".join(s for s in SIGNALS if s in found[keys[i]]) for i in keep])


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
