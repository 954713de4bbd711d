"""Text payload checks: valid UTF-8, not empty, not absurdly long."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from curate.probe import Rejected

# control, format (zero-width space/joiners, BOM, bidi marks, soft hyphen) and separator characters
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# characters of other categories that fonts draw as nothing: Hangul fillers, the blank Braille
# pattern, the combining grapheme joiner, Khmer inherent vowels, variation selectors
_BLANK_CHARS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f"
                         + "".join(map(chr, range(0xFE00, 0xFE10)))
                         + "".join(map(chr, range(0xE0100, 0xE01F0))))
# format characters that do draw a sign (Arabic number signs, end of ayah, Syriac abbreviation mark)
_VISIBLE_FORMAT = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2"
                            "\U000110bd\U000110cd")


@dataclass(frozen=True)
class TextCheck:
    max_bytes: int = 1_000_000

    def line_cap(self) -> int:
        """Longest line a line-based reader (JSONL, CSV) holds in memory: room for the
        longest allowed text with every byte escaped (``\\u0001`` is 6 bytes for 1) plus
        64 KiB of other fields. A longer line cannot hold an allowed text."""
        return 6 * self.max_bytes + 65_536


def decode_text(raw: bytes, check: TextCheck = TextCheck()) -> str:
    """Decode ``raw`` as UTF-8 or raise :class:`Rejected` with a reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("undecodable-text", f"not valid UTF-8 at byte {exc.start}") from exc
    return check_size_and_content(text, len(raw), check)


def check_text(text: str, check: TextCheck = TextCheck()) -> bytes:
    """Apply the same rules to text decoded elsewhere (JSON, CSV); returns its UTF-8 bytes."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: input bytes that were not UTF-8
        raise Rejected("undecodable-text", f"not valid UTF-8 at character {exc.start}") from exc
    check_size_and_content(text, len(raw), check)
    return raw


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: only whitespace, zero-width, control or other invisible
    characters (``"\\u200b\\u200d\\ufeff"`` is as empty as ``"  "``). Usual text answers at its first
    character; a long invisible one is judged by its distinct characters."""
    stripped = text.strip()
    if not stripped or not _invisible(stripped[0]):
        return not stripped
    return all(_invisible(ch) for ch in set(stripped))


def _invisible(ch: str) -> bool:
    if ch.isspace() or ch in _BLANK_CHARS:
        return True
    return unicodedata.category(ch) in _INVISIBLE_CATEGORIES and ch not in _VISIBLE_FORMAT


def check_size_and_content(text: str, size: int, check: TextCheck) -> str:
    """Emptiness and size rules for text whose UTF-8 size is already known: the one place every
    text reader's "empty text" rule lives."""
    if is_blank(text):
        raise Rejected("empty-text", "no visible characters (only whitespace, zero-width or other invisible "
                                     "characters)")
    if size > check.max_bytes:
        raise Rejected("text-too-long", f"{size:,} bytes exceeds the cap of {check.max_bytes:,}")
    return text
