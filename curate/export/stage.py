"""``curate export``: write the samples that survived every chosen stage as versioned shards.

Output: ``OUT/<name>/<version>/`` with the shards, ``samples.parquet`` (one row per manifest
id: exported to which shard, or removed by which stage and why) and ``lineage.json``,
written last. ``OUT/<name>/latest.json`` points at the newest version. The version is a
content hash of the plan, so re-exporting identical inputs reuses the same folder, a
changed input or decision gives a new one, and old versions stay. A killed export resumes:
finished shards (renamed into place) are kept, the rest are written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from curate import __version__
from curate.decisions import upstream
from curate.embed.payloads import PayloadFetcher
from curate.errors import CurateError
from curate.export.lineage import build_lineage
from curate.export.plan import Shard, label_names, plan_shards, version_id
from curate.export.shards import ShardInfo, file_digest, write_parquet, write_tar
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.workspace import Workspace

EXPORT_FORMAT = 1
FORMATS = ("auto", "webdataset", "parquet")


@dataclass(frozen=True)
class ExportConfig:
    out: str | None = None  # folder holding <name>/<version>/; default WS/exports
    name: str = "curated"
    format: str = "auto"  # auto: webdataset when the kept samples include images, else parquet
    shard_size: int = 10_000  # samples per shard at most
    shard_bytes: int | None = 1 << 30  # about this many bytes per shard at most; None: no limit
    splits: bool = False  # one shard series per manifest split (<name>-<split>-00000.tar)
    stages: tuple[str, ...] = ("dedup", "prune")  # decision stages applied (latest run of each)
    run_ids: tuple[tuple[str, str], ...] = ()  # pin (stage, run id) instead of the latest
    progress: bool = True


@dataclass(frozen=True)
class ExportResult:
    version: str
    folder: Location
    shards: list[ShardInfo]
    lineage: dict
    reused: bool
    seconds: float


def _check(config: ExportConfig) -> None:
    if config.format not in FORMATS:
        raise CurateError(f"--format must be one of {', '.join(FORMATS)}, not {config.format!r}")
    if config.shard_size < 1 or (config.shard_bytes is not None and config.shard_bytes < 1):
        raise CurateError("--shard-size and --shard-bytes must be positive")
    if not config.name or any(c in config.name for c in "/\\") or config.name.startswith("."):
        raise CurateError(f"--name must be a plain file-name prefix, not {config.name!r}")


def export(ws: Workspace, config: ExportConfig = ExportConfig()) -> ExportResult:
    """Plan, version, write missing shards, then ``samples.parquet`` and ``lineage.json``."""
    start = time.perf_counter()
    _check(config)
    manifest = ws.read_manifest()
    up = upstream(ws, config.stages, dict(config.run_ids), manifest)
    rows = np.flatnonzero(up.kept)
    kinds = set(manifest.column("kind").take(pa.array(rows)).to_pylist()) if len(rows) else set()
    fmt = config.format if config.format != "auto" else ("webdataset" if "image" in kinds else "parquet")
    if fmt == "parquet" and len(kinds) > 1:
        raise CurateError("a Parquet export holds one kind of sample; this one mixes images and texts "
                          "(use --format webdataset)")
    labels = label_names(manifest)
    shards = plan_shards(manifest, rows, config.name, fmt, config.splits, config.shard_size, config.shard_bytes)
    settings = {"format": fmt, "shard_size": config.shard_size, "shard_bytes": config.shard_bytes,
                "splits": config.splits, "stages": list(config.stages), "labels": labels,
                "export_format": EXPORT_FORMAT}
    header = {**settings, "name": config.name, "manifest": ws.manifest_meta()["fingerprint"],
              "runs": {run.stage: run.run_id for run in up.runs}}
    version = version_id(header, manifest, shards)
    base = locate(config.out) if config.out else ws.loc("exports")
    folder = base.join(config.name, version)
    if folder.join("lineage.json").exists():
        lineage = atomic.read_json(folder.join("lineage.json"))
        infos = [ShardInfo(s["name"], s["split"], s["samples"], s["bytes"], s["sha256"]) for s in lineage["shards"]]
        return ExportResult(version, folder, infos, lineage, True, time.perf_counter() - start)

    folder.fs.makedirs(folder.path, exist_ok=True)
    atomic.sweep_temporaries(folder)
    infos = _write_shards(folder, shards, manifest, fmt, labels, config.progress)
    atomic.write_parquet(folder.join("samples.parquet"), _samples_table(manifest, up, shards))
    run_meta = {run.stage: atomic.read_json(_sidecar(run.path)) for run in up.runs}
    lineage = build_lineage(version=version, name=config.name, fmt=fmt, settings=settings, ws_uri=ws.root.uri,
                            manifest_meta=ws.manifest_meta(), manifest=manifest, up=up, run_meta=run_meta,
                            shards=infos)
    lineage["packages"]["curate"] = __version__
    if not lineage["counts"]["accounted"]:
        raise CurateError("internal error: export counts do not add up to the manifest rows")
    atomic.write_json(folder.join("lineage.json"), lineage)
    atomic.write_json(base.join(config.name, "latest.json"), {"version": version, "path": folder.uri})
    return ExportResult(version, folder, infos, lineage, False, time.perf_counter() - start)


def _sidecar(table_loc: Location) -> Location:
    head, _, tail = table_loc.path.rpartition("/")
    return Location(table_loc.fs, f"{head}/{tail.rsplit('.', 1)[0]}.json")


def _write_shards(folder: Location, shards: list[Shard], manifest: pa.Table, fmt: str, labels: list[str],
                  progress: bool) -> list[ShardInfo]:
    """Write each shard that is not already in place (a finished shard was renamed there whole)."""
    label_index = {name: i for i, name in enumerate(labels)}
    fetcher = PayloadFetcher()
    infos = []
    total = sum(len(s.rows) for s in shards)
    with tqdm(total=total, desc="export", unit=" samples", disable=not progress, dynamic_ncols=True) as bar:
        for shard in shards:
            loc = folder.join(shard.name)
            if loc.exists():
                size, digest = file_digest(loc)
                infos.append(ShardInfo(shard.name, shard.split, len(shard.rows), size, digest))
                bar.update(len(shard.rows))
                continue
            rows = manifest.take(pa.array(shard.rows)).to_pylist()
            if fmt == "webdataset":
                info = write_tar(loc, shard.split, _ticking(rows, bar), fetcher, label_index)
            else:
                kind = rows[0]["kind"] if rows else "text"
                info = write_parquet(loc, shard.split, _ticking(rows, bar), fetcher, label_index, kind, labels)
            infos.append(info)
    return infos


def _ticking(rows: list[dict], bar: tqdm):
    for row in rows:
        yield row
        bar.update(1)


def _samples_table(manifest: pa.Table, up, shards: list[Shard]) -> pa.Table:
    """One row per manifest id: ``exported``, ``shard`` (file name) or ``stage`` + ``reason`` of removal."""
    n = manifest.num_rows
    shard_of: list[str | None] = [None] * n
    for shard in shards:
        for r in shard.rows.tolist():
            shard_of[r] = shard.name
    stage, reason = [], []
    for r in up.reasons:
        head, _, tail = (r or "").partition(":")
        quarantined = head == "quarantined"
        stage.append(None if r is None else ("ingest" if quarantined else head))
        reason.append(None if r is None else (r if quarantined else tail.strip()))
    return pa.table({
        "id": manifest.column("id"),
        "exported": pa.array(np.asarray(up.kept, dtype=bool)),
        "shard": pa.array(shard_of, pa.string()),
        "stage": pa.array(stage, pa.string()),
        "reason": pa.array(reason, pa.string()),
    })
