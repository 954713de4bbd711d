"""Typed stage inputs: what a stage reads, opened and fingerprinted once, by one resolver per kind.

A stage declares its inputs for a config (``Stage.inputs``), for example
``(Manifest(), Store(prefer="dedup"), Upstream(("dedup",)), UserFile("labeled"), Overrides())``.
:func:`resolve` opens each once and returns a frozen :class:`Resolved` bundle: the fingerprints
that make the run id (one key per input, the same keys stages always used) and the opened values
``compute`` reads as attributes (``inputs.store``, ``inputs.runs["dedup"]``, ``inputs.files["labeled"]``,
``inputs.overrides``). Every fingerprint is of content: the manifest's and the store's recorded
fingerprints, the run ids of upstream runs, the bytes of user files, the overrides in force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import xxhash

from curate.decisions import DecisionRun, latest_run
from curate.errors import CurateError
from curate.io.fs import CAP_PREDICTIONS, Location, locate, open_user_file
from curate.overrides import StageOverrides, for_stage
from curate.workspace import Workspace


@dataclass(frozen=True)
class Manifest:
    """The workspace manifest (fingerprint: the one ingest recorded)."""

    key: str = "manifest"


@dataclass(frozen=True)
class Store:
    """One embedding store, chosen by ``config.<option>`` (default ``model``), else the only one, else
    the one the latest run of ``prefer`` read, else (``first``) the first by name. ``need``: ``always``
    (an error when there is none), ``if-any`` (none when the workspace has no store), ``never`` (the
    run reads none; fingerprint None). ``workspace``: the config field naming another workspace whose
    store this is (drift's reference); its value is then ``inputs.values[key]``, not ``inputs.store``."""

    prefer: str | None = None
    need: str = "always"
    key: str = "store"
    option: str = "model"
    workspace: str | None = None
    first: bool = False


@dataclass(frozen=True)
class Upstream:
    """The latest (or pinned) finished runs of ``stages``; stages with no run are left out."""

    stages: tuple[str, ...] = ("dedup",)
    pins: tuple[tuple[str, str], ...] = ()
    key: str = "upstream"


@dataclass(frozen=True)
class UserFile:
    """A file (or a folder of files) a user named in ``config.<option>``; fingerprint: its bytes.
    ``parse`` turns the path into what ``compute`` reads (default: the path itself)."""

    option: str
    parse: Callable[[str], Any] | None = None
    max_bytes: int = CAP_PREDICTIONS

    @property
    def key(self) -> str:
        return self.option


@dataclass(frozen=True)
class Overrides:
    """The review overrides in force for this stage (``curate override``); in the fingerprint only
    when there are some, so a workspace without review keeps its run ids."""

    stage: str | None = None  # default: the stage's own name
    key: str = "overrides"


InputKind = Manifest | Store | Upstream | UserFile | Overrides


@dataclass(frozen=True)
class Resolved:
    """What one run reads, opened once: fingerprints (they make the run id) and the values."""

    fingerprints: dict[str, Any]
    store: Any = None  # curate.embed.store.StoredEmbeddings | None
    runs: dict[str, DecisionRun] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    overrides: StageOverrides | None = None
    values: dict[str, Any] = field(default_factory=dict)  # anything else a stage opened itself

    def __getitem__(self, name: str) -> Any:
        """Backwards-compatible access for stages not yet moved to attributes."""
        if name == "store":
            return self.store
        if name in self.files:
            return self.files[name]
        return self.values[name]


def resolve(ws: Workspace, stage: str, config: Any, kinds: tuple[InputKind, ...]) -> Resolved:
    """Open and fingerprint each declared input once (upstream runs before the store that prefers one)."""
    fps: dict[str, Any] = {}
    runs: dict[str, DecisionRun] = {}
    files: dict[str, Any] = {}
    store = overrides = None
    values: dict[str, Any] = {}
    for kind in sorted(kinds, key=lambda k: not isinstance(k, Upstream)):
        if isinstance(kind, Manifest):
            fps[kind.key] = ws.manifest_fingerprint()
        elif isinstance(kind, Upstream):
            runs = upstream_runs(ws, kind)
            fps[kind.key] = {name: run.run_id for name, run in runs.items()}
        elif isinstance(kind, Store):
            where = ws if kind.workspace is None else Workspace(getattr(config, kind.workspace))
            opened = open_store_input(where, kind, getattr(config, kind.option, None), runs)
            fps[kind.key] = opened.meta["fingerprint"] if opened is not None else None
            if kind.workspace is None:
                store = opened
            else:
                values[kind.key] = opened
        elif isinstance(kind, UserFile):
            path = getattr(config, kind.option)
            fps[kind.key] = content_fingerprint(path, f"--{kind.option.replace('_', '-')}", kind.max_bytes)
            files[kind.key] = None if path is None else (kind.parse(path) if kind.parse else path)
        elif isinstance(kind, Overrides):
            overrides = for_stage(ws, kind.stage or stage, ws.read_manifest(["id"]).column("id"))
            if overrides.fingerprint is not None:
                fps[kind.key] = overrides.fingerprint
        else:  # pragma: no cover - a new kind without a resolver is a programming error
            raise CurateError(f"internal error: no resolver for stage input {kind!r}")
    return Resolved(fps, store, runs, files, overrides, values)


def upstream_runs(ws: Workspace, kind: Upstream) -> dict[str, DecisionRun]:
    pins = dict(kind.pins)
    found = {stage: latest_run(ws, stage, pins.get(stage)) for stage in kind.stages}
    return {stage: run for stage, run in found.items() if run is not None}


def open_store_input(ws: Workspace, kind: Store, model: str | None, runs: dict[str, DecisionRun]):
    """The store a run reads (see :class:`Store`), or None."""
    from curate.embed.store import choose_store, list_stores, open_store

    stores = list_stores(ws) if kind.need == "if-any" or kind.first else []
    if kind.need == "never" or (kind.need == "if-any" and model is None and not stores):
        return None
    prefer = None
    if kind.prefer is not None:
        run = runs.get(kind.prefer) or latest_run(ws, kind.prefer)
        prefer = run.meta.get("model") if run is not None else None
    if kind.first and model is None and len(stores) > 1 and prefer not in stores:
        prefer = stores[0]  # a view of the workspace (the report) shows the first store rather than fail
    return open_store(ws, choose_store(ws, model, prefer=prefer))


def content_fingerprint(path: str | None, what: str, max_bytes: int) -> str | None:
    """xxh3 of a user file's bytes (each file's relative name and bytes for a folder); None for no file."""
    if path is None:
        return None
    loc = locate(path)
    if not loc.exists():
        raise CurateError(f"{what} {path!r} not found")
    digest = xxhash.xxh3_128()
    files = sorted(loc.fs.find(loc.path)) if loc.isdir() else [loc.path]
    for name in files:
        part = Location(loc.fs, name) if name != loc.path else loc
        digest.update(f"\0{name[len(loc.path):]}\0".encode())
        with open_user_file(part, what=what, max_bytes=max_bytes) as fh:
            for chunk in iter(lambda fh=fh: fh.read(8 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
