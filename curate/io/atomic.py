"""Atomic writes: every artifact is written under a temporary name, then renamed.

A reader therefore sees either the previous complete file or the new complete file,
never a partial one, whatever moment the writer is killed at. Temporary names carry
``TMP_MARK`` so a later run can sweep leftovers of killed writers.
"""

from __future__ import annotations

import errno
import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError
from curate.io.fs import Location

TMP_MARK = ".tmp-"
# A write that fails for one of these is a full or read-only disk: the user's to fix, then rerun.
DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


class WriteError(CurateError, OSError):
    """An artifact could not be written (disk full, quota, read-only): one line, no traceback.

    Still an ``OSError``, so callers that handle I/O errors keep doing so."""

    def __str__(self) -> str:
        return str(self.strerror)


def _tmp_sibling(loc: Location) -> Location:
    head, _, tail = loc.path.rpartition("/")
    return Location(loc.fs, f"{head}/{TMP_MARK}{uuid.uuid4().hex[:12]}-{tail}")


@contextmanager
def atomic_open(loc: Location) -> Iterator[BinaryIO]:
    """Yield a binary file; on clean exit it becomes ``loc``, on error nothing changes."""
    parent = loc.path.rpartition("/")[0] or "/"
    loc.fs.makedirs(parent, exist_ok=True)
    tmp = _tmp_sibling(loc)
    try:
        yield from _write_and_rename(loc, tmp, parent)
    except OSError as exc:
        if exc.errno not in DISK_ERRORS or isinstance(exc, WriteError):
            raise
        raise WriteError(exc.errno, f"cannot write {loc.uri}: {exc.strerror or exc}; nothing was "
                         "replaced, free space and rerun the same command to resume") from exc
    finally:
        if loc.fs.exists(tmp.path):
            loc.fs.rm(tmp.path)


def _write_and_rename(loc: Location, tmp: Location, parent: str) -> Iterator[BinaryIO]:
    if loc.is_local:
        with open(tmp.path, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp.path, loc.path)
        fsync_dir(parent)
    else:
        with loc.fs.open(tmp.path, "wb") as fh:
            yield fh
        loc.fs.mv(tmp.path, loc.path)


def fsync_dir(path: str) -> None:
    """Make a rename in folder ``path`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(loc: Location, data: bytes) -> None:
    with atomic_open(loc) as fh:
        fh.write(data)


def write_json(loc: Location, obj: Any) -> None:
    write_bytes(loc, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_parquet(loc: Location, table: pa.Table) -> None:
    """Write ``table`` as one Parquet file (zstd) atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(loc, buf.getvalue())


def read_json(loc: Location) -> Any:
    with loc.fs.open(loc.path, "rb") as fh:
        return json.loads(fh.read())


def sweep_temporaries(loc: Location) -> int:
    """Remove leftovers of killed writers directly under folder ``loc``; return how many."""
    if not loc.fs.isdir(loc.path):
        return 0
    stale = [p for p in loc.fs.ls(loc.path, detail=False) if TMP_MARK in p.rpartition("/")[2]]
    for path in stale:
        loc.fs.rm(path)
    return len(stale)
