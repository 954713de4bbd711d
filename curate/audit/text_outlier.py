"""The text ``outlier`` check without embeddings: how unlike the dataset's own characters a text is.

A sentence embedding (MiniLM) is trained on natural language: base64 blobs, tables of numbers,
random-letter tokens or a paragraph in another script all land in one vague region near ordinary
technical text, and their distance to their neighbours is unremarkable there (measured: 0-20% of such
planted texts flagged on three of four origins). Their *characters* are unlike anything else in the
dataset. So the dataset itself is the model: a character 4-gram model (hashed into ``buckets`` counts,
add-``alpha`` smoothed) is counted over every text (after the dedup normalisation: casefolded,
whitespace collapsed), and each text scores the mean negative log-probability of its 4-grams under it
(a perplexity, as CCNet filters with, trained here on the data rather than on Wikipedia). Junk is a
small share of the dataset, so it barely moves the model it is judged by, even when several junk texts
look alike (a kNN distance fails exactly there: their neighbours are each other).

The score is a robust z of that perplexity on the dataset's own scale, ``z = (x - median) / spread``
with ``spread = (q75 - q50) / 0.6745`` (a quarter of the texts may be junk before the scale moves),
mapped to ``clip(z / 6, 0, 1)`` like :func:`curate.audit.outlier.outlier_scores`: the default threshold
0.5 is z = 3. Two passes over the texts in blocks: memory is the count table plus one block.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from curate.audit.outlier import Z_FULL
from curate.dedup.minhash import batch_shingles

NGRAM = 4  # character n-grams of the model
BUCKETS = 1 << 20  # hashed n-gram counts (8 MB)
ALPHA = 0.5  # add-alpha smoothing: an n-gram never seen elsewhere is not impossible
_Q75 = 0.6744898  # the 75th percentile of a standard normal


def perplexities(texts: Sequence[str | None], ngram: int = NGRAM, buckets: int = BUCKETS, alpha: float = ALPHA,
                 block: int = 4096) -> np.ndarray:
    """Mean negative log-probability of each text's character n-grams under the model of all ``texts``
    (float64; NaN for a text with no characters)."""
    counts = np.zeros(buckets, dtype=np.float64)
    for part in _blocks(texts, block):
        hashes, _ = batch_shingles(part, ngram)
        counts += np.bincount((hashes % np.uint64(buckets)).astype(np.int64), minlength=buckets)
    log_p = np.log((counts + alpha) / (counts.sum() + alpha * buckets))
    out = np.full(len(texts), np.nan, dtype=np.float64)
    for lo, part in zip(range(0, len(texts), block), _blocks(texts, block)):
        hashes, offsets = batch_shingles(part, ngram)
        per_text = np.diff(offsets)
        doc = np.repeat(np.arange(len(part), dtype=np.int64), per_text)
        total = np.bincount(doc, weights=log_p[(hashes % np.uint64(buckets)).astype(np.int64)], minlength=len(part))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:lo + len(part)] = np.where(per_text > 0, -total / np.maximum(per_text, 1), np.nan)
    return out


def text_outlier_scores(texts: Sequence[str | None]) -> np.ndarray:
    """Outlier score in [0, 1] per text (NaN: no characters to judge, or fewer than 3 texts judged)."""
    x = perplexities(texts)
    out = np.full(len(x), np.nan, dtype=np.float32)
    ok = np.isfinite(x)
    if ok.sum() < 3:
        return out
    q50, q75 = np.quantile(x[ok], [0.5, 0.75])
    spread = max((q75 - q50) / _Q75, 1e-6)
    out[ok] = np.clip((x[ok] - q50) / spread / Z_FULL, 0.0, 1.0)
    return out


def _blocks(texts: Sequence[str | None], block: int):
    for lo in range(0, len(texts), block):
        yield [t or "" for t in texts[lo:lo + block]]
