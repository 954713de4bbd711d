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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

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
