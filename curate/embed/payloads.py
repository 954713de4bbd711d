"""Fetch one sample's payload (image bytes or text) from where ingest found it.

Manifest rows say where each payload lives: text is in the manifest itself, image-folder
files are read whole, tar members by byte range (``offset``/``length`` recorded at
ingest: one ranged read, no tar scan, also on object storage), Parquet cells by row.
A fetcher keeps a few open shards and one decoded Parquet row group, so consecutive rows
of one shard cost one open. One fetcher per loader worker.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import pyarrow as pa

from curate.io.fs import CAP_PAYLOAD, check_user_file, locate, read_user_file
from curate.io.tables import open_parquet

_ROW = re.compile(r"^(?P<file>.+)#row=(?P<row>\d+)$")
REHASH_HINT = ("run `curate ingest SOURCE... -w WS --rehash` to read the sources again "
               "(a file replaced by one of the same size and mtime is not re-read without it)")


def changed_since_ingest(source: str) -> str:
    """The error for a payload whose bytes no longer match the content hash recorded at ingest."""
    return f"{source} changed since ingest (content hash differs): {REHASH_HINT}"


class PayloadFetcher:
    """``fetch(row)`` -> bytes or str for a manifest row dict; raises OSError/ValueError."""

    def __init__(self, image_column: str = "image", max_open: int = 4) -> None:
        self.image_column = image_column
        self.max_open = max_open
        self._open: OrderedDict[str, Any] = OrderedDict()
        self._group: tuple[str, int, int, list] | None = None  # (file, first row, count, values)

    def fetch(self, row: dict) -> bytes | str:
        if row["kind"] == "text":
            return row["text"]
        kind = row["source_kind"]
        if kind == "webdataset":
            return self._ranged(row["source"].rpartition("#")[0], row["offset"], row["length"])
        match = _ROW.match(row["source"]) if kind == "parquet" else None
        if match:
            return self.cell(match["file"], int(match["row"]), self.image_column)
        return _read_file(row["source"])

    def cell(self, uri: str, index: int, column: str) -> Any:
        """One value of a Parquet column, caching the row group it lies in."""
        cached = self._group
        if not (cached and cached[0] == f"{uri}|{column}" and cached[1] <= index < cached[1] + cached[2]):
            pf = open_parquet(locate(uri))
            start = 0
            for g in range(pf.num_row_groups):
                n = pf.metadata.row_group(g).num_rows
                if index < start + n:
                    values = pf.read_row_group(g, columns=[column]).column(0)
                    cached = (f"{uri}|{column}", start, n, _values(values))
                    break
                start += n
            else:
                raise ValueError(f"row {index} is past the end of {uri}")
            self._group = cached
        value = cached[3][index - cached[1]]
        if isinstance(value, dict):  # Hugging Face {bytes, path} image struct
            value = value.get("bytes") or _read_file(value["path"])
        return value

    def _ranged(self, uri: str, offset: int | None, length: int | None) -> bytes:
        if offset is None or length is None:
            raise ValueError(f"no byte range recorded for a member of {uri}: {REHASH_HINT}")
        fh = self._open.get(uri)
        if fh is None:
            loc = locate(uri)
            check_user_file(loc, what="source", max_bytes=None)  # a shard since replaced by a FIFO must not block
            # kept open across calls on purpose (closed by eviction or close())
            fh = open(loc.path, "rb") if loc.is_local else loc.fs.open(loc.path, "rb")  # noqa: SIM115
            self._open[uri] = fh
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)[1].close()
        self._open.move_to_end(uri)
        fh.seek(offset)
        data = fh.read(length)
        if len(data) != length:
            raise OSError(f"{uri} is shorter than at ingest ({len(data)} of {length} bytes at {offset}); "
                          f"{REHASH_HINT}")
        return data

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()
        self._open.clear()


def _read_file(uri: str) -> bytes:
    """A payload file named in a table: a regular file of at most ``CAP_PAYLOAD`` bytes, else
    :class:`~curate.io.fs.UserFileError` (an ``OSError``: the sample fails, the run goes on)."""
    return read_user_file(locate(uri), what="payload", max_bytes=CAP_PAYLOAD)


def _values(column: pa.ChunkedArray) -> list:
    return column.to_pylist()
