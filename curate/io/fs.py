"""Open local paths and fsspec URIs (s3://, gs://, hdfs://, memory://) the same way.

Paths are literal: a string without a ``scheme://`` prefix is a local path exactly as
written (``::``, ``[``, ``*`` and ``?`` are ordinary characters), and ``proto://rest``
is ``rest`` on that protocol's filesystem. fsspec's URL chaining (``a::b``) is never
applied, so a ``::`` in a file name or an object key cannot redirect a read elsewhere.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem, make_path_posix

from curate.errors import CurateError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_LOCAL_PROTOCOLS = ("file", "local")


@dataclass(frozen=True)
class Location:
    """A filesystem plus a path on it; ``uri`` is what users see and what ids refer to."""

    fs: fsspec.AbstractFileSystem
    path: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def uri(self) -> str:
        return self.path if self.is_local else self.fs.unstrip_protocol(self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    def join(self, *parts: str) -> Location:
        return Location(self.fs, posixpath.join(self.path, *parts))

    def read_bytes(self) -> bytes:
        """The whole file (plain ``open`` for local paths: much cheaper than fsspec's)."""
        if self.is_local:
            with open(self.path, "rb") as fh:
                return fh.read()
        return self.fs.cat_file(self.path)

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def isdir(self) -> bool:
        return self.fs.isdir(self.path)


def locate(uri: str) -> Location:
    """Resolve ``uri`` (a local path, or ``proto://path`` for any protocol fsspec knows) to a
    :class:`Location`, taking the path literally (no ``::`` chaining, no globbing)."""
    text = os.fspath(uri) if not isinstance(uri, str) else uri
    match = _SCHEME.match(text)
    if match is None or match.group(1).lower() in _LOCAL_PROTOCOLS:
        if match is not None:
            text = text[match.end():]
            text = text if text.startswith("/") else "/" + text
        path = make_path_posix(text)
        if not path.startswith("/"):  # make_path_posix leaves e.g. "~x" relative
            path = posixpath.join(make_path_posix(os.getcwd()), text)
        return Location(LocalFileSystem(), path.rstrip("/") or "/")
    protocol = match.group(1)
    try:
        cls = fsspec.get_filesystem_class(protocol)
        options = cls._get_kwargs_from_urls(text)
        fs = fsspec.filesystem(protocol, **options)
        path = cls._strip_protocol(text)
    except (ImportError, ValueError) as exc:
        raise CurateError(f"cannot open {uri!r}: {exc}") from exc
    return Location(fs, path.rstrip("/") or "/")


def walk_local(root: str, skip: Iterable[Location] = ()) -> Iterator[tuple[str, os.DirEntry]]:
    """(relative path, entry) of everything under the local folder ``root`` except folders,
    depth first in sorted name order, without recursion (any depth works). Symlinks are
    yielded, never followed. Folders in ``skip`` (compared by device and inode, so another
    spelling of the same folder is skipped too) are left out with everything under them."""
    skipped = folder_ids(skip)
    stack = [(iter(_sorted_entries(root)), "")]
    while stack:
        entries, prefix = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            if skipped:
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) in skipped:
                    continue
            stack.append((iter(_sorted_entries(entry.path)), rel + "/"))
        else:
            yield rel, entry


