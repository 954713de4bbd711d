"""The ``quality`` keep policy's key order: in each duplicate group the best copy survives.

The keys rank every item on its own, cheaply (``semantic`` and ``knn`` keep by them). ``near`` and
``fuzzy`` go further: :mod:`curate.dedup.compare` reorders the members of each group by comparing
them with each other (a longer OCR copy or a letterboxed image ranks high here, not there).

Per kind, best first (smaller key = better; ties fall to the next key, then manifest order):

- images: most pixels (``width * height``), then least compressed (``bytes`` per pixel, higher
  is better), then sharpest (:func:`sharpness`, when the caller supplies it; unknown last);
- texts: the most complete: longest normalised text (characters after collapsing every run of
  whitespace to one space and trimming), then the best spelled: fewer words (case-folded) that
  no other text of the ranked rows contains (a typo makes a word nobody else writes; the
  original's words are shared with its copy and the rest of the corpus), then more distinct
  words (case-folded), then fewer capital letters per character (an all-caps copy loses to
  its original), then manifest order;
- other kinds: manifest order.

Unknown values (null width, height, bytes or text; NaN sharpness) rank after known ones.
Sharpness needs pixels, so it is never read here: :func:`image_sharpness` computes it for the
rows a caller names (e.g. the members of duplicate groups only) through a payload fetcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from PIL import Image

THUMBNAIL = 128  # sharpness is measured on a grey thumbnail this size (longest side)


def sharpness(image: Image.Image, size: int = THUMBNAIL) -> float:
    """Variance of the 4-neighbour Laplacian of a grey thumbnail (longest side ``size``, grey levels
    0..255): larger is sharper. NaN for an image under 3 px on a side (nothing to measure)."""
    grey = image.convert("L")  # a new image: the caller's is left as it was
    grey.thumbnail((size, size))
    a = np.asarray(grey, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 3:
        return float("nan")
    lap = a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:] - 4.0 * a[1:-1, 1:-1]
    return float(lap.var())


def image_sharpness(manifest_rows: np.ndarray, manifest: pa.Table,
                    fetch: Callable[[dict], Any] | None = None) -> np.ndarray:
    """:func:`sharpness` of the image rows among ``manifest_rows``, as an array over the whole
    manifest (index = manifest row; NaN elsewhere, for non-image rows and for payloads that cannot
    be fetched or decoded), ready for ``priority_ranks(..., sharpness=...)``.

    ``fetch``: manifest row dict -> payload bytes (default ``PayloadFetcher().fetch``). Each row is
    fetched and decoded once, so call it for the few rows that need it (duplicate group members).
    """
    from curate.io.images import open_image

    if fetch is None:
        from curate.embed.payloads import PayloadFetcher

        fetch = PayloadFetcher().fetch
    out = np.full(manifest.num_rows, np.nan, dtype=np.float64)
    rows = np.unique(np.asarray(manifest_rows, dtype=np.int64))
    if len(rows) == 0:
        return out
    kinds = manifest.column("kind").take(pa.array(rows)).to_pylist()
    images = rows[np.array([k == "image" for k in kinds], dtype=bool)]
    if len(images) == 0:
        return out
    for m, row in zip(images.tolist(), manifest.take(pa.array(images)).to_pylist()):
        try:
            data = fetch(row)
            if not isinstance(data, bytes | bytearray | memoryview):
                continue
            out[m] = sharpness(open_image(data, min_side=2 * THUMBNAIL, mode="L"))  # JPEG: at a reduced scale
        except Exception:  # an unreadable payload has an unknown sharpness; the dedup goes on
            continue
    return out


def quality_keys(manifest_rows: np.ndarray, manifest: pa.Table,
                 sharpness: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(kind codes, [key1, key2, key3, key4])`` per entry of ``manifest_rows``: within one kind
    code, sorting by the keys in turn puts the best copy first; unknowns are +inf."""
    n = len(manifest_rows)
    take = pa.array(np.asarray(manifest_rows, dtype=np.int64))
    kinds = manifest.column("kind").take(take)
    names = sorted(k for k in pc.unique(kinds).to_pylist() if k is not None)
    codes = pc.index_in(kinds, value_set=pa.array(names, kinds.type)).fill_null(-1)
    codes = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)
    k1, k2, k3, k4 = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)

    image = codes == names.index("image") if "image" in names else np.zeros(n, dtype=bool)
    if image.any():
        width = _floats(manifest, "width", take)
        height = _floats(manifest, "height", take)
        size = _floats(manifest, "bytes", take)
        pixels = width * height
        pixels = np.where(pixels > 0, pixels, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_pixel = size / pixels
        sharp = np.full(n, np.nan)
        if sharpness is not None:
            sharp = np.asarray(sharpness, dtype=np.float64)[np.asarray(manifest_rows, dtype=np.int64)]
        k1[image], k2[image], k3[image] = (_worst_last(-v[image]) for v in (pixels, per_pixel, sharp))

    text = codes == names.index("text") if "text" in names else np.zeros(n, dtype=bool)
    if text.any():
        idx = np.flatnonzero(text)
        texts = manifest.column("text").take(pa.array(np.asarray(manifest_rows, dtype=np.int64)[idx]))
        texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        parts = [text_keys(texts.slice(lo, CHUNK_TEXTS)) for lo in range(0, len(texts), CHUNK_TEXTS)]
        length, distinct = (np.concatenate([p[j] for p in parts]) for j in (0, 1))
        unique, capitals = spelling_keys(texts)
        k1[idx], k2[idx], k3[idx], k4[idx] = (_worst_last(v) for v in (-length, unique, -distinct, capitals))
    return codes, [k1, k2, k3, k4]


def text_keys(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``(length, distinct)`` per text: characters of the whitespace-normalised text
    (``len(" ".join(t.split()))``) and distinct case-folded words (``len(set(t.casefold().split()))``);
    NaN for nulls. ASCII texts are measured with Arrow kernels (no Python object per row: 1M texts
    took 15 s one by one); others one by one, so Unicode case folding and whitespace stay exact."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    length, distinct = np.full(n, np.nan), np.full(n, np.nan)
    present = np.asarray(texts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    ascii_ = np.asarray(pc.string_is_ascii(texts).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    fast = np.flatnonzero(present & ascii_)
    if len(fast):
        words = pc.utf8_split_whitespace(texts.take(pa.array(fast)))  # same split as str.split() on ASCII
        flat, parent = pc.list_flatten(words), np.asarray(pc.list_parent_indices(words), dtype=np.int64)
        chars = np.asarray(pc.utf8_length(flat), dtype=np.int64)
        word = chars > 0  # Arrow keeps empty strings around leading / trailing whitespace
        parent, chars = parent[word], chars[word]
        count = np.bincount(parent, minlength=len(fast))
        length[fast] = np.bincount(parent, weights=chars, minlength=len(fast)) + np.maximum(count - 1, 0)
        codes = pc.ascii_lower(flat.filter(pa.array(word))).dictionary_encode().indices
        codes = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)
        span = int(codes.max(initial=0)) + 1
        pairs = np.sort(parent * span + codes)  # (text, word) pairs; a plain sort beats np.unique's hashing
        first = np.r_[True, pairs[1:] != pairs[:-1]] if len(pairs) else np.zeros(0, dtype=bool)
        distinct[fast] = np.bincount(pairs[first] // span, minlength=len(fast))
    slow = np.flatnonzero(present & ~ascii_)
    for j, t in zip(slow, texts.take(pa.array(slow)).to_pylist()):
        split = t.split()
        length[j] = sum(map(len, split)) + max(len(split) - 1, 0)
        distinct[j] = len(set(t.casefold().split()))
    return length, distinct


VOCABULARY_TEXTS = 500_000  # word counts come from at most this many texts (a seeded sample above it)
CHUNK_TEXTS = 262_144  # texts split into words at a time (bounded memory at ten million texts)


def spelling_keys(texts: pa.Array | pa.ChunkedArray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(unique, capitals)`` per text: how many of its distinct case-folded words no other text
    contains, and its capital letters per character; NaN for nulls.

    Up to :data:`VOCABULARY_TEXTS` texts the count is exact over all of them. Above it, "no other
    text" means none of a seeded sample of that many texts (the texts are split in chunks, so
    memory stays bounded): a misspelt word is still one the sample lacks."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n = len(texts)
    unique, capitals = np.full(n, np.nan), np.full(n, np.nan)
    if n <= VOCABULARY_TEXTS:
        sample = np.arange(n)
    else:
        sample = np.sort(np.random.default_rng(seed).choice(n, VOCABULARY_TEXTS, replace=False))
    owner, words, caps = _distinct_words(texts.take(pa.array(sample)))
    vocabulary = pc.unique(words)
    code = np.asarray(pc.index_in(words, value_set=vocabulary).to_numpy(zero_copy_only=False), dtype=np.int64)
    texts_with = np.bincount(code, minlength=len(vocabulary))  # sample texts holding each word
    if len(sample) == n:  # every text is in the sample: count from the pass just made
        alone = texts_with[code] == 1
        present = np.asarray(texts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return np.where(present, np.bincount(owner[alone], minlength=n), np.nan), caps
    in_sample = np.zeros(n, dtype=bool)
    in_sample[sample] = True
    for lo in range(0, n, CHUNK_TEXTS):
        part = texts.slice(lo, CHUNK_TEXTS)
        owner, words, caps = _distinct_words(part)
        found = pc.index_in(words, value_set=vocabulary).to_numpy(zero_copy_only=False)
        held = np.where(np.isnan(found), 0, texts_with[np.nan_to_num(found).astype(np.int64)])
        alone = held - in_sample[lo + owner] == 0  # no sample text but this one holds the word
        present = np.asarray(part.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        unique[lo:lo + len(part)] = np.where(present, np.bincount(owner[alone], minlength=len(part)), np.nan)
        capitals[lo:lo + len(part)] = caps
    return unique, capitals


def _distinct_words(texts: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """``(owner, word, capitals)``: each text's distinct case-folded words once, with the text's
    position, and each text's capital letters per character (NaN for nulls). Arrow kernels for
    ASCII texts; others one by one (Unicode case folding stays exact)."""
    n = len(texts)
    capitals = np.full(n, np.nan)
    present = np.asarray(texts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    ascii_ = np.asarray(pc.string_is_ascii(texts).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
    owners, words = [np.zeros(0, dtype=np.int64)], [pa.array([], pa.string())]
    fast = np.flatnonzero(present & ascii_)
    if len(fast):
        part = texts.take(pa.array(fast))
        split = pc.utf8_split_whitespace(pc.ascii_lower(part))
        flat, parent = pc.list_flatten(split), np.asarray(pc.list_parent_indices(split), dtype=np.int64)
        keep = np.asarray(pc.greater(pc.utf8_length(flat), 0), dtype=bool)
        owners.append(fast[parent[keep]])
        words.append(flat.filter(pa.array(keep)).cast(pa.string()))
        upper = np.asarray(pc.count_substring_regex(part, "[A-Z]"), dtype=np.float64)
        capitals[fast] = upper / np.maximum(np.asarray(pc.utf8_length(part), dtype=np.float64), 1.0)
    slow = np.flatnonzero(present & ~ascii_)
    for j, t in zip(slow.tolist(), texts.take(pa.array(slow)).to_pylist()):
        ws = sorted(set(t.casefold().split()))
        owners.append(np.full(len(ws), j, dtype=np.int64))
        words.append(pa.array(ws, pa.string()))
        capitals[j] = sum(c.isupper() for c in t) / max(len(t), 1)
    owner = np.concatenate(owners)
    word = pa.chunked_array(words, pa.string()).combine_chunks()
    code = np.asarray(word.dictionary_encode().indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    span = int(code.max(initial=0)) + 1
    pairs = owner * span + code
    order = np.argsort(pairs, kind="stable")  # a sort and a diff: several times faster than np.unique here
    ranked = pairs[order]
    first = np.sort(order[np.r_[True, ranked[1:] != ranked[:-1]]] if len(order) else order)  # (text, word) once
    return owner[first], word.take(pa.array(first)), capitals


def quality_order(manifest_rows: np.ndarray, manifest: pa.Table, sharpness: np.ndarray | None = None) -> np.ndarray:
    """Positions into ``manifest_rows``, best first. Within a kind: the keys above, then manifest
    order. Across kinds (rare in one group) items compare by their place within their own kind
    (position / count: the best of each kind tie), then by manifest order."""
    rows = np.asarray(manifest_rows, dtype=np.int64)
    codes, keys = quality_keys(rows, manifest, sharpness)
    within = np.lexsort((rows, *keys[::-1], codes))  # grouped by kind, best first in each
    place = np.empty(len(rows), dtype=np.float64)
    sorted_codes = codes[within]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if len(rows) else np.array([], int)
    ends = np.r_[starts[1:], len(rows)]
    for s, e in zip(starts, ends):
        place[within[s:e]] = np.arange(e - s) / (e - s)
    return np.lexsort((rows, place))


def _floats(manifest: pa.Table, column: str, take: pa.Array) -> np.ndarray:
    values = manifest.column(column).take(take)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls -> NaN


def _worst_last(key: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(key), np.inf, key)
