"""Which of two duplicate texts is the original: pairwise votes for :mod:`curate.dedup.compare`.

The texts are split into words (lower case; markup tags, entities, punctuation and symbols are
separators) and aligned word by word (Levenshtein opcodes). For a pair ``(x, y)`` the vote adds:

- **spelling** (weight 2): over the substituted words, the text whose word is the commoner one in the
  corpus (more texts hold it) wins each substitution. A typo or an OCR confusion (``rn`` for ``m``,
  ``1`` for ``l``) makes a word that few texts hold; the original's word is shared by its copies and
  the rest of the corpus;
- **content**: the text holding words the other lacks wins (a truncated copy, a copy with dropped or
  merged words, is derived from the text that still holds them): weight 2 when a third compared text
  holds those words too (the group agrees they belong), else 1 (in a pair, the more complete text wins,
  and a copy with words appended that no other member holds beats its original only by this);
- **markup** (weight 1): the text with fewer tags and entities wins;
- **consensus** (weight 2, groups of three or more): the text with fewer substituted words in total
  against the compared members, as a share of the aligned words, by at least 2 points per member (the
  medoid: independently damaged copies each differ from the original by their own damage, and from
  each other by both). Inserted and deleted words do not count here: of several truncations of one
  text the middle one would be the medoid, and a truncated copy is not closer to the others for the
  damaged words it lost.

A text equal to the other in words (an all-caps copy, a copy without punctuation) gets no vote: the
cheap key order decides (fewer capitals, longer). Document frequencies are counted over the corpus
(a seeded sample of :data:`~curate.dedup.quality.VOCABULARY_TEXTS` texts above it) for the words of
the compared texts only.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Levenshtein

from curate.dedup import quality

MARKUP = r"<[^<>]{1,200}>|&#?[A-Za-z0-9]{1,10};"  # an HTML/XML tag or entity
NOT_WORDS = MARKUP + r"|[\p{P}\p{S}]+"  # markup, punctuation and symbols: word separators, like whitespace
MEDOID_MARGIN = 0.02  # substituted share per other member two texts' totals must differ by to count
MAX_WORDS = 5000  # words of a text that are aligned (the rest only counts in the cheap key order)
SPELLING, SUPPORTED, UNSUPPORTED, MARKUP_WEIGHT, CONSENSUS = 2.0, 2.0, 1.0, 1.0, 2.0


def words(texts: pa.Array | pa.ChunkedArray) -> pa.ListArray:
    """Per text, its words: markup removed, lower case, split at whitespace, punctuation and symbols
    (empty strings dropped; null for a null text)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    plain = pc.utf8_lower(pc.replace_substring_regex(texts, NOT_WORDS, " "))
    split = pc.utf8_split_whitespace(plain)  # several times faster than splitting at a pattern
    flat = pc.list_flatten(split)
    keep = pc.greater(pc.utf8_length(flat), 0)
    parent = pc.list_parent_indices(split)
    offsets = np.r_[0, np.cumsum(np.bincount(np.asarray(parent.filter(keep)), minlength=len(texts)))]
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat.filter(keep),
                                    mask=pc.is_null(texts))


def document_frequency(corpus: pa.Array | pa.ChunkedArray, vocabulary: list[str], seed: int = 0) -> np.ndarray:
    """How many texts of ``corpus`` (a seeded sample of ``VOCABULARY_TEXTS`` above it) hold each word of
    ``vocabulary`` (in :func:`words`' sense); split in chunks, so memory stays bounded."""
    if isinstance(corpus, pa.ChunkedArray):
        corpus = corpus.combine_chunks()
    value_set = pa.array(vocabulary, pa.string())
    counts = np.zeros(len(vocabulary), dtype=np.int64)
    n = len(corpus)
    if n > quality.VOCABULARY_TEXTS:
        sample = np.sort(np.random.default_rng(seed).choice(n, quality.VOCABULARY_TEXTS, replace=False))
        corpus = corpus.take(pa.array(sample))
    for lo in range(0, len(corpus), quality.CHUNK_TEXTS):
        part = corpus.slice(lo, quality.CHUNK_TEXTS)  # as in words(); the empty strings match no word
        split = pc.utf8_split_whitespace(pc.utf8_lower(pc.replace_substring_regex(part, NOT_WORDS, " ")))
        code = pc.index_in(pc.list_flatten(split), value_set=value_set)
        parent = np.asarray(pc.list_parent_indices(split), dtype=np.int64)
        found = np.asarray(code.is_valid(), dtype=bool)
        pairs = np.sort(parent[found] * len(vocabulary) + np.asarray(code.drop_null(), dtype=np.int64))
        first = np.r_[True, pairs[1:] != pairs[:-1]] if len(pairs) else np.zeros(0, dtype=bool)
        counts += np.bincount(pairs[first] % len(vocabulary), minlength=len(vocabulary))  # (text, word) once
    return counts


