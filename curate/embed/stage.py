"""``curate embed``: manifest -> embedding store, shard by shard, resumably.

Store rows are the manifest rows that are ``ok`` and of a kind the model embeds, in
manifest order. They are cut into shards of ``shard_size`` rows; each finished shard is
written into the preallocated vector file and marked done with the run fingerprint
(manifest, model identity, device type, precision, batch and shard size, code version),
so a rerun skips finished shards and a changed input starts a fresh store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from curate import __version__
from curate.embed.base import Embedder, Runtime, resolve_runtime
from curate.embed.registry import load_embedder
from curate.embed.runner import LoaderSettings, embed_rows
from curate.embed.store import create_or_resume, local_path, store_dir, write_tables
from curate.errors import CurateError
from curate.io import atomic
from curate.io.hashing import fingerprint
from curate.manifest import OK
from curate.state import clear, is_done, mark_done
from curate.workspace import Workspace

MANIFEST_COLUMNS = ["id", "source", "source_kind", "offset", "length", "kind", "text", "status", "content_hash"]

# called on the driver for each finished shard: (shard index, vectors, failures by shard row)
ShardDone = Callable[[int, np.ndarray, dict[int, str]], None]


@dataclass(frozen=True)
class EmbedConfig:
    model: str
    device: str = "auto"
    precision: str = "fp16"
    batch_size: int = 256
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    shard_size: int = 16384
    executor: str = "local"
    progress: bool = True


@dataclass(frozen=True)
class EmbedResult:
    slug: str
    count: int
    embedded: int
    failed: int
    shards_done: int
    shards_skipped: int
    seconds: float
    device: str


def embed(ws: Workspace, config: EmbedConfig) -> EmbedResult:
    """Embed every ok manifest row the model accepts; returns counts and timing."""
    ws.require_manifest()
    start = time.perf_counter()
    if config.batch_size < 1 or config.shard_size < 1:
        raise CurateError("--batch-size and --shard-size must be positive")
    embedder = load_embedder(config.model, ws)
    runtime = resolve_runtime(config.device, config.precision)
    manifest = ws.read_manifest(MANIFEST_COLUMNS)
    rows, skip_reasons = plan_rows(manifest, embedder.kinds)
    shard_size = max(config.batch_size, config.shard_size // config.batch_size * config.batch_size)
    run_fp = fingerprint([__version__, ws.manifest_meta()["fingerprint"], embedder.identity(),
                          runtime.device.type, str(runtime.dtype), config.batch_size, shard_size])
    folder, state = store_dir(ws, embedder.slug), ws.state("embed", embedder.slug)
    meta_loc = folder.join("meta.json")
    if is_done(meta_loc, run_fp):
        meta = atomic.read_json(meta_loc)
        return EmbedResult(embedder.slug, meta["count"], meta["valid"], meta["count"] - meta["valid"],
                           0, meta["shards"], time.perf_counter() - start, runtime.device.type)

    resume = is_done(state.join("run.json"), run_fp)
    if not resume:
        clear(meta_loc)
        _clear_markers(state)
        mark_done(state.join("run.json"), run_fp, model=config.model)
    vectors = create_or_resume(local_path(folder.join("vectors.npy")), len(rows), embedder.dim, resume)

    shards = [(k, rows[s:s + shard_size]) for k, s in enumerate(range(0, len(rows), shard_size))]
    failures: dict[int, str] = {}
    pending = []
    for k, shard in shards:
        marker = state.join(f"shard-{k:05d}.json")
        if is_done(marker, run_fp):
            failures.update({int(i): r for i, r in atomic.read_json(marker)["failures"].items()})
        else:
            pending.append((k, shard))

    bar = tqdm(total=len(rows), desc=f"embed {embedder.slug}", unit=" samples", smoothing=0.05,
               disable=not config.progress or None, initial=len(rows) - sum(len(s) for _, s in pending))

    def done(k: int, block: np.ndarray, shard_failures: dict[int, str]) -> None:
        offset = k * shard_size
        vectors[offset:offset + len(block)] = block
        vectors.flush()
        global_failures = {offset + i: reason for i, reason in shard_failures.items()}
        failures.update(global_failures)
        mark_done(state.join(f"shard-{k:05d}.json"), run_fp, failures={str(i): r for i, r in global_failures.items()})

    settings = LoaderSettings(config.batch_size, config.workers, device_decode=runtime.device.type == "cuda")
    run_executor(config, ws, embedder, runtime, settings, pending, done, bar.update)
    bar.close()

    meta = _finish(ws, embedder, runtime, manifest, rows, skip_reasons, failures, run_fp, len(shards))
    return EmbedResult(embedder.slug, meta["count"], meta["valid"], meta["count"] - meta["valid"],
                       len(pending), len(shards) - len(pending), time.perf_counter() - start,
                       runtime.device.type)


def run_executor(config: EmbedConfig, ws: Workspace, embedder: Embedder, runtime: Runtime,
                 settings: LoaderSettings, pending: list[tuple[int, list[dict]]], done: ShardDone,
                 progress: Callable[[int], None]) -> None:
    """Embed the pending shards locally (one process, loader workers) or on Ray."""
    if config.executor == "ray":
        from curate.embed.ray_executor import run_on_ray

        run_on_ray(config, settings, pending, done, progress, ws.root.uri, embedder.dim)
        return
    if config.executor != "local":
        raise CurateError(f"unknown executor {config.executor!r} (choose local or ray)")
    embedder.setup(runtime)
    for k, shard in pending:
        block, shard_failures = embed_rows(embedder, shard, settings, progress)
        done(k, block, shard_failures)


def plan_rows(manifest: pa.Table, kinds: frozenset[str]) -> tuple[list[dict], dict[int, str]]:
    """Store rows (manifest dicts + ``manifest_row``) and the reason for every other row."""
    rows, reasons = [], {}
    for i, row in enumerate(manifest.to_pylist()):
        if row["status"] != OK:
            reasons[i] = "quarantined"
        elif row["kind"] not in kinds:
            reasons[i] = f"unsupported-kind: this model does not embed {row['kind']} samples"
        else:
            row["manifest_row"] = i
            rows.append(row)
    return rows, reasons


def _finish(ws: Workspace, embedder: Embedder, runtime: Runtime, manifest: pa.Table, rows: list[dict],
            skip_reasons: dict[int, str], failures: dict[int, str], run_fp: str, shards: int) -> dict:
    n = manifest.num_rows
    store_row = np.full(n, -1, dtype=np.int64)
    manifest_rows = np.array([r["manifest_row"] for r in rows], dtype=np.int64)
    store_row[manifest_rows] = np.arange(len(rows))
    reasons: list[str | None] = [skip_reasons.get(i) for i in range(n)]
    for k, reason in failures.items():
        reasons[int(manifest_rows[k])] = reason
    embedded = np.array([r is None for r in reasons])
    status = pa.table({
        "id": manifest.column("id"),
        "embedded": pa.array(embedded),
        "row": pa.array(store_row, mask=store_row < 0),
        "reason": pa.array(reasons, pa.string()),
    })
    ids = pa.table({"id": pa.array([r["id"] for r in rows], pa.string()),
                    "manifest_row": pa.array(manifest_rows, pa.int64()),
                    "content_hash": pa.array([r["content_hash"] for r in rows], pa.string())})
    meta = {"fingerprint": run_fp, "model": embedder.spec, "slug": embedder.slug, "dim": embedder.dim,
            "count": len(rows), "valid": len(rows) - len(failures), "shards": shards,
            "dtype": "float16", "normalised": True, "device": runtime.device.type,
            "precision": str(runtime.dtype).removeprefix("torch."), "identity": embedder.identity(),
            "curate_version": __version__, "manifest_fingerprint": ws.manifest_fingerprint()}
    write_tables(store_dir(ws, embedder.slug), ids, status, meta)
    return meta


def _clear_markers(state) -> None:
    if state.exists():
        for path in state.fs.ls(state.path, detail=False):
            if path.rsplit("/", 1)[-1].startswith("shard-"):
                state.fs.rm(path)
