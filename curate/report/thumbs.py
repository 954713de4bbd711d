"""Small previews of samples for the report: JPEG thumbnails as data: URIs, or text snippets.

Payloads are read from wherever ingest found them (files, tar byte ranges, Parquet cells)
through :class:`curate.embed.payloads.PayloadFetcher`, so any source kind works. Only the few
rows the report shows are read; a sample that cannot be read gets a note instead of a picture.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import pyarrow as pa

from curate.embed.payloads import PayloadFetcher

PREVIEW_COLUMNS = ["id", "source", "source_kind", "offset", "length", "kind", "text", "label", "split", "status"]
THUMB_PX = 64
SNIPPET_CHARS = 160


@dataclass(frozen=True)
class Preview:
    """What the page shows for one sample: ``image`` (a data: URI) or ``text`` (raw, escaped when rendered)."""

    id: str
    label: str | None
    image: str | None = None
    text: str | None = None
    error: str | None = None


def thumbnail_uri(data: bytes, px: int = THUMB_PX) -> str:
    """A ``px``-bounded JPEG thumbnail of an encoded image, as a base64 data: URI."""
    from curate.io.images import open_image

    thumb = open_image(data, min_side=px * 2)  # as a person sees it; JPEG: decoded at a reduced scale
    thumb.thumbnail((px, px))
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def snippet(text: str, chars: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


def previews(manifest: pa.Table, rows: list[int], px: int = THUMB_PX, progress: bool = False) -> dict[int, Preview]:
    """Previews of the given manifest rows (``manifest`` needs :data:`PREVIEW_COLUMNS`)."""
    from curate.runner import progress_bar

    fetcher = PayloadFetcher()
    out: dict[int, Preview] = {}
    try:
        for r in progress_bar(progress, iterable=sorted(set(rows)), desc="report previews", unit=" samples"):
            row = {name: manifest.column(name)[r].as_py() for name in PREVIEW_COLUMNS if name in manifest.column_names}
            out[r] = _preview(fetcher, row, px)
    finally:
        fetcher.close()
    return out


def _preview(fetcher: PayloadFetcher, row: dict, px: int) -> Preview:
    base = {"id": row["id"], "label": row.get("label")}
    if row.get("kind") == "text":
        return Preview(**base, text=snippet(row.get("text") or ""))
    if row.get("status") != "ok":
        return Preview(**base, error="quarantined")
    try:
        payload = fetcher.fetch(row)
        if isinstance(payload, str):
            return Preview(**base, text=snippet(payload))
        return Preview(**base, image=thumbnail_uri(payload, px))
    except Exception as exc:  # noqa: BLE001 - a preview never breaks the report
        return Preview(**base, error=f"unreadable: {type(exc).__name__}")
