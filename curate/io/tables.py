"""Parquet reading that never hands a Python file object to Arrow's I/O threads.

Arrow pre-buffers Parquet reads on background threads; when the file is a Python object
those threads call back into the interpreter and can abort the process at exit
("terminate called without an active exception"). Local files are opened natively by
path; other filesystems are wrapped in Arrow's own fsspec handler.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from curate.io.fs import Location


def arrow_filesystem(loc: Location) -> pafs.FileSystem:
    if loc.is_local:
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(loc.fs))


def read_table(loc: Location, columns: list[str] | None = None, schema: pa.Schema | None = None) -> pa.Table:
    """Read one Parquet file (all or some columns)."""
    return pq.read_table(loc.path, columns=columns, schema=schema, filesystem=arrow_filesystem(loc))


def open_parquet(loc: Location) -> pq.ParquetFile:
    """A :class:`ParquetFile` for streaming row batches, opened natively where possible."""
    fs = arrow_filesystem(loc)
    return pq.ParquetFile(fs.open_input_file(loc.path))