class TextCopies:
    """Votes between the texts of ``rows`` (manifest rows): their words, markup counts and the document
    frequency of their words over every text of the manifest."""

    def __init__(self, manifest: pa.Table, rows: np.ndarray, seed: int = 0) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        column = manifest.column("text")
        texts = column.take(pa.array(rows))
        split = words(texts)
        self.words = {r: w[:MAX_WORDS] if w is not None else None for r, w in zip(rows.tolist(), split.to_pylist())}
        marks = pc.count_substring_regex(texts, MARKUP).fill_null(0)
        self.markup = dict(zip(rows.tolist(), np.asarray(marks, dtype=np.int64).tolist()))
        vocabulary = sorted(pc.unique(pc.list_flatten(split)).to_pylist())
        kinds = manifest.column("kind")
        corpus = column.filter(pc.fill_null(pc.equal(kinds, "text"), False))
        frequency = document_frequency(corpus, vocabulary, seed) if vocabulary else np.zeros(0)
        self.frequency = dict(zip(vocabulary, frequency.tolist()))

    def votes(self, rows: np.ndarray) -> np.ndarray:
        """Antisymmetric (k, k) votes between ``rows`` (``[i, j] > 0``: row i is the original of row j)."""
        k = len(rows)
        out = np.zeros((k, k))
        substituted = np.zeros((k, k))
        holders: dict[str, int] = {}  # compared texts holding each word (none is a third one in a pair)
        for r in rows.tolist() if k >= 3 else ():
            for w in set(self.words[r] or ()):
                holders[w] = holders.get(w, 0) + 1
        for i in range(k):
            for j in range(i + 1, k):
                vote, d = self.pair(int(rows[i]), int(rows[j]), holders)
                out[i, j], out[j, i] = vote, -vote
                substituted[i, j] = substituted[j, i] = d
        if k >= 3:
            total = substituted.sum(axis=1)
            gap = total[None, :] - total[:, None]  # > 0: the row has fewer substitutions than the column
            out += CONSENSUS * np.sign(gap) * (np.abs(gap) >= MEDOID_MARGIN * (k - 1))
        readable = np.array([self.words[r] is not None for r in rows.tolist()])
        if not readable.all():
            out[readable[:, None] & ~readable[None, :]] = 100.0  # an unreadable text loses to every readable one
            out[~readable[:, None] & readable[None, :]] = -100.0
        return out

    def pair(self, x: int, y: int, holders: dict[str, int] | None = None) -> tuple[float, float]:
        """``(vote, substituted)`` for rows x and y: the vote is > 0 when x is the original of y;
        ``substituted`` is the share of aligned words (equal or substituted, not inserted or deleted)
        that differ: a truncated copy is not closer to the others for the words it lost.
        ``holders``: word -> compared texts holding it; a word only one of x and y holds is *supported*
        when a third compared text holds it too."""
        wx, wy = self.words[x], self.words[y]
        if wx is None or wy is None:
            return 0.0, 1.0
        holders = holders or {}
        sx, sy = set(wx), set(wy)
        content = np.zeros(2)  # (supported, unsupported) words x holds and y lacks, less the converse
        edits = spelling = aligned = 0
        for op in Levenshtein.opcodes(wx, wy):
            if op.tag == "replace":
                for a, b in zip(wx[op.src_start:op.src_end], wy[op.dest_start:op.dest_end]):
                    spelling += int(np.sign(self.frequency.get(a, 0) - self.frequency.get(b, 0)))
                edits += op.src_end - op.src_start
                aligned += op.src_end - op.src_start
            elif op.tag == "equal":
                aligned += op.src_end - op.src_start
            elif op.tag in ("delete", "insert"):
                sign, extra = (1, wx[op.src_start:op.src_end]) if op.tag == "delete" else \
                    (-1, wy[op.dest_start:op.dest_end])
                for w in extra:
                    supported = holders.get(w, 0) - (w in sx) - (w in sy) >= 1
                    content[0 if supported else 1] += sign
        vote = SPELLING * np.sign(spelling) + SUPPORTED * np.sign(content[0]) + UNSUPPORTED * np.sign(content[1])
        vote += MARKUP_WEIGHT * np.sign(self.markup[y] - self.markup[x])
        return float(vote), edits / max(aligned, 1)
