"""Text payload checks: valid UTF-8, not empty, not absurdly long."""

from __future__ import annotations

from dataclasses import dataclass

from curate.probe import Rejected


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


def check_size_and_content(text: str, size: int, check: TextCheck) -> str:
    """Emptiness and size rules for text whose UTF-8 size is already known."""
    if not text.strip():
        raise Rejected("empty-text", "no non-whitespace characters")
    if size > check.max_bytes:
        raise Rejected("text-too-long", f"{size:,} bytes exceeds the cap of {check.max_bytes:,}")
    return text
