"""One stage contract and one runner: what every stage needs, done the same way for all.

A :class:`Stage` declares its name, its config type, how to check a config, which inputs a
run reads (``resolve``: the manifest, an embedding store, upstream decision runs, files,
each with a fingerprint) and a ``compute`` step. :func:`run_stage` owns the rest, for every
command and for ``curate run``:

1. ``validate`` the config and check the workspace has a manifest, before anything in the
   workspace is touched;
2. take the workspace lock (one writer per workspace, ``curate.io.lock``) and sweep the
   temporary files that killed writers left anywhere in the workspace;
3. resolve ``device="auto"`` once (``RunContext.device`` is the ``torch.device`` every step of
   ``compute`` gets); fingerprint every input and the config into the run id ``<prefix>-<12 hex>``;
4. reuse a finished run with that id (its sidecar exists and the stage agrees it is still
   current), or compute, then write the decision table and the sidecar atomically, the
   sidecar last (a run with a sidecar is complete);
5. time the phases and return one :class:`StageResult`.

Runs live under ``decisions/<stage>/<run-id>.parquet`` (one row per manifest id) and
``<run-id>.json`` (config, input fingerprints, counts, phase seconds, the stage's facts).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import xxhash

from curate import __version__
from curate.errors import CurateError
from curate.inputs import InputKind, Resolved
from curate.inputs import resolve as resolve_inputs
from curate.io import atomic
from curate.io.fs import Location
from curate.io.hashing import fingerprint
from curate.workspace import Workspace


def Inputs(fingerprints: dict[str, Any], values: dict[str, Any] | None = None) -> Resolved:  # noqa: N802
    """Inputs a stage opened itself (stages that declare ``inputs()`` get theirs from the resolvers):
    ``fingerprints`` (they make the run id) and ``values`` (the opened objects)."""
    return Resolved(fingerprints, values=values or {})


@dataclass(frozen=True)
class Output:
    """What ``compute`` returns: the per-id decision table (None for stages without one), facts
    for the sidecar (top-level keys beside the runner's), and side tables (``<run-id>-<name>.parquet``)."""

    table: pa.Table | None
    facts: dict[str, Any] = field(default_factory=dict)
    side_tables: dict[str, pa.Table] = field(default_factory=dict)


def file_facts(loc: Location, data: bytes) -> dict[str, Any]:
    """Sidecar facts of a stage whose output is one file (``Output(table=None)``): where, size, content hash."""
    return {"out": loc.uri, "bytes": len(data), "xxh3": xxhash.xxh3_128_hexdigest(data)}


def file_is_current(meta: dict[str, Any]) -> bool:
    """Whether the file that :func:`file_facts` recorded is still there with the same bytes (a later run
    that wrote the same path with other content makes this run stale, not reusable)."""
    from curate.io.fs import locate

    loc = locate(meta["out"])
    if not loc.exists() or loc.fs.size(loc.path) != meta.get("bytes"):
        return False
    digest = xxhash.xxh3_128()
    with loc.fs.open(loc.path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == meta.get("xxh3")


@dataclass(frozen=True)
class StageResult:
    """The one result type of every stage: the run, whether it was reused, and its sidecar."""

    stage: str
    run_id: str
    reused: bool
    seconds: float
    meta: dict[str, Any]  # the sidecar: the stage's facts, config, inputs, counts, seconds
    table: pa.Table | None
    path: Location | None  # the decision table

    @property
    def counts(self) -> dict[str, int]:
        return self.meta.get("counts", {})

    @property
    def run(self):
        """The run as a :class:`curate.decisions.DecisionRun` (table, path, run id)."""
        from curate.decisions import DecisionRun

        return DecisionRun(self.stage, self.run_id, self.table, self.path, self.reused, self.meta)


class RunContext:
    """Handed to ``compute``: the workspace, config, inputs, run id, progress bars and a clock."""

    def __init__(self, ws: Workspace, config: Any, inputs: Resolved, run_id: str, progress: bool) -> None:
        self.ws, self.config, self.inputs, self.run_id, self.progress = ws, config, inputs, run_id, progress
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __getitem__(self, name: str) -> Any:
        return self.inputs.values[name]

    @functools.cached_property
    def device(self) -> Any:
        """The stage's ``torch.device``: ``config.device`` (checked, ``auto`` pinned by :meth:`Stage.pin_device`)
        resolved once, here, for every step of the run to share; None for a config without a device."""
        if "device" not in getattr(self.config, "__dataclass_fields__", {}):
            return None
        from curate.device import resolve_device

        return resolve_device(self.config.device)

    def lap(self, phase: str) -> None:
        """Record the seconds since the previous lap (or the start) as ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self._last, 3)
        self._last = now

    def bar(self, **kwargs: Any):
        """A tqdm bar that shows only on a terminal, and never when progress is off."""
        return progress_bar(self.progress, **kwargs)


def progress_bar(progress: bool, **kwargs: Any):
    """tqdm with one rule for every stage: off with ``--no-progress``, and off when not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(disable=None if progress else True, dynamic_ncols=True, **kwargs)


class Stage(ABC):
    """The contract. Subclasses set ``name`` and ``config_type`` and implement the steps."""

    name: ClassVar[str]
    config_type: ClassVar[type]
    needs_manifest: ClassVar[bool] = True  # False only for the stage that makes it (ingest)
    applies_overrides_itself: ClassVar[bool] = False  # True: compute reads inputs.overrides (select's batch)

    def validate(self, config: Any) -> None:
        """Raise :class:`CurateError` for a config that cannot run (before anything is touched)."""
        return None

    def check(self, ws: Workspace, config: Any) -> None:
        """Checks that need the workspace but must run before it is locked (and so touched)."""
        return None

    def prefix(self, config: Any) -> str:
        """First part of the run id (a method or strategy name)."""
        return self.name

    def needs_store(self, config: Any) -> bool:
        """Whether a run must read an embedding store of this workspace (``curate run`` then needs an
        ``[embed]`` table or a store): derived from the declared inputs."""
        from curate.inputs import Store

        try:
            kinds = self.inputs(config)
        except NotImplementedError:
            return False
        return any(isinstance(k, Store) and k.need == "always" and k.workspace is None for k in kinds)

    def settings(self, config: Any) -> dict[str, Any]:
        """The config fields that decide results (the run id); speed/display fields are dropped here."""
        return config_dict(config)

    def inputs(self, config: Any) -> tuple[InputKind, ...]:
        """What a run with ``config`` reads (``curate.inputs``): the one place a stage says so."""
        raise NotImplementedError(f"{type(self).__name__} declares neither inputs() nor resolve()")

    def resolve(self, ws: Workspace, config: Any) -> Resolved:
        """Open and fingerprint every input this run reads (by default: the declared ``inputs``)."""
        return resolve_inputs(ws, self.name, config, self.inputs(config))

    @abstractmethod
    def compute(self, ctx: RunContext) -> Output:
        """Do the work; write the stage's own artifacts atomically; return the decision table."""

    def is_current(self, ws: Workspace, meta: dict[str, Any]) -> bool:
        """Whether a finished run may be reused (stages with a live artifact check it here)."""
        return True

    def lock_command(self, config: Any) -> str:
        return f"curate {self.name}"

    def in_flow(self, config: Any, earlier: dict[str, StageResult]) -> Any:
        """The config ``curate run`` runs, given the results of the tables before this one in the file
        (default: unchanged; the report goes next to the export the file made)."""
        return config

    def pin_device(self, config: Any) -> Any:
        """Check the device (a GPU that is not here is a one-line error before anything is touched) and
        resolve ``device="auto"`` once for the whole stage (``cuda`` or ``cpu``), so every step sees the
        same choice and the sidecar records it. Work sent to a Ray cluster keeps ``auto``: its workers
        choose on their own machines."""
        names = {f.name for f in dataclasses.fields(config)}
        if "device" not in names:
            return config
        from curate.device import check_config_device, resolve_device

        check_config_device(config)
        if config.device != "auto" or getattr(config, "executor", "local") == "ray":
            return config
        return dataclasses.replace(config, device=resolve_device("auto").type)


def config_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-friendly values (tuples become lists, nested dataclasses dicts)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def run_id_for(stage: Stage, config: Any, inputs: Resolved, without: tuple[str, ...] = ()) -> str:
    fps = {k: v for k, v in inputs.fingerprints.items() if k not in without}
    return f"{stage.prefix(config)}-" + fingerprint([__version__, stage.name, fps, stage.settings(config)])[:12]


def run_stage(ws: Workspace, stage: Stage, config: Any, *, progress: bool = True, wait: bool = False,
              force: bool = False) -> StageResult:
    """Run ``stage`` with ``config`` on ``ws`` under the workspace lock; reuse a finished identical run."""
    start = time.perf_counter()
    if not isinstance(config, stage.config_type):
        raise CurateError(f"internal error: {stage.name} takes a {stage.config_type.__name__}, "
                          f"not {type(config).__name__}")
    stage.validate(config)
    config = stage.pin_device(config)
    if stage.needs_manifest:
        ws.require_manifest()
    stage.check(ws, config)
    with writing(ws, stage.lock_command(config), wait=wait):
        inputs = stage.resolve(ws, config)
        run_id = run_id_for(stage, config, inputs)
        if not force:
            reused = load_result(ws, stage, run_id)
            if reused is not None:
                _mark_latest(ws, reused)
                return dataclasses.replace(reused, seconds=time.perf_counter() - start)
        ctx = RunContext(ws, config, inputs, run_id, progress)
        out = _computed(ws, stage, config, inputs, force) or stage.compute(ctx)
        if inputs.overrides is not None and inputs.overrides.records and out.table is not None:
            out = Output(inputs.overrides.apply(out.table), {**out.facts, **inputs.overrides.facts()},
                         out.side_tables)
        result = _record(ws, stage, config, ctx, out, start)
        _mark_latest(ws, result)
        return result


def _mark_latest(ws: Workspace, result: StageResult) -> None:
    if result.table is not None:
        from curate.decisions import mark_latest

        mark_latest(ws, result.stage, result.run_id)


RESERVED = ("stage", "run_id", "config", "inputs", "curate_version", "table", "rows", "counts", "seconds",
            "total_seconds", "created_at", "overrides")


def _computed(ws: Workspace, stage: Stage, config: Any, inputs: Resolved, force: bool) -> Output | None:
    """The output of the same run without its overrides, when that run is finished: applying review
    decisions never recomputes a stage (its table, facts and side tables are read back)."""
    if force or "overrides" not in inputs.fingerprints or stage.applies_overrides_itself:
        return None
    base = load_result(ws, stage, run_id_for(stage, config, inputs, without=("overrides",)))
    if base is None or base.table is None:
        return None
    from curate.io.tables import read_table

    folder = ws.decisions(stage.name)
    head, sides = f"{base.run_id}-", {}
    for path in folder.fs.ls(folder.path, detail=False):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(head) and name.endswith(".parquet") and atomic.TMP_MARK not in name:
            sides[name[len(head):-len(".parquet")]] = read_table(folder.join(name))
    return Output(base.table, {k: v for k, v in base.meta.items() if k not in RESERVED}, sides)


@contextmanager
def writing(ws: Workspace, command: str, wait: bool = False) -> Iterator[None]:
    """Hold the workspace lock for ``command`` and sweep what killed writers left behind."""
    from curate.io.lock import workspace_lock

    created = not ws.root.exists()
    try:
        with workspace_lock(ws.root, command, wait=wait, on_wait=_say_waiting):
            sweep_workspace(ws)
            yield
    except BaseException:
        if created:
            _remove_if_only_lock_files(ws)  # a first run that failed leaves no empty workspace behind
        raise


def _remove_if_only_lock_files(ws: Workspace) -> None:
    from curate.io.lock import GUARD_NAME

    root = ws.root
    if not root.fs.isdir(root.path):
        return
    files = [p[len(root.path):].lstrip("/") for p in root.fs.find(root.path)]
    if all(f == f"state/{GUARD_NAME}" for f in files):
        root.fs.rm(root.path, recursive=True)


def _say_waiting(info: Any) -> None:
    import sys

    print(f"waiting for pid {info.pid} ({info.command}) to release the workspace ...", file=sys.stderr)


def sweep_workspace(ws: Workspace) -> int:
    """Remove temporary files of killed writers anywhere in the workspace (the lock makes every
    temporary file found here stale); returns how many."""
    root = ws.root
    if not root.fs.isdir(root.path):
        return 0
    removed = 0
    for folder, dirs, files in root.fs.walk(root.path):
        dirs[:] = [d for d in dirs if atomic.TMP_MARK not in d]
        for name in files:
            if atomic.TMP_MARK in name:
                root.fs.rm(f"{folder}/{name}")
                removed += 1
    return removed


def load_result(ws: Workspace, stage: Stage, run_id: str) -> StageResult | None:
    """The finished run ``run_id`` of ``stage`` when it may be reused, else None."""
    from curate.decisions import run_paths
    from curate.io.tables import read_table

    table_loc, meta_loc = run_paths(ws, stage.name, run_id)
    if not meta_loc.exists():
        return None
    meta = atomic.read_json(meta_loc)
    has_table = meta.get("table", True)
    if has_table and not table_loc.exists():
        return None
    if not stage.is_current(ws, meta):
        return None
    table = read_table(table_loc) if has_table else None
    return StageResult(stage.name, run_id, True, 0.0, meta, table, table_loc if has_table else None)


def _record(ws: Workspace, stage: Stage, config: Any, ctx: RunContext, out: Output, start: float) -> StageResult:
    from curate.decisions import decision_counts, run_paths

    table_loc, meta_loc = run_paths(ws, stage.name, ctx.run_id)
    reserved = {
        "stage": stage.name, "run_id": ctx.run_id, "config": config_dict(config),
        "inputs": ctx.inputs.fingerprints, "curate_version": __version__, "table": out.table is not None,
    }
    clash = set(out.facts) & (set(RESERVED) - {"overrides"})
    if clash:
        raise CurateError(f"internal error: {stage.name} facts reuse reserved sidecar keys {sorted(clash)}")
    meta: dict[str, Any] = {**out.facts, **reserved}
    if out.table is not None:
        _check_covers_manifest(ws, stage.name, out.table)
        for name, side in out.side_tables.items():
            atomic.write_parquet(ws.decisions(stage.name).join(f"{ctx.run_id}-{name}.parquet"), side)
        atomic.write_parquet(table_loc, out.table)
        meta["rows"] = out.table.num_rows
        meta["counts"] = decision_counts(out.table)
    ctx.lap("write")
    meta["seconds"] = ctx.seconds
    meta["total_seconds"] = round(time.perf_counter() - start, 3)
    meta["created_at"] = time.time()
    atomic.write_json(meta_loc, meta)
    return StageResult(stage.name, ctx.run_id, False, time.perf_counter() - start, meta, out.table,
                       table_loc if out.table is not None else None)


def _check_covers_manifest(ws: Workspace, stage: str, table: pa.Table) -> None:
    ids = ws.read_manifest(["id"]).column("id")
    if table.num_rows != len(ids) or not table.column("id").equals(ids):
        raise CurateError(f"internal error: {stage} decisions do not cover the manifest ids in order")
