"""What a text says, not how it is marked up: the form texts are shingled and verified in.

A copy of a text scraped as HTML, rendered from Markdown, or retyped with curly quotes is the
same text. :func:`normalise_many` applies, in this order:

1. Unicode NFKC (full-width letters, ligatures, non-breaking spaces), curly quotes and primes to
   ``'``/``"``, dashes and minus signs to ``-``, soft hyphens and zero-width marks dropped;
2. HTML/XML: comments and ``<script>``/``<style>`` elements with their contents removed, inline
   tags (``<b>``, ``<a href=..>``, ``<span>``) removed, every other tag (``<p>``, ``<br/>``,
   ``<div>``, ``<!DOCTYPE>``) a space;
3. Markdown: code fence lines, rule lines, heading / blockquote / bullet marks at a line's start,
   link and image syntax (``[text](url)`` and ``[text][ref]`` -> ``text``), ``*`` and ``~~``
   marks, ``_`` runs except inside a word (``snake_case`` stays), backticks;
4. entities (``html.unescape``, after the tags, so an escaped ``&lt;b&gt;`` stays text), and
   step 1 again for texts that this made non-ASCII;
5. case (``casefold``) and whitespace (every run one space, ends stripped).

Speed: steps 1-3 are Arrow (RE2) kernels over the texts that need them (non-ASCII texts; texts with a
markup character); step 4 is a Python call per text with an ``&``; step 5 is ``str.casefold`` and
``str.split`` (an Arrow regex over every space was slower). Lone
surrogates (which Arrow cannot hold) pass through as private-use characters and come back.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["normalise", "normalise_many"]

_QUOTES = (("[\u2018\u2019\u201a\u201b\u2032\u2035\u00b4\u02bc]", "'"),
           ("[\u201c\u201d\u201e\u201f\u2033\u2036\u00ab\u00bb]", '"'),
           ("[\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d]", "-"),
           ("[\u00ad\u200b\u200c\u200d\u2060\ufeff]", ""))
_PUNCTUATION = str.maketrans({ch: to or None for pattern, to in _QUOTES for ch in pattern[1:-1]})

_INLINE = ("a|abbr|b|bdi|bdo|cite|code|data|del|dfn|em|font|i|ins|kbd|mark|q|s|samp|small|span|strike|strong|sub|"
           "sup|time|tt|u|var|wbr")
_HTML = ((r"(?s)<!--.*?(?:-->|$)", " "),
         (r"(?is)<script\b[^>]*>.*?(?:</script\s*>|$)", " "),
         (r"(?is)<style\b[^>]*>.*?(?:</style\s*>|$)", " "),
         (rf"(?i)</?(?:{_INLINE})\b[^<>]*>", ""),
         (r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>|<![^<>]*>|<\?[^<>]*\?>", " "))
_MARKDOWN = ((r"(?m)^[ \t]*(?:```|~~~)[^\n]*$", ""),  # code fence lines
             (r"(?m)^[ \t]*(?:[-=*_][ \t]*){3,}$", ""),  # rules and setext underlines
             (r"(?m)^[ \t]*(?:#{1,6}[ \t]+|(?:>[ \t]?)+|[-*+][ \t]+)", ""),  # heading, quote, bullet marks
             (r"!?\[([^\]\n]*)\](?:\([^)\n]*\)|\[[^\]\n]*\])", r"\1"),  # [text](url), ![alt](src), [text][ref]
             (r"\*+|~~+|`+", ""),
             (r"(^|[^[:alnum:]])_+", r"\1"),  # _ runs that open or close, not those inside a word
             (r"_+([^[:alnum:]]|$)", r"\1"))
_MARKS = r"[<*_#\[`~]|(?m)^[ \t]*[-=+>]"  # a text without these has no tag or Markdown mark to strip

_SURROGATES = 0xD800
_PRIVATE = 0xF0000  # lone surrogate U+D800+k travels as U+F0000+k
_HIDE = {cp: _PRIVATE + cp - _SURROGATES for cp in range(0xD800, 0xE000)}
_SHOW = {v: k for k, v in _HIDE.items()}


def normalise(text: str) -> str:
    """One text's normalised form (see the module docstring); ``normalise_many`` for many."""
    return normalise_many([text])[0]


def normalise_many(texts: Sequence[str]) -> list[str]:
    """The normalised form of every text, in order: markup, Unicode forms, case and whitespace."""
    arr, hidden = _arrow_safe(texts)
    if not len(arr):
        return []
    non_ascii = _mask(pc.invert(pc.string_is_ascii(arr)))
    if non_ascii.any():
        arr = _apply(arr, non_ascii, _unicode_forms)
    marked = _mask(pc.match_substring_regex(arr, _MARKS))
    if marked.any():
        arr = _apply(arr, marked, _strip_markup)
    out = arr.to_pylist()
    for i in np.flatnonzero(_mask(pc.match_substring(arr, "&"))).tolist():
        out[i] = html.unescape(out[i])
        if not out[i].isascii():
            out[i] = unicodedata.normalize("NFKC", out[i]).translate(_PUNCTUATION)
    out = [" ".join(t.casefold().split()) for t in out]  # faster than an Arrow regex over every space
    if hidden:
        for i in hidden:
            out[i] = out[i].translate(_SHOW)
    return out


def _arrow_safe(texts: Sequence[str]) -> tuple[pa.Array, list[int]]:
    """The texts as an Arrow array, lone surrogates swapped for private-use characters; which were swapped."""
    out = list(texts)
    try:
        return pa.array(out, pa.large_string()), []
    except (UnicodeError, pa.ArrowException):
        pass
    hidden = []
    for i, t in enumerate(out):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            out[i] = t.translate(_HIDE)
            hidden.append(i)
    return pa.array(out, pa.large_string()), hidden


def _mask(values: pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _apply(arr: pa.Array, rows: np.ndarray, fn) -> pa.Array:
    """``arr`` with ``fn`` applied to the rows in the boolean mask ``rows`` only."""
    if rows.all():
        return fn(arr)
    return pc.replace_with_mask(arr, pa.array(rows), fn(arr.filter(pa.array(rows))))


def _unicode_forms(arr: pa.Array) -> pa.Array:
    arr = pc.utf8_normalize(arr, form="NFKC")
    for pattern, to in _QUOTES:
        arr = pc.replace_substring_regex(arr, pattern, to)
    return arr


def _strip_markup(arr: pa.Array) -> pa.Array:
    for pattern, to in (*_HTML, *_MARKDOWN):
        arr = pc.replace_substring_regex(arr, pattern, to)
    return arr
