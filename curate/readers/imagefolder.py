"""Image folders: ``ROOT/[train|val|test/]<label>/<file>``; id = ``<root name>/<relative path>``.

Every regular file under the root becomes a row. Files without an image extension,
symlinks that leave the root (or are broken, or point at folders) are quarantined, not
skipped, so the folder's contents are fully accounted for.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator

from curate.io.fs import Location, locate
from curate.probe.image import IMAGE_EXTENSIONS
from curate.readers.base import SPLIT_ALIASES as _SPLITS
from curate.readers.base import (
    ReadOptions,
    Row,
    Unit,
    file_stamp,
    image_row,
    normalise_split,
    rejected_row,
    thread_map,
)


class ImageFolderReader:
    name = "imagefolder"
    version = 1

    def plan(self, loc: Location, opts: ReadOptions) -> list[Unit]:
        entries = _walk_local(loc.path) if loc.is_local else _walk_remote(loc)
        size = max(1, opts.files_per_unit)
        units = []
        for start in range(0, len(entries), size):
            chunk = entries[start : start + size]
            units.append(
                Unit(
                    reader=self.name,
                    key=f"{loc.uri}#files-{start // size:05d}",
                    uri=loc.uri,
                    stamp=tuple((rel, stamp) for rel, stamp, _ in chunk),
                    items=tuple((rel, problem) for rel, _, problem in chunk),
                )
            )
        return units

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        root = locate(unit.uri)

        def one(item: tuple[str, str | None]) -> Row:
            rel, problem = item
            split, label = split_and_label(rel)
            row = dict(id=f"{root.name}/{rel}", source=root.join(rel).uri, source_kind=self.name,
                       kind="image", split=split, label=label)
            if problem:
                return rejected_row(problem, **row)
            ext = posixpath.splitext(rel)[1].lower()
            if ext not in IMAGE_EXTENSIONS:
                return rejected_row(f"unsupported-file-type: {ext or 'no extension'!r} is not an "
                                    "image extension", **row)
            try:
                data = root.join(rel).read_bytes()
            except OSError as exc:
                return rejected_row(f"read-error: {exc}", **row)
            return image_row(data, opts.image, **row)

        yield from thread_map(one, unit.items, opts.workers)


def split_and_label(rel: str) -> tuple[str | None, str | None]:
    """``train/cat/x.jpg`` -> (train, cat); ``cat/x.jpg`` -> (None, cat); ``x.jpg`` -> (None, None)."""
    folders = rel.split("/")[:-1]
    split = None
    if folders and folders[0].lower() in _SPLITS:
        split = normalise_split(folders[0])
        folders = folders[1:]
    return split, (folders[0] if folders else None)


def _walk_local(root: str) -> list[tuple[str, tuple, str | None]]:
    """Sorted (relative path, stat stamp, problem) for every file; symlinks checked."""
    real_root = os.path.realpath(root)
    out: list[tuple[str, tuple, str | None]] = []

    def visit(folder: str, prefix: str) -> None:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                problem = _symlink_problem(entry.path, real_root)
                target = os.stat(entry.path) if problem is None else None
                stamp = ("link", os.readlink(entry.path)) + (
                    (target.st_size, target.st_mtime_ns) if target else ())
                out.append((rel, stamp, problem))
            elif entry.is_dir(follow_symlinks=False):
                visit(entry.path, rel + "/")
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                out.append((rel, (st.st_size, st.st_mtime_ns), None))
            else:
                out.append((rel, ("special",), "unsafe-path: not a regular file (device, socket or fifo)"))

    visit(root, "")
    return out


def _symlink_problem(path: str, real_root: str) -> str | None:
    target = os.path.realpath(path)
    if os.path.commonpath([target, real_root]) != real_root:
        return f"symlink-outside-root: points to {target}, outside the source folder"
    if not os.path.exists(target):
        return f"broken-symlink: target {target} does not exist"
    if os.path.isdir(target):
        return "unsafe-path: symlink to a folder is not followed"
    return None


def _walk_remote(loc: Location) -> list[tuple[str, tuple, str | None]]:
    found = loc.fs.find(loc.path, detail=True)
    base = loc.path.rstrip("/") + "/"
    return sorted((p[len(base):], file_stamp(info), None) for p, info in found.items()
                  if p.startswith(base) and info.get("type", "file") == "file")