def _sorted_entries(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def folder_ids(locations: Iterable[Location]) -> set[tuple[int, int]]:
    """(device, inode) of the local folders among ``locations`` that exist."""
    out = set()
    for loc in locations:
        if loc.is_local:
            try:
                st = os.stat(loc.path)
            except OSError:
                continue
            out.add((st.st_dev, st.st_ino))
    return out


def under(path: str, folders: Iterable[str]) -> bool:
    """Whether the (remote) ``path`` is one of ``folders`` or lies under one."""
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def skipped_paths(loc: Location, skip: Iterable[Location]) -> list[str]:
    """Paths of the ``skip`` folders on ``loc``'s filesystem (for remote listings)."""
    return [s.path for s in skip if s.fs is loc.fs or (type(s.fs) is type(loc.fs)
                                                        and s.fs.protocol == loc.fs.protocol)]


# --- files a user named -----------------------------------------------------------------------
# Every file curate opens because a user named it (a source, an option file such as --labeled,
# --queries, --predictions or a pipeline file, a path inside a table) goes through
# check_user_file / open_user_file / read_user_file: it must be a regular file (checked by stat,
# before any open: a FIFO would block forever, /dev/zero never ends) no larger than a cap.

CAP_PIPELINE = 16 << 20  # a pipeline TOML file
CAP_ID_LIST = 1 << 30  # --labeled, id lists, a --queries JSONL file
CAP_PREDICTIONS = 16 << 30  # --predictions (.npy / .npz / Parquet, read whole)
CAP_PAYLOAD = 512 << 20  # one image or text file: a source sample, a path in a table, a query item

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UserFileError(CurateError, OSError):
    """A file a user named that curate will not read. ``str()`` is the one-line error (for an
    option); ``reason`` the quarantine reason (``"code: detail"``, for a source or a table path)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):
        return (type(self), (str(self), self.reason))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _unreadable(loc: Location, what: str, detail: str) -> UserFileError:
    return UserFileError(f"cannot read {what} {loc.uri}: {detail}", f"read-error: {detail}")


def _check_size(loc: Location, what: str, size: int, max_bytes: int | None) -> int:
    if max_bytes is not None and size > max_bytes:
        detail = f"{size:,} bytes, over the cap of {max_bytes:,} bytes"
        raise UserFileError(f"{what} {loc.uri} is {detail}: refusing to read it", f"file-too-large: {detail}; not read")
    return size


def _refuse_kind(loc: Location, what: str, kind: str) -> UserFileError:
    return UserFileError(f"{what} {loc.uri} is {kind}, not a regular file: refusing to read it",
                         f"unsafe-path: {kind}, not a regular file; not read")


def _check_mode(loc: Location, what: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise _refuse_kind(loc, what, file_kind(mode))


def check_user_file(loc: Location, *, what: str, max_bytes: int | None) -> int:
    """The size of the regular file at ``loc`` (symlinks followed), found by stat without opening it.

    Raises :class:`UserFileError` for a missing file, a FIFO, socket, device or folder, or a file
    over ``max_bytes`` (None: no cap, for files that are mapped or streamed, not read whole).
    ``what`` names the file in the message (``"--labeled"``, ``"pipeline file"``)."""
    if loc.is_local:
        try:
            st = os.stat(loc.path)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            raise _unreadable(loc, what, getattr(exc, "strerror", None) or str(exc)) from None
        _check_mode(loc, what, st.st_mode)
        return _check_size(loc, what, st.st_size, max_bytes)
    try:
        info = loc.fs.info(loc.path)
    except FileNotFoundError:
        raise _unreadable(loc, what, "No such file or directory") from None
    except OSError as exc:
        raise _unreadable(loc, what, str(exc)) from None
    if info.get("type", "file") != "file":
        raise _refuse_kind(loc, what, "a folder" if info.get("type") == "directory" else f"a {info.get('type')}")
    return _check_size(loc, what, int(info.get("size") or 0), max_bytes)


@contextmanager
def open_user_file(loc: Location | str, *, what: str, max_bytes: int | None) -> Iterator[BinaryIO]:
    """The user-named file at ``loc`` opened for binary reading, after :func:`check_user_file`.

    A local file is opened non-blocking and checked again on the open descriptor, so a file
    swapped for a FIFO after the stat cannot block."""
    with _open_checked(locate(loc) if isinstance(loc, str) else loc, what, max_bytes) as (fh, _):
        yield fh


def read_user_file(loc: Location | str, *, what: str, max_bytes: int) -> bytes:
    """The whole user-named file at ``loc`` (see :func:`open_user_file`), never more than
    ``max_bytes`` bytes even if it grows while being read."""
    loc = locate(loc) if isinstance(loc, str) else loc
    with _open_checked(loc, what, max_bytes) as (fh, size):
        parts = [fh.read(size + 1)]  # one read of the size stat gave (plus one byte: did it grow?)
        total = len(parts[0])
        while total > size and total <= max_bytes:
            piece = fh.read(min(1 << 20, max_bytes + 1 - total))
            if not piece:
                break
            parts.append(piece)
            total += len(piece)
    _check_size(loc, what, total, max_bytes)
    return b"".join(parts)


@contextmanager
def _open_checked(loc: Location, what: str, max_bytes: int | None) -> Iterator[tuple[BinaryIO, int]]:
    """(open file, size at open) of a checked user-named file."""
    size = check_user_file(loc, what=what, max_bytes=max_bytes)
    if not loc.is_local:
        with loc.fs.open(loc.path, "rb") as fh:
            yield fh, size
        return
    fd = os.open(loc.path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC)
    try:
        st = os.fstat(fd)
        _check_mode(loc, what, st.st_mode)
        size = _check_size(loc, what, st.st_size, max_bytes)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as fh:
        yield fh, size
