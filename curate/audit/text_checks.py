"""Per-text data-quality checks.

Score convention: every check gives a float in [0, 1], **higher = more likely the defect**; NaN means
the text was not judged (``language`` on a text with too few letters). A flag is ``score >= threshold``,
the threshold a field of :class:`TextCheckConfig`, so stored scores can be re-flagged under other
thresholds without reading the texts again. Where a check compares against a published limit, the
score is ``value / (2 * limit)`` clipped, so 0.5 is exactly at the limit. ``None`` and empty texts
never raise: they score 1 on ``too-short`` and 0 on the rest.

- ``too-short``: ``5 / (5 + words)``: the default 0.5 flags texts of 5 words or fewer (whitespace
  tokens; a CJK character counts as a word).
- ``too-long``: ``size / (size + 100,000)``, size = words or characters / 8, whichever is larger: 0.5 at
  Gopher's 100,000-word maximum (a megabyte without spaces is as long).
- ``repetitive``: Gopher's repetition rules (Rae et al. 2021), the worst of: characters in duplicate
  lines (0.20), in duplicate paragraphs (0.20), characters in the most frequent 2/3/4-gram
  (0.20/0.18/0.16), characters in duplicated 5..10-grams (0.15 down to 0.10), and a character-loop
  rule (a unit of 1-8 characters repeated 8+ times in a row, ``hahaha...``, ``abcabc...``: 0.10 of the
  characters; separator lines of punctuation up to 80 characters do not count). N-gram rules need 50
  words (Gopher's minimum document), line rules 4 lines, paragraph rules 3 paragraphs: a refrain in a short
  poem, or a command name repeated in a short man page, is not a loop. Gopher's count-based line and
  paragraph rules are left out (by count, a one-line refrain after each stanza is a third of a poem's
  paragraphs; by characters it is what it is, small), and the n-gram rules do not see lines that repeat
  an earlier line (the line rule counts those: a refrain is a line). Tokens and lines with no letter or
  digit (table rules, code fences, bullets, separators) are structure and are not counted.
- ``garbled``: the worst of: mojibake (UTF-8 read as Latin-1/cp1252: ``Ã©``, ``â€™``, ``Â``; U+FFFD),
  limit 1 per 100 words; control, private-use and other non-text characters, limit 1% of characters;
  words spelt only with Latin-1 accented letters (Cyrillic or Greek read as Latin-1: ``Ïðèâåò``), limit
  10% of words; Gopher's symbol-to-word ratio (``#`` and ellipses), limit 0.5 per word (Gopher: 0.1; code
  comments and Markdown headings are not garbling). Code, maths and tables are not garbled text: ASCII
  punctuation and digits are never counted against a text.
- ``boilerplate``: the share of a text's characters on lines (20+ characters, normalised: case, digits,
  spacing) that many other texts of the dataset also have (``min_docs``, default ``clip(1% of the
  texts, 3, 50)``; each text counted once), or that hold web boilerplate phrases (C4's and the like:
  cookie and privacy notices, "javascript must be enabled", "terms of use", "all rights reserved",
  navigation); limit 30%. Any "lorem ipsum" scores 1.
- ``language``: ``1 - P(expected languages)`` from an offline language identifier (``py3langid``, the
  ``audit`` extra) on the text's words (URLs, markup, code and numbers left out; the first 400
  characters of them; texts with 30+ letters of words). Expected languages are
  :attr:`TextCheckConfig.languages`, default the dataset's majority language. Without ``py3langid`` the
  check is skipped with a one-line warning.
- ``outlier`` needs embeddings: :func:`curate.audit.outlier.outlier_scores` (same score convention).

Everything runs on chunks of texts with numpy where it matters (word n-grams are hashed and counted
per chunk; lines are hashed with xxhash across the dataset), so a million texts is minutes on one core.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from itertools import chain

import numpy as np
import xxhash

from curate.audit.outlier import outlier_scores

__all__ = ["TEXT_CHECKS", "TextCheckConfig", "flags", "language_available", "outlier_scores", "text_check_scores"]

log = logging.getLogger(__name__)

SHORT_WORDS = 5  # too-short is 0.5 at this many words
LONG_WORDS = 100_000  # too-long is 0.5 at this many words (Gopher's maximum)
CHARS_PER_WORD = 8  # too-long: characters per word for text without spaces
CHUNK = 4096  # texts per numpy chunk

# Gopher repetition limits (Rae et al. 2021, table A1); its count-based line/paragraph rules (0.30) are
# left out: by count, a one-line refrain after every stanza is a third of a poem's paragraphs
LINE_DUP_CHARS, PARA_DUP_CHARS = 0.20, 0.20
TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
CHAR_LOOP = 0.10  # share of characters in a unit of 1-8 characters repeated 8+ times in a row
SEPARATOR_FREE = 80  # a loop of punctuation (a ---- or ==== line) counts only beyond this many characters
LOOP_TOKEN = 24  # only tokens this long are searched for character loops
NGRAM_MIN_WORDS, LINE_MIN, PARA_MIN = 50, 4, 3  # Gopher's rules are for documents of 50+ words

MOJIBAKE_LIMIT = 0.01  # mojibake sequences per word
JUNK_LIMIT = 0.01  # non-text characters per character
LATIN1_WORD_LIMIT = 0.10  # words spelt only with Latin-1 accented letters
SYMBOL_LIMIT = 0.5  # '#' and ellipses per word

BOILERPLATE_LIMIT = 0.30  # share of characters on shared or boilerplate lines
BOILERPLATE_MIN_LINE = 20  # shorter lines ("Parameters", "Thanks!") are never boilerplate
LANG_MIN_LETTERS = 30
LANG_CHARS = 400

# cp1252/Latin-1 renderings of UTF-8 continuation bytes 0x80-0xBF
_CONT = "\x80-\xbf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d" \
        "\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
_CONT_NOSPACE = _CONT.replace("\x80-\xbf", "\x80-\x9f\xa1-\xaa\xac-\xba\xbc-\xbf")  # not nbsp, soft hyphen, « »
MOJIBAKE_RE = re.compile(
    f"Â[{_CONT}]"  # U+0080..U+00BF (nbsp, ©, °, ...)
    f"|[Ã-ß][{_CONT_NOSPACE}]"  # 2-byte sequences: é -> Ã©
    f"|[à-ï][{_CONT}]{{2}}"  # 3-byte: ’ -> â€™
    f"|[ð-ô][{_CONT}]{{3}}"  # 4-byte: emoji -> ðŸ˜€
    "|\ufffd"
)
JUNK_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufdd0-\ufdef\ufffe\uffff]")
LATIN1_WORD_RE = re.compile(r"(?<![^\W\d_])[\xc0-\xd6\xd8-\xf6\xf8-\xff]{3,}(?![^\W\d_])")
CJK_RE = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")
WORD_RE = re.compile(r"[^\W\d_]")
_PROSE_WORD_RE = re.compile(  # a word, with its punctuation and quotes
    r"^[(\"'\u201c\u2018¿¡«]*([^\W\d_]+(?:['\u2019-][^\W\d_]+)*[.,;:!?]?)[)\"'\u201d\u2019»]*[.,;:!?]?$")
_LINE_NORM_RE = re.compile(r"\d+")
_SPACE_RE = re.compile(r"\s+")
_PARA_RE = re.compile(r"\n\s*\n")
_ALNUM_RE = re.compile(r"[^\W_]")
_NON_WORD = " \t\r\n\f\v!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u2014\u2013\u2022\u00b7\u2500\u2550\u2502"
_LOOP_RE = re.compile(r"(.{1,8}?)\1{7,}", re.DOTALL)
_TRIM = " \t-*#>|.:;,!?\"'`()[]{}=_~+"
BOILERPLATE_RE = re.compile(
    r"cookies? (policy|settings|preferences|consent|notice)|(use|uses|using) cookies|accept (all )?cookies"
    r"|privacy (policy|notice|statement)|terms (of|and conditions of) (use|service)|terms & conditions"
    r"|all rights reserved|javascript (is|must be) (disabled|enabled|required)|enable javascript"
    r"|(please )?(sign in|log in|login|sign up|subscribe)( now)? (to|for) (your|our|the|an|free)|newsletter"
    r"|skip to (main )?content|back to top|share (this|on) (facebook|twitter)|follow us on|powered by"
    r"|click here to|read more|accept all|(home|about( us)?|contact( us)?|blog|faq|careers)( \| | · | - )"
    r"|copyright \(c\)|© ?\d{4}|this (web)?site uses|your browser (does not|doesn't) support",
)  # matched against lower-cased text


@dataclass(frozen=True)
class TextCheckConfig:
    """Flag thresholds on the scores (``score >= threshold`` flags); one field per check, plus the
    expected languages of ``language`` (ISO 639-1 codes; empty: the dataset's majority language)."""

    too_short: float = 0.5
    too_long: float = 0.5
    repetitive: float = 0.5
    garbled: float = 0.5
    boilerplate: float = 0.5
    language: float = 0.5
    outlier: float = 0.5
    languages: tuple[str, ...] = ()


# -- per-text measurements ---------------------------------------------------------------------------------


def _text(t: object) -> str:
    return t if isinstance(t, str) else ("" if t is None else str(t))


def _word_counts(texts: Sequence[str], splits: list[list[str]]) -> np.ndarray:
    """Words per text: whitespace tokens, each CJK character counting as a word."""
    out = np.empty(len(texts), dtype=np.float64)
    for i, (t, words) in enumerate(zip(texts, splits)):
        n = len(words)
        if not t.isascii():
            cjk = len(CJK_RE.findall(t))
            if cjk:
                n += max(0, cjk - sum(1 for w in words if CJK_RE.search(w)))
        out[i] = n
    return out


def _ngram_words(t: str, words: list[str]) -> list[str]:
    """The words the n-gram rules see: a text's words less those of lines repeating an earlier line (when the
    line rule judges the text), which the line rule and its own limit already count: a refrain is a line."""
    if t.count("\n") + 1 < LINE_MIN:
        return words
    lines = [x.strip() for x in t.splitlines()]
    kept, seen = [], set()
    for ln in lines:
        if ln in seen and ln.strip(_NON_WORD):
            continue
        seen.add(ln)
        kept.append(ln)
    return words if len(kept) == len(lines) else " ".join(kept).split()


def _ngram_rules(splits: list[list[str]], totals: np.ndarray | None = None) -> np.ndarray:
    """Worst Gopher n-gram ratio (value / limit) per text, numpy over the whole chunk; ``totals`` are the
    texts' character counts (default: those of ``splits``).

    Word hashes are rolled into n-gram keys (salted per text) and counted with one sort per n. Only
    positions whose (n-1)-gram occurs twice can start a repeated n-gram, so each n looks at the survivors
    of the one before: natural text drops to a few percent of its positions after n = 2 or 3.
    """
    worst = np.zeros(len(splits))
    splits = [[w for w in s if _ALNUM_RE.search(w)] for s in splits]  # table rules, bullets, '|' are not words
    counts = np.array([len(s) for s in splits], dtype=np.int64)
    if totals is None:
        totals = np.array([sum(map(len, s)) + max(0, len(s) - 1) for s in splits], dtype=np.float64)
    eligible = counts >= NGRAM_MIN_WORDS
    if not eligible.any():
        return worst
    words = list(chain.from_iterable(s for s, ok in zip(splits, eligible) if ok))
    docs_idx = np.flatnonzero(eligible)
    dcount = counts[eligible]
    n_total = len(words)
    doc = np.repeat(np.arange(docs_idx.size), dcount)
    h = np.fromiter(map(hash, words), dtype=np.int64, count=n_total).view(np.uint64)
    wl = np.fromiter(map(len, words), dtype=np.int64, count=n_total)
    total_chars = np.maximum(np.asarray(totals, dtype=np.float64)[eligible], 1.0)
    csum = np.concatenate([[0], np.cumsum(wl)])
    prime = np.uint64(1099511628211)
    result = np.zeros(docs_idx.size)
    pos = np.arange(n_total, dtype=np.int64)  # candidate start positions
    key = h + doc.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # 1-gram keys, salted per text
    for n in range(2, 11):
        ok = pos + n - 1 < n_total
        pos, key = pos[ok], key[ok]
        ok = doc[pos] == doc[pos + n - 1]  # the n-gram stays inside its text
        pos, key = pos[ok], key[ok] * prime + h[pos[ok] + n - 1]
        if pos.size == 0:
            break
        _, first, inverse, cnt = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
        cnt_at = cnt[inverse]
        d = doc[pos]
        if n in TOP_NGRAM:
            chars = (csum[pos + n] - csum[pos]) + (n - 1)
            covered = np.where(cnt_at >= 2, cnt_at * chars, 0).astype(np.float64)
            top = np.zeros(docs_idx.size)
            np.maximum.at(top, d, covered)
            result = np.maximum(result, np.minimum(1.0, top / np.maximum(total_chars, 1)) / TOP_NGRAM[n])
        if n in DUP_NGRAM:
            is_first = np.zeros(pos.size, dtype=bool)
            is_first[first] = True
            dup_starts = pos[~is_first]
            if dup_starts.size:
                mark = np.zeros(n_total + 1, dtype=np.int64)
                np.add.at(mark, dup_starts, 1)
                np.add.at(mark, dup_starts + n, -1)
                covered_w = np.cumsum(mark[:n_total]) > 0
                dup_chars = np.bincount(doc, weights=wl * covered_w, minlength=docs_idx.size)
                result = np.maximum(result, dup_chars / np.maximum(total_chars, 1) / DUP_NGRAM[n])
        keep = cnt_at >= 2  # only a repeated n-gram can extend to a repeated (n+1)-gram
        pos, key = pos[keep], key[keep]
    worst[docs_idx] = result
    return worst


def _dup_chars(items: list[str]) -> float:
    """Share of the items' characters in items that repeat an earlier one."""
    total = sum(map(len, items))
    return (total - sum(map(len, set(items)))) / max(1, total)


def _line_rules(t: str, words: list[str]) -> float:
    """Worst Gopher line/paragraph ratio (value / limit) and the character-loop rule for one text."""
    worst = 0.0
    lines = [ln for ln in (x.strip() for x in t.splitlines()) if ln.strip(_NON_WORD)]
    if len(lines) >= LINE_MIN:  # separators, fences and table rules are structure, not lines
        worst = _dup_chars(lines) / LINE_DUP_CHARS
    if "\n" in t:
        paras = [p for p in (x.strip() for x in _PARA_RE.split(t)) if p.strip(_NON_WORD)]
        if len(paras) >= PARA_MIN:
            worst = max(worst, _dup_chars(paras) / PARA_DUP_CHARS)
    loop = 0  # a loop without spaces makes a long token
    for w in words:
        if len(w) >= LOOP_TOKEN:
            for m in _LOOP_RE.finditer(w):
                span = m.end() - m.start()
                loop += span if any(c.isalnum() for c in m.group(1)) else max(0, span - SEPARATOR_FREE)
    if loop:
        worst = max(worst, loop / max(1, len(t)) / CHAR_LOOP)
    return worst


def _garbled(t: str, n_words: float) -> float:
    if not t:
        return 0.0
    words = max(n_words, 10.0)
    worst = 0.0
    if not t.isascii():
        worst = max(worst, len(MOJIBAKE_RE.findall(t)) / words / MOJIBAKE_LIMIT)
        worst = max(worst, len(LATIN1_WORD_RE.findall(t)) / words / LATIN1_WORD_LIMIT)
    junk = len(JUNK_RE.findall(t))
    if junk:
        worst = max(worst, junk / max(1, len(t)) / JUNK_LIMIT)
    symbols = t.count("#") + t.count("...") + t.count("\u2026")
    if symbols:
        worst = max(worst, symbols / words / SYMBOL_LIMIT)
    return worst


def _lines(low: str) -> tuple[list[tuple[int, int]], int]:
    """(hash, length) of each distinct normalised line of at least BOILERPLATE_MIN_LINE characters (lower
    case (``low`` is), digits as 0, spacing collapsed, bullets and punctuation trimmed), and the text's
    non-blank characters."""
    out: dict[int, int] = {}
    total = 0
    for ln in _LINE_NORM_RE.sub("0", low).splitlines():
        norm = " ".join(ln.split())
        total += len(norm)
        if len(norm) >= BOILERPLATE_MIN_LINE:
            norm = norm.strip(_TRIM)
            if len(norm) >= BOILERPLATE_MIN_LINE:
                out.setdefault(xxhash.xxh64_intdigest(norm.encode("utf-8", "surrogatepass")), len(norm))
    return list(out.items()), total


def _boilerplate(texts: Sequence[str], min_docs: int | None) -> np.ndarray:
    """Share of each text's characters on lines shared with ``min_docs`` other texts or holding boilerplate
    phrases, as ``share / (2 * BOILERPLATE_LIMIT)``; lorem ipsum is 1."""
    n = len(texts)
    if min_docs is None:
        min_docs = int(np.clip(math.ceil(0.01 * n), 3, 50))
    lowered = [t.lower() for t in texts]
    per_text = [_lines(low) for low in lowered]
    lens = np.fromiter((len(p) for p, _ in per_text), dtype=np.int64, count=n)
    totals = np.fromiter((tot for _, tot in per_text), dtype=np.float64, count=n)
    hashes = np.fromiter((h for p, _ in per_text for h, _ in p), dtype=np.uint64, count=int(lens.sum()))
    line_len = np.fromiter((ln for p, _ in per_text for _, ln in p), dtype=np.float64, count=int(lens.sum()))
    shared_chars = np.zeros(n)
    if hashes.size:
        _, inverse, cnt = np.unique(hashes, return_inverse=True, return_counts=True)
        shared = cnt[inverse] >= min_docs
        shared_chars = np.bincount(np.repeat(np.arange(n), lens), weights=line_len * shared, minlength=n)
    out = np.minimum(1.0, shared_chars / np.maximum(totals, 1) / (2 * BOILERPLATE_LIMIT))
    for i, low in enumerate(lowered):
        if "lorem ipsum" in low:
            out[i] = 1.0
        else:
            spans = set()  # the lines holding a phrase, found in one pass over the text
            for m in BOILERPLATE_RE.finditer(low):
                start = low.rfind("\n", 0, m.start()) + 1
                end = low.find("\n", m.end())
                spans.add((start, len(low) if end < 0 else end))
            if not spans:
                continue
            phrase = sum(len(" ".join(low[a:b].split())) for a, b in spans)
            out[i] = max(out[i], min(1.0, phrase / max(totals[i], 1) / (2 * BOILERPLATE_LIMIT)))
    return out


# -- language --------------------------------------------------------------------------------------------


_IDENTIFIER = None


def language_available() -> bool:
    """True when the offline language identifier (``py3langid``) can be imported."""
    try:
        import py3langid  # noqa: F401
    except ImportError:
        return False
    return True


def _identifier():
    global _IDENTIFIER
    if _IDENTIFIER is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _IDENTIFIER


def _prose(t: str) -> str:
    """The words of ``t`` (up to LANG_CHARS characters of them): URLs, markup, code and numbers left out,
    so a README's badges or a docstring's doctests do not pass for another language."""
    out, size = [], 0
    for tok in t[: 4 * LANG_CHARS].split():
        m = _PROSE_WORD_RE.match(tok)
        if m:
            out.append(m.group(1))
            size += len(out[-1]) + 1
            if size >= LANG_CHARS:
                break
    return " ".join(out)


def _language(texts: Sequence[str], expected: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(score, top language) per text; NaN / '' for texts with fewer than LANG_MIN_LETTERS letters."""
    ident = _identifier()
    scores = np.full(len(texts), np.nan)
    top = np.full(len(texts), "", dtype=object)
    probs: list[dict[str, float] | None] = []
    for i, t in enumerate(texts):
        head = _prose(t)
        if len(WORD_RE.findall(head)) < LANG_MIN_LETTERS:
            probs.append(None)
            continue
        ranked = dict(ident.rank(head))
        probs.append(ranked)
        top[i] = max(ranked, key=ranked.get)
    if not expected:
        counts = Counter(x for x in top if x)
        expected = (counts.most_common(1)[0][0],) if counts else ()
    for i, p in enumerate(probs):
        if p is not None:
            scores[i] = min(1.0, max(0.0, 1.0 - sum(p.get(lang, 0.0) for lang in expected)))
    return scores, top


# -- the checks ------------------------------------------------------------------------------------------


class _Ctx:
    """What several checks share for one call: texts, word splits and word counts (per chunk for n-grams)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.splits = [t.split() for t in texts]
        self.words = _word_counts(texts, self.splits)


def _too_short(ctx: _Ctx, config: TextCheckConfig) -> np.ndarray:
    return SHORT_WORDS / (SHORT_WORDS + ctx.words)


def _too_long(ctx: _Ctx, config: TextCheckConfig) -> np.ndarray:
    size = np.maximum(ctx.words, np.fromiter(map(len, ctx.texts), dtype=np.float64, count=len(ctx.texts))
                      / CHARS_PER_WORD)
    return size / (size + LONG_WORDS)


def _repetitive(ctx: _Ctx, config: TextCheckConfig) -> np.ndarray:
    worst = np.zeros(len(ctx.texts))
    totals = np.fromiter((sum(map(len, w)) + max(0, len(w) - 1) for w in ctx.splits), dtype=np.float64,
                         count=len(ctx.texts))
    for start in range(0, len(ctx.texts), CHUNK):
        stop = min(len(ctx.texts), start + CHUNK)
        words = [_ngram_words(t, w) for t, w in zip(ctx.texts[start:stop], ctx.splits[start:stop])]
        worst[start:stop] = _ngram_rules(words, totals[start:stop])
    lines = np.fromiter((_line_rules(t, w) for t, w in zip(ctx.texts, ctx.splits)), dtype=np.float64,
                        count=len(ctx.texts))
    return np.clip(np.maximum(worst, lines) / 2.0, 0.0, 1.0)


def _garbled_scores(ctx: _Ctx, config: TextCheckConfig) -> np.ndarray:
    raw = np.fromiter((_garbled(t, w) for t, w in zip(ctx.texts, ctx.words)), dtype=np.float64,
                      count=len(ctx.texts))
    return np.clip(raw / 2.0, 0.0, 1.0)


# name -> score function over a whole dataset; outlier needs embeddings (curate.audit.outlier)
TEXT_CHECKS: dict[str, Callable[[_Ctx, TextCheckConfig], np.ndarray]] = {
    "too-short": _too_short,
    "too-long": _too_long,
    "repetitive": _repetitive,
    "garbled": _garbled_scores,
    "boilerplate": lambda ctx, config: _boilerplate(ctx.texts, None),
    "language": lambda ctx, config: _language(ctx.texts, config.languages)[0],
}


def text_check_scores(texts: Iterable[str | None], config: TextCheckConfig | None = None, *,
                      checks: Iterable[str] | None = None, boilerplate_min_docs: int | None = None
                      ) -> dict[str, np.ndarray]:
    """Scores of the text checks (all of :data:`TEXT_CHECKS` or ``checks``) for ``texts``, in order.

    Also returns ``lang`` (the identified language per text, '' when not judged) when ``language`` runs.
    ``language`` is skipped, with one warning, when ``py3langid`` is not installed.
    """
    config = config or TextCheckConfig()
    items = [_text(t) for t in texts]
    wanted = list(TEXT_CHECKS) if checks is None else list(checks)
    unknown = [c for c in wanted if c not in TEXT_CHECKS]
    if unknown:
        raise ValueError(f"unknown text checks {unknown}; known: {sorted(TEXT_CHECKS)}")
    ctx = _Ctx(items)
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "language":
            if not language_available():
                log.warning("language check skipped: py3langid is not installed (pip install 'curate[audit]')")
                continue
            out[name], out["lang"] = _language(items, config.languages)
        elif name == "boilerplate":
            out[name] = _boilerplate(items, boilerplate_min_docs)
        else:
            out[name] = TEXT_CHECKS[name](ctx, config)
        if name != "language":
            empty = np.fromiter((not t.strip() for t in items), dtype=bool, count=len(items))
            if name != "too-short":
                out[name][empty] = 0.0
    return {k: (v.astype(np.float32) if v.dtype != object else v) for k, v in out.items()}


def flags(scores: dict[str, np.ndarray], config: TextCheckConfig | None = None) -> dict[str, np.ndarray]:
    """Boolean flags ``score >= threshold`` for every check present in ``scores`` (NaN: not flagged).
    ``outlier`` scores may be added to ``scores``."""
    config = config or TextCheckConfig()
    thresholds = {f.name.replace("_", "-"): getattr(config, f.name) for f in fields(config) if f.name != "languages"}
    out: dict[str, np.ndarray] = {}
    for name, values in scores.items():
        if name in thresholds:
            values = np.asarray(values, dtype=np.float32)
            out[name] = np.nan_to_num(values, nan=-1.0) >= thresholds[name]
    return out
