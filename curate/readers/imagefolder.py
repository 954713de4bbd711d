"""Image folders: ``ROOT/[train|val|test/]<label>/<file>``; id = ``<root name>/<relative path>``.

Every regular file under the root becomes a row. Files without an image extension,
symlinks that leave the root (or are broken, or point at folders, FIFOs or devices) are
quarantined, not skipped, so the folder's contents are fully accounted for. Files are read
through :func:`curate.io.fs.read_user_file` (regular files only, at most ``CAP_PAYLOAD`` bytes).
The folder is walked without recursion, so any depth works. ``<root name>`` is the folder's
name, or the longer name ingest gives when two sources share one (``batch2/images``).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Sequence

from curate.io.fs import (
    CAP_PAYLOAD,
    Location,
    UserFileError,
    file_kind,
    locate,
    read_user_file,
    skipped_paths,
    under,
    walk_local,
)
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
    version = 2

    def plan(self, loc: Location, opts: ReadOptions, name: str | None = None,
             skip: Sequence[Location] = ()) -> list[Unit]:
        entries = _walk_local(loc.path, skip) if loc.is_local else _walk_remote(loc, skip)
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
                    name=name or loc.name,
                )
            )
        return units

    def read(self, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        root = locate(unit.uri)
        id_root = unit.name or root.name

        def one(item: tuple[str, str | None]) -> Row:
            rel, problem = item
            split, label = split_and_label(rel)
            row = dict(id=f"{id_root}/{rel}", source=root.join(rel).uri, source_kind=self.name,
                       kind="image", split=split, label=label)
            if problem:
                return rejected_row(problem, **row)
            ext = posixpath.splitext(rel)[1].lower()
            if ext not in IMAGE_EXTENSIONS:
                return rejected_row(f"unsupported-file-type: {ext or 'no extension'!r} is not an "
                                    "image extension", **row)
            try:
                data = read_user_file(root.join(rel), what="image", max_bytes=CAP_PAYLOAD)
            except UserFileError as exc:
                return rejected_row(exc.reason, **row)
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


def _walk_local(root: str, skip: Sequence[Location] = ()) -> list[tuple[str, tuple, str | None]]:
    """Sorted (relative path, stat stamp, problem) for every file; symlinks checked.

    The stamp holds size, mtime and ctime: a file replaced by one of the same size and
    mtime (``cp --preserve=timestamps``, ``rsync -t``) still gets a new ctime.
    """
    real_root = os.path.realpath(root)
    out: list[tuple[str, tuple, str | None]] = []
    for rel, entry in walk_local(root, skip):
        if entry.is_symlink():
            problem = _symlink_problem(entry.path, real_root)
            target = os.stat(entry.path) if problem is None else None
            stamp = ("link", os.readlink(entry.path)) + (
                (target.st_size, target.st_mtime_ns, target.st_ctime_ns) if target else ())
            out.append((rel, stamp, problem))
        elif entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            out.append((rel, (st.st_size, st.st_mtime_ns, st.st_ctime_ns), None))
        else:
            out.append((rel, ("special",), "unsafe-path: not a regular file (device, socket or fifo)"))
    return out


def _symlink_problem(path: str, real_root: str) -> str | None:
    """Why the symlink at ``path`` is not read, or None: its target (resolved) must lie under
    the root and pass the same regular-file check as a plain file (a link to a FIFO would block)."""
    target = os.path.realpath(path)
    if os.path.commonpath([target, real_root]) != real_root:
        return f"symlink-outside-root: points to {target}, outside the source folder"
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return f"broken-symlink: target {target} does not exist"
    if stat.S_ISDIR(mode):
        return "unsafe-path: symlink to a folder is not followed"
    if not stat.S_ISREG(mode):
        return f"unsafe-path: symlink to {file_kind(mode)}, not a regular file; not read"
    return None


def _walk_remote(loc: Location, skip: Sequence[Location] = ()) -> list[tuple[str, tuple, str | None]]:
    found = loc.fs.find(loc.path, detail=True)
    base = loc.path.rstrip("/") + "/"
    skipped = skipped_paths(loc, skip)
    return sorted((p[len(base):], file_stamp(info), None) for p, info in found.items()
                  if p.startswith(base) and info.get("type", "file") == "file"
                  and not (skipped and under(p, skipped)))
