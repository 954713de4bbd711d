"""Ingest: read sources into the workspace manifest, unit by unit, resumably.

The manifest is exactly the sources named, in the order named; within a source, units
(shards, or chunks of a folder listing) and the samples in them keep their natural
sorted order. Each unit is read into ``state/ingest/units/<key>.parquet`` and marked done
with a fingerprint of (unit stat stamp, read options, code version); a rerun skips done
units and re-reads changed ones. The manifest is then assembled from the unit parts,
where repeated ids are quarantined (the first sample keeps the id, later ones are
renamed ``<id>~dup<N>`` with an N that no sample of the sources has as its own id, so every
row stays addressable and no genuine id is taken).

Sources are literal paths (``--glob`` expands patterns), must be regular files or folders,
and must not be the workspace; a workspace inside a source folder is left out of its
listing. Two sources with the same folder name (or file stem) get ids that differ: the
later one's derived ids start with as many parent folders as it takes (``batch2/images/...``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import __version__, manifest
from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location
from curate.io.hashing import content_hash, fingerprint
from curate.io.tables import open_parquet
from curate.manifest import MANIFEST_FORMAT
from curate.readers import READERS, resolve
from curate.readers.base import Reader, ReadOptions, Unit, stem
from curate.runner import Inputs, Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.state import clear, is_done, mark_done
from curate.workspace import Workspace


@dataclass(frozen=True)
class IngestConfig:
    """Ingest settings; ``read`` is what readers see, ``kind`` forces one reader.

    ``glob``: expand ``*``, ``?`` and ``[...]`` in sources (otherwise paths are literal).
    ``rehash``: read every unit again whatever its stamp (a file replaced by one with the
    same size and mtime). Settings are checked when the config is built (one-line error).
    """

    sources: tuple[str, ...] = ()  # paths or URIs, in manifest order (``ingest()`` takes them as an argument)
    kind: str = "auto"
    read: ReadOptions = field(default_factory=ReadOptions)
    rows_per_part: int = 200_000
    glob: bool = False
    rehash: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`CurateError` (one line naming the option) for an unusable setting."""
        if self.kind != "auto" and self.kind not in READERS:
            raise CurateError(f"--kind: unknown source kind {self.kind!r} (choose from: auto, {', '.join(READERS)})")
        read = self.read
        for option, value in (("--max-pixels", read.image.max_pixels), ("--max-text-bytes", read.text.max_bytes),
                              ("--workers", read.workers), ("--files-per-unit", read.files_per_unit),
                              ("rows_per_part", self.rows_per_part)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise CurateError(f"{option} must be a positive integer, got {value!r}")


# CLI option names -> where they live in IngestConfig (the pipeline file and the API take the same names)
_READ_FIELDS = {"id_field": "id", "text_field": "text", "image_field": "image", "label_field": "label",
                "split_field": "split", "embedding_field": "embedding"}


def ingest_config(settings: dict[str, Any]) -> IngestConfig:
    """An :class:`IngestConfig` from settings named like the CLI options (``id-field``, ``max-pixels``,
    ``check``, ``workers``...); ``read = {...}`` tables are accepted too."""
    from curate.probe.image import ImageCheck
    from curate.probe.text import TextCheck
    from curate.readers.base import Fields
    from curate.settings import build_config

    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    flat = {k: settings.pop(k) for k in [*_READ_FIELDS, "max_pixels", "max_text_bytes", "check", "workers",
                                         "files_per_unit"] if k in settings}
    config = build_config(IngestConfig, settings, "ingest")
    if not flat:
        return config
    read = config.read
    fields = dataclasses.replace(read.fields, **{_READ_FIELDS[k]: v for k, v in flat.items() if k in _READ_FIELDS})
    image, text = read.image, read.text
    if "max_pixels" in flat or "check" in flat:
        check = flat.get("check", "decode" if image.decode else "header")
        if check not in ("decode", "header"):
            raise CurateError(f"--check must be decode or header, not {check!r}")
        image = ImageCheck(max_pixels=flat.get("max_pixels", image.max_pixels), decode=check == "decode")
    if "max_text_bytes" in flat:
        text = TextCheck(max_bytes=flat["max_text_bytes"])
    read = dataclasses.replace(read, fields=Fields(**dataclasses.asdict(fields)), image=image, text=text,
                               workers=flat.get("workers", read.workers),
                               files_per_unit=flat.get("files_per_unit", read.files_per_unit))
    return dataclasses.replace(config, read=read)


class Ingest(Stage):
    """``curate ingest`` on the runner: the sources' listing (sizes, mtimes) and the read options are
    its inputs; the manifest is its artifact and ``kept = status ok`` its decision table. Units
    (shards, folder chunks) keep their own markers, so a changed source re-reads only its units."""

    name = "ingest"
    config_type = IngestConfig
    needs_manifest = False

    def validate(self, config: IngestConfig) -> None:
        config.validate()
        if not config.sources:
            raise CurateError("no sources given")

    def check(self, ws: Workspace, config: IngestConfig) -> None:
        """Sources that do not exist, are not regular files, or are the workspace, and a workspace
        folder that is not one (a data folder): before any lock file."""
        locs = [loc for uri in config.sources for _, loc in resolve(uri, config.kind, config.glob, [ws.root])]
        _check_workspace(ws.root, locs)
        ws.require_usable()

    def settings(self, config: IngestConfig) -> dict:
        out = config_dict(config)
        out["read"].pop("workers")  # speed, not results
        out.pop("rehash")
        return out

    def resolve(self, ws: Workspace, config: IngestConfig) -> Inputs:
        planned, skipped = _plan(list(config.sources), config, ws)
        units = [[reader.name, reader.version, unit.key, unit.stamp, unit.name, len(unit.items)]
                 for reader, unit in planned]
        return Inputs({"units": fingerprint(units), "format": MANIFEST_FORMAT},
                      {"planned": planned, "skipped": skipped})

    def is_current(self, ws: Workspace, meta: dict) -> bool:
        """Reused while the manifest is the one this run wrote and no unit had a read error."""
        if meta.get("read_errors") or not ws.has_manifest():
            return False
        current = ws.manifest_meta()
        return current.get("run_id") == meta["run_id"] and all(p.exists() for p in ws.manifest_parts())

    def compute(self, ctx: RunContext) -> Output:
        return _ingest(ctx)


def ingest(ws: Workspace, sources: list[str], config: IngestConfig = IngestConfig(), **run: Any) -> StageResult:
    """Read ``sources`` into ``ws``'s manifest (``config.rehash``: read every unit again)."""
    config = dataclasses.replace(config, sources=tuple(str(s) for s in sources))
    return run_stage(ws, Ingest(), config, **{"force": config.rehash, **run})


def _ingest(ctx: RunContext) -> Output:
    ws, config = ctx.ws, ctx.config
    planned, skipped_folders = ctx["planned"], ctx["skipped"]
    units_dir = ws.state("ingest", "units")
    options_fp = _options_fingerprint(config.read)
    done: list[tuple[Location, str]] = []
    read = skipped = read_errors = 0
    bar = ctx.bar(desc="ingest", unit=" samples", total=_known_samples(planned))
    for n, (reader, unit) in enumerate(planned, 1):
        bar.set_postfix_str(f"shard {n}/{len(planned)}")
        fp = fingerprint([__version__, MANIFEST_FORMAT, reader.name, reader.version, unit.key, unit.stamp,
                          unit.items, unit.name, options_fp])
        base = fingerprint(unit.key)[:20]
        part, marker = units_dir.join(f"{base}.parquet"), units_dir.join(f"{base}.json")
        if not config.rehash and is_done(marker, fp, part):
            skipped += 1
            bar.update(len(unit.items) if reader.name == "imagefolder" else 0)
            digest = atomic.read_json(marker).get("digest") or content_hash(part.read_bytes())
        else:
            clear(marker)
            rows, errors = _write_unit(reader, unit, config.read, part, bar)
            digest = content_hash(part.read_bytes())
            if not errors:  # a unit with I/O errors is read again next time: they may be transient
                mark_done(marker, fp, key=unit.key, rows=rows, digest=digest)
            read += 1
            read_errors += errors
        done.append((part, fingerprint([fp, digest])))  # the manifest changes when a re-read part does
    bar.close()
    ctx.lap("read")
    _refuse_all_missing([part for part, _ in done])
    fp = _assemble(ws, done, list(config.sources), config, ctx.run_id)
    ctx.lap("assemble")
    meta = ws.manifest_meta()
    table = ws.read_manifest(["id", "status", "reason"])
    decisions = pa.table({"id": table.column("id"), "kept": pc.equal(table.column("status"), manifest.OK),
                          "reason": table.column("reason")})
    facts = {"samples": meta["count"], "quarantined": meta["quarantined"], "units_read": read,
             "units_skipped": skipped, "read_errors": read_errors, "manifest_fingerprint": fp,
             "skipped": list(skipped_folders)}
    return Output(decisions, facts)


def _refuse_all_missing(parts: list[Location]) -> None:
    """A one-line error, before the manifest is replaced, when every sample was quarantined as
    ``missing-field`` (a wrong ``--text-field`` / ``--image-field``): such a manifest holds nothing
    to curate, and later stages would "succeed" on zero items. Stops at the first other row."""
    count, first = 0, None
    for part in parts:
        for batch in open_parquet(part).iter_batches(batch_size=65536, columns=["reason"]):
            reasons = batch.column(0)
            if reasons.null_count or not pc.all(pc.starts_with(reasons, "missing-field:")).as_py():
                return
            count += len(reasons)
            first = first or (reasons[0].as_py() if len(reasons) else None)
    if count:
        raise CurateError(f"all {count:,} samples lack their payload field, e.g. {first}; the manifest was left "
                          "as it was: rerun with the right --text-field or --image-field")


def _write_unit(reader: Reader, unit: Unit, opts: ReadOptions, part: Location, bar,
                chunk: int = 8192) -> tuple[int, int]:
    """Stream one unit's rows into its Parquet part, in row groups of ``chunk`` rows; (rows, read errors)."""
    count = read_errors = 0
    with atomic.atomic_open(part) as fh, pq.ParquetWriter(fh, manifest.SCHEMA, compression="zstd") as out:
        rows: list[dict] = []
        for row in reader.read(unit, opts):
            read_errors += manifest.reason_code(row.get("reason")) == "read-error"
            rows.append(row)
            if len(rows) >= chunk:
                out.write_table(manifest.to_table(rows))
                count, rows = count + len(rows), []
                bar.update(chunk)
        out.write_table(manifest.to_table(rows))
        bar.update(len(rows))
    return count + len(rows), read_errors


def _known_samples(planned: list[tuple[Reader, Unit]]) -> int | None:
    """Total for the progress bar when every unit is a folder chunk (one file, one sample)."""
    if all(reader.name == "imagefolder" for reader, _ in planned):
        return sum(len(unit.items) for _, unit in planned)
    return None


def _plan(sources: list[str], config: IngestConfig, ws: Workspace
          ) -> tuple[list[tuple[Reader, Unit]], list[str]]:
    """Units of every source in order, and the folders left out of listings (the workspace)."""
    skip = [ws.root]
    resolved = [(reader, loc) for uri in sources for reader, loc in resolve(uri, config.kind, config.glob, skip)]
    skipped = _check_workspace(ws.root, [loc for _, loc in resolved])
    names = _source_names([loc for _, loc in resolved])
    planned: list[tuple[Reader, Unit]] = []
    seen: set[str] = set()
    for (reader, loc), name in zip(resolved, names):
        try:
            units = reader.plan(loc, config.read, name=name, skip=skip if skipped else ())
        except OSError as exc:
            raise CurateError(f"cannot list source {loc.uri!r}: {exc}") from exc
        for unit in units:
            if unit.key in seen:
                raise CurateError(f"source {unit.uri} is named twice")
            seen.add(unit.key)
            planned.append((reader, unit))
    return planned, skipped


def _check_workspace(root: Location, sources: list[Location]) -> list[str]:
    """Refuse a workspace that is a source; list the source folders that hold the workspace
    (their listing leaves it out, so curate never reads its own output back in)."""
    holders = []
    for loc in sources:
        relation = _relation(root, loc)
        if relation == "same":
            raise CurateError(f"the workspace {root.uri} is also a source; use a workspace outside the "
                              "source folders")
        if relation == "inside":
            holders.append(f"{root.uri} (the workspace, inside source {loc.uri})")
    return list(dict.fromkeys(holders))


def _relation(root: Location, source: Location) -> str | None:
    """``same`` when ``root`` is ``source``, ``inside`` when it lies under it, else None."""
    if root.is_local and source.is_local:
        ws_path, src_path = os.path.realpath(root.path), os.path.realpath(source.path)
    elif not root.is_local and not source.is_local and type(root.fs) is type(source.fs) \
            and root.fs.protocol == source.fs.protocol:
        ws_path, src_path = root.path.rstrip("/"), source.path.rstrip("/")
    else:
        return None
    if ws_path == src_path:
        return "same"
    return "inside" if ws_path.startswith(src_path.rstrip("/") + "/") else None


def _source_names(locations: list[Location]) -> list[str | None]:
    """The id root of each source: its folder name or file stem, unless an earlier source's
    ids could collide with it, then with as many parent folders as it takes to differ
    (``batch2/images``). None means the reader's default (the plain name), so ids stay as
    they were whenever nothing collides. Folder sources derive ``<name>/<path>`` ids, so
    two folder names clash when equal or one is a folder prefix of the other; file sources
    derive ``<stem>:<n>`` ids, so two stems clash when equal. The same source named twice
    keeps one name (it is refused later)."""
    taken: list[tuple[bool, str, str]] = []  # (is folder, name, uri)
    out: list[str | None] = []
    for loc in locations:
        parts = [p for p in loc.path.split("/") if p]
        if not parts:
            out.append(None)
            continue
        folder = loc.isdir()
        last = parts[-1] if folder else stem(parts[-1])
        chosen = last
        for depth in range(1, len(parts) + 1):
            name = "/".join([*parts[len(parts) - depth:-1], last])
            if not any(uri != loc.uri and is_folder == folder and _clash(name, other, folder)
                       for is_folder, other, uri in taken):
                chosen = name
                break
        # no free name (the same path on two filesystems): duplicate ids are quarantined
        taken.append((folder, chosen, loc.uri))
        out.append(None if chosen == last else chosen)
    return out


def _clash(name: str, other: str, folder: bool) -> bool:
    if name == other:
        return True
    return folder and (name.startswith(other + "/") or other.startswith(name + "/"))


def _options_fingerprint(opts: ReadOptions) -> str:
    settings = dataclasses.asdict(opts)
    settings.pop("workers")  # affects speed, not results
    return fingerprint(settings)


def _assemble(ws: Workspace, units: list[tuple[Location, str]], sources: list[str],
              config: IngestConfig, run_id: str) -> str:
    """Write manifest parts from unit parts (ids made unique), then ``_meta.json`` last."""
    fp = fingerprint([MANIFEST_FORMAT, _ASSEMBLY, config.rows_per_part, [u for _, u in units]])
    meta_loc = ws.manifest_dir.join("_meta.json")
    if ws.has_manifest():
        meta = ws.manifest_meta()
        if meta.get("fingerprint") == fp and all(p.exists() for p in ws.manifest_parts()):
            if meta.get("run_id") != run_id:  # same manifest, reached by another run: record which
                atomic.write_json(meta_loc, {**meta, "run_id": run_id})
            return fp
    clear(meta_loc)  # no manifest is visible while parts are being replaced
    atomic.sweep_temporaries(ws.manifest_dir)
    writer = _PartWriter(ws.manifest_dir, config.rows_per_part)
    own: set[str] = set()  # every id the sources give, so a rename never takes one of them
    for part, _ in units:
        for batch in open_parquet(part).iter_batches(batch_size=65536, columns=["id"]):
            own.update(batch.column(0).to_pylist())
    unique = _UniqueIds(own)
    for part, _ in units:
        for batch in open_parquet(part).iter_batches(batch_size=65536):
            writer.add(unique.apply(pa.Table.from_batches([batch])))
    names, count, quarantined = writer.close()
    for stale in ws.manifest_dir.fs.ls(ws.manifest_dir.path, detail=False):
        name = stale.rsplit("/", 1)[-1]
        if name.startswith("part-") and name not in names:
            ws.manifest_dir.fs.rm(stale)
    atomic.write_json(meta_loc, {
        "fingerprint": fp, "count": count, "quarantined": quarantined, "parts": names,
        "sources": list(sources), "format": MANIFEST_FORMAT, "curate_version": __version__, "run_id": run_id,
    })
    return fp


_ASSEMBLY = 2  # 2: renamed duplicates never take an id a later sample has


class _UniqueIds:
    """Quarantines repeated ids in ingest order, renaming repeats to ``<id>~dup<N>``.

    ``reserved`` holds every id of the sources: N is the smallest that makes a name no
    sample has as its own id and no earlier rename took (ids ``a, a, a~dup1``: the second
    ``a`` becomes ``a~dup2`` and the genuine ``a~dup1`` keeps its id).
    """

    def __init__(self, reserved: set[str] | None = None) -> None:
        self.seen: set[str] = set()
        self.reserved = reserved or set()

    def apply(self, table: pa.Table) -> pa.Table:
        ids = table.column("id").to_pylist()
        status = reason = None
        for i, sample_id in enumerate(ids):
            if sample_id not in self.seen:
                self.seen.add(sample_id)
                continue
            if status is None:
                status = table.column("status").to_pylist()
                reason = table.column("reason").to_pylist()
            n = 1
            while f"{sample_id}~dup{n}" in self.seen or f"{sample_id}~dup{n}" in self.reserved:
                n += 1
            ids[i] = f"{sample_id}~dup{n}"
            self.seen.add(ids[i])
            if status[i] == manifest.OK:
                status[i] = manifest.QUARANTINED
                reason[i] = f"duplicate-id: id {sample_id!r} is already used by an earlier sample"
        if status is None:
            return table
        for name, values in (("id", ids), ("status", status), ("reason", reason)):
            idx = table.schema.get_field_index(name)
            table = table.set_column(idx, manifest.SCHEMA.field(name), pa.array(values, pa.string()))
        return table


class _PartWriter:
    """Re-chunks a stream of tables into ``part-%05d.parquet`` files of fixed row count."""

    def __init__(self, folder: Location, rows_per_part: int) -> None:
        self.folder, self.rows = folder, max(1, rows_per_part)
        self.buffer: list[pa.Table] = []
        self.buffered = self.count = self.quarantined = 0
        self.names: list[str] = []

    def add(self, table: pa.Table) -> None:
        self.buffer.append(table)
        self.buffered += table.num_rows
        while self.buffered >= self.rows:
            self._flush(self.rows)

    def close(self) -> tuple[list[str], int, int]:
        if self.buffered or not self.names:
            self._flush(self.buffered)
        return self.names, self.count, self.quarantined

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.buffer) if self.buffer else manifest.SCHEMA.empty_table()
        head, tail = table.slice(0, n), table.slice(n)
        name = f"part-{len(self.names):05d}.parquet"
        atomic.write_parquet(self.folder.join(name), head.combine_chunks())
        self.names.append(name)
        self.count += head.num_rows
        self.quarantined += pc.sum(pc.equal(head.column("status"), manifest.QUARANTINED)).as_py() or 0
        self.buffer, self.buffered = [tail], tail.num_rows

