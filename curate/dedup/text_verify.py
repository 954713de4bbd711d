"""A text pair that differs by swapping a word or two for other words is not a copy.

n-gram Jaccard and edit similarity measure how much changed, not what. A typo changes a word into
a misspelling of itself that no other text writes ("receive" / "recieve"); a template sentence
differs from its sibling by a word that other texts do write ("Get / Set the current event loop
policy."), or by a different name altogether ("... as :func:`torch.unsqueeze`" / "...
:func:`torch.split`"). So a verified pair whose only difference is a *substitution* of at most
``MAX_SWAPPED`` tokens on each side (tokens: case-folded runs of word characters, and single
punctuation marks) is a different text that looks alike, and is rejected, when every swapped token
is held by at least one other distinct text of the dataset, or when a swapped token has no close
spelling on the other side (normalised edit similarity below ``SPELLING``). A swap of sentence
marks ("." / "!") or of common words (one side held by at least ``COMMON`` of the texts: "the" /
"this", "is" / "was") changes the wording, not the text, and stays a copy. Drops, additions, case,
punctuation removal (one side's difference is empty) and typos (misspellings nobody else writes)
are untouched.

Token counts come from the distinct texts (an exact copy does not make a typo a known word), and
only for the tokens asked about: one vectorised pass over the texts (Arrow kernels; texts with
non-ASCII characters one by one), in chunks, at most ``VOCABULARY_TEXTS`` distinct texts (a
seeded sample above it, like the keep policy's spelling count).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.quality import CHUNK_TEXTS, VOCABULARY_TEXTS

__all__ = ["MAX_SWAPPED", "TOKEN", "SwapCheck", "tokens"]

MAX_SWAPPED = 2  # tokens on each side a substitution may swap and still be a different text
SPELLING = 0.5  # a swapped token this close (normalised edit similarity) to one on the other side may be a typo
COMMON = 0.05  # a token held by this share of the distinct texts (and by 3 at least) is a function word
SENTENCE_MARKS = frozenset(".,;:!?'\"()")  # marks whose swap is wording, not content ("+" / "-" are content)
TOKEN = re.compile(r"\w+|[^\w\s]")
_SPACED_PUNCTUATION = r"([^\w\s])"  # Arrow (RE2) pattern: a mark becomes a token of its own


def tokens(text: str) -> set[str]:
    """The distinct case-folded tokens of a text: word-character runs and punctuation marks."""
    return set(TOKEN.findall(text.casefold()))


def _respelt(one: set[str], other: set[str]) -> bool:
    """Every token of each side has a close spelling on the other side (what typos leave)."""
    from rapidfuzz.distance import Levenshtein

    def close(side: set[str], to: set[str]) -> bool:
        return all(any(Levenshtein.normalized_similarity(t, u) >= SPELLING for u in to) for t in side)

    return close(one, other) and close(other, one)


class SwapCheck:
    """Rejects pairs of texts that differ by a swap of known tokens (see the module docstring)."""

    def __init__(self, texts: list[str], seed: int = 0) -> None:
        distinct = pc.unique(pa.array(texts, pa.string()).drop_null())
        if len(distinct) > VOCABULARY_TEXTS:
            pick = np.sort(np.random.default_rng(seed).choice(len(distinct), VOCABULARY_TEXTS, replace=False))
            distinct = distinct.take(pa.array(pick))
        self.texts, self.distinct = texts, distinct
        self.holders: dict[str, int] = {}  # token -> distinct texts holding it

    def swapped(self, a: int, b: int) -> tuple[set[str], set[str]] | None:
        """The two sides of a substitution between texts ``a`` and ``b``, or None when the pair differs
        otherwise (one side empty: a drop or an addition; more than ``MAX_SWAPPED`` tokens a side)."""
        ta, tb = tokens(self.texts[a] or ""), tokens(self.texts[b] or "")
        da, db = ta - tb, tb - ta
        if 1 <= len(da) <= MAX_SWAPPED and 1 <= len(db) <= MAX_SWAPPED:
            return da, db
        return None

    def rejects(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """For each pair: True when it is a swap of tokens every one of which other texts hold."""
        swaps = [self.swapped(a, b) for a, b in pairs]
        asked = set().union(*(da | db for s in swaps if s for da, db in [s])) - self.holders.keys()
        if asked:
            self.holders.update(self._count(asked))
        return np.array([s is not None and not self._wording(*s)
                         and (all(self.holders[t] >= 2 for t in s[0] | s[1]) or not _respelt(*s))
                         for s in swaps], dtype=bool)

    def _wording(self, one: set[str], other: set[str]) -> bool:
        """A swap of sentence marks, or of a side made of common words only: wording, not content."""
        common = max(3.0, COMMON * len(self.distinct))
        return (one | other) <= SENTENCE_MARKS or any(all(self.holders[t] >= common for t in side)
                                                      for side in (one, other))

    def _count(self, asked: set[str]) -> dict[str, int]:
        """How many distinct texts hold each asked token, in chunks of ``CHUNK_TEXTS`` texts."""
        counts = dict.fromkeys(asked, 0)
        value_set = pa.array(sorted(asked), pa.string())
        for lo in range(0, len(self.distinct), CHUNK_TEXTS):
            part = self.distinct.slice(lo, CHUNK_TEXTS)
            ascii_ = np.asarray(pc.string_is_ascii(part).to_numpy(zero_copy_only=False), dtype=bool)
            fast = part.filter(pa.array(ascii_))
            if len(fast):
                spaced = pc.replace_substring_regex(pc.ascii_lower(fast), _SPACED_PUNCTUATION, r" \1 ")
                split = pc.utf8_split_whitespace(spaced)
                flat = pc.list_flatten(split)
                parent = np.asarray(pc.list_parent_indices(split), dtype=np.int64)
                hit = np.asarray(pc.is_in(flat, value_set=value_set).to_numpy(zero_copy_only=False), dtype=bool)
                code = np.asarray(pc.index_in(flat.filter(pa.array(hit)), value_set=value_set), dtype=np.int64)
                once = np.unique(parent[hit] * len(value_set) + code)  # (text, token) once
                for k, c in enumerate(np.bincount(once % len(value_set), minlength=len(value_set)).tolist()):
                    counts[value_set[k].as_py()] += c
            for text in part.filter(pa.array(~ascii_)).to_pylist():
                for t in tokens(text) & asked:
                    counts[t] += 1
        return counts
