"""A workspace: one directory (local path or URI) holding everything for one dataset.

Layout (see DESIGN.md section 2)::

    manifest/part-00000.parquet ...   + manifest/_meta.json
    decisions/<stage>/<run-id>.parquet + <run-id>.json
    state/                            completion markers and fingerprints
    embeddings/ index/ exports/ report.html

A folder is taken as a workspace only when it is new or empty, or already one (it has
``manifest/_meta.json`` or ``state/lock.guard``, or holds nothing but the names above):
a data folder given as ``-w`` is refused before anything is written into it.
"""

from __future__ import annotations

import os

import pyarrow as pa

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.io.tables import read_table
from curate.manifest import MANIFEST_FORMAT, SCHEMA

# What a workspace holds at its top level; files curate itself leaves there (hidden ones aside).
LAYOUT = frozenset({"manifest", "decisions", "state", "embeddings", "index", "exports", "report.html"})
# Either marks a folder that curate has written as a workspace, whatever else a user put in it.
MARKERS = (("manifest", "_meta.json"), ("state", "lock.guard"))


class Workspace:
    """Paths and manifest access for one workspace; stages take it as their first argument."""

    def __init__(self, uri: str) -> None:
        self.root: Location = locate(uri)

    def __repr__(self) -> str:
        return f"Workspace({self.root.uri!r})"

    def loc(self, *parts: str) -> Location:
        return self.root.join(*parts)

    @property
    def manifest_dir(self) -> Location:
        return self.loc("manifest")

    def state(self, *parts: str) -> Location:
        return self.loc("state", *parts)

    def decisions(self, stage: str) -> Location:
        return self.loc("decisions", stage)

    def has_manifest(self) -> bool:
        return self.manifest_dir.join("_meta.json").exists()

    def require_usable(self) -> None:
        """Refuse (one line, before anything is written) a root that is a file, or a folder that
        holds other things and is not a curate workspace (a data folder given as ``-w``)."""
        root = self.root
        if not root.exists():
            return
        if not root.isdir():
            raise CurateError(f"workspace {root.uri} is a file, not a folder: give a new or empty folder as -w")
        if any(self.loc(*marker).exists() for marker in MARKERS):
            return
        names = sorted(n for n in (p.rstrip("/").rsplit("/", 1)[-1] for p in root.fs.ls(root.path, detail=False))
                       if n and not n.startswith("."))
        foreign = [n for n in names if n not in LAYOUT]
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise CurateError(f"workspace {root.uri} is not empty and not a curate workspace (it holds {shown}): "
                              "give a new or empty folder as -w, never a data folder")

    def require_manifest(self) -> None:
        if not self.root.exists():
            raise CurateError(f"workspace {self.root.uri} does not exist (run `curate ingest` first)")
        if not self.has_manifest():
            raise CurateError(f"workspace {self.root.uri} has no manifest (run `curate ingest` first)")

    def manifest_meta(self) -> dict:
        self.require_manifest()
        return atomic.read_json(self.manifest_dir.join("_meta.json"))

    def manifest_fingerprint(self) -> str:
        """Changes whenever the manifest does (every stage's input fingerprint starts here)."""
        return self.manifest_meta()["fingerprint"]

    def manifest_parts(self) -> list[Location]:
        return [self.manifest_dir.join(name) for name in self.manifest_meta()["parts"]]

    def read_manifest(self, columns: list[str] | None = None) -> pa.Table:
        """The whole manifest (or some columns) in ingest order."""
        meta = self.manifest_meta()
        if meta.get("format") != MANIFEST_FORMAT:
            raise CurateError(f"the manifest in {self.root.uri} has format {meta.get('format')}, this curate "
                              f"reads format {MANIFEST_FORMAT}: rerun `curate ingest` with the same sources")
        tables = []
        for part in self.manifest_parts():
            tables.append(read_table(part, columns=columns))
        if not tables:
            schema = SCHEMA if columns is None else pa.schema([SCHEMA.field(c) for c in columns])
            return schema.empty_table()
        return pa.concat_tables(tables)


def same_place(a: Location, b: Location) -> bool:
    """Whether two locations are one folder: the same real path (symlinks, ``..`` and trailing
    slashes resolved; the same inode for a bind mount), or the same path on one object store."""
    if a.is_local and b.is_local:
        if os.path.realpath(a.path) == os.path.realpath(b.path):
            return True
        try:
            return os.path.samefile(a.path, b.path)
        except OSError:
            return False
    if a.is_local or b.is_local or a.fs.protocol != b.fs.protocol:
        return False
    return a.path.rstrip("/") == b.path.rstrip("/")
