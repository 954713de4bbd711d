"""``curate embed``: manifest -> embedding store, shard by shard, resumably.

Store rows are the manifest rows that are ``ok`` and of a kind the model embeds, in
manifest order. When the manifest changed since the store was made (a re-ingest), rows
whose content hash the old store holds are copied into the new vector file and only the
others are embedded. Those are cut into shards of ``shard_size`` rows; each finished shard
is written into the preallocated vector file and marked done with the run id (manifest,
model identity, device type, precision, batch and shard size, code version), so a rerun
skips finished shards. The vector file is filled under ``state/embed/<slug>/`` and moved into
the store only when every shard is done, so a finished store stays complete and in use while
a new run (or a failed one) is under way.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import __version__
from curate.embed.base import Embedder, Runtime, resolve_runtime
from curate.embed.registry import FAMILIES, load_embedder
from curate.embed.runner import LoaderSettings, embed_rows
from curate.embed.store import create_or_resume, local_path, store_dir, write_tables
from curate.errors import CurateError
from curate.index.pages import release
from curate.io import atomic
from curate.io.tables import read_table
from curate.manifest import OK, reason_code
from curate.runner import Inputs, Output, RunContext, Stage, StageResult, run_stage
from curate.state import clear, is_done, mark_done
from curate.workspace import Workspace

MODEL_SHARD_ROWS = 16384
NEXT_VECTORS = "vectors.npy"  # under state/embed/<slug>/: the vector file being filled, moved into the store last
IMPORT_SHARD_ROWS = 1 << 18  # rows per shard for precomputed vectors (~128 MB of fp16 at d = 256): few flushes
MANIFEST_COLUMNS = ["id", "source", "source_kind", "offset", "length", "kind", "text", "status", "content_hash"]
IMPORT_COLUMNS = ["id", "source", "source_kind", "kind", "status", "content_hash"]  # no payloads to read

# called on the driver for each finished shard: (shard index, vectors, failures by shard row)
ShardDone = Callable[[int, np.ndarray, dict[int, str]], None]


@dataclass(frozen=True)
class EmbedConfig:
    model: str = "perceptual"
    device: str = "auto"
    precision: str = "fp16"
    batch_size: int = 256
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    shard_size: int | None = None  # None: MODEL_SHARD_ROWS for models, IMPORT_SHARD_ROWS for precomputed vectors
    executor: str = "local"


class Embed(Stage):
    """``curate embed`` on the runner: reads the manifest, writes ``embeddings/<slug>/``.

    Its decision table is the store's status (kept = embedded). A store made for an earlier
    manifest is brought up to date: rows whose content hash it already holds are copied, only
    new or changed rows are embedded (for models whose vectors depend on the content only)."""

    name = "embed"
    config_type = EmbedConfig

    def validate(self, config: EmbedConfig) -> None:
        from curate.embed.base import PRECISIONS

        shard_size = 1 if config.shard_size is None else config.shard_size  # None: chosen per model
        for option, value, low in (("batch-size", config.batch_size, 1), ("shard-size", shard_size, 1),
                                   ("workers", config.workers, 0)):
            if value < low:
                raise CurateError(f"--{option} must be >= {low}, not {value}")
        if config.precision not in PRECISIONS:
            raise CurateError(f"--precision must be one of {', '.join(PRECISIONS)}, not {config.precision!r}")
        if config.executor not in ("local", "ray"):
            raise CurateError(f"unknown executor {config.executor!r} (choose local or ray)")
        if config.executor == "ray":
            from curate.extras import require_ray

            require_ray()  # a missing Ray is a one-line error before the store is touched
        if not config.model.startswith(FAMILIES):
            names = ", ".join(f + "..." if f.endswith(":") else f for f in FAMILIES)
            raise CurateError(f"unknown model {config.model!r}: use {names}")

    def prefix(self, config: EmbedConfig) -> str:
        return "embed"

    def settings(self, config: EmbedConfig) -> dict:
        return {}  # everything that changes vectors is in the inputs (model identity, runtime, batching)

    def check(self, ws: Workspace, config: EmbedConfig) -> None:
        """No ok sample at all is a one-line error before a model is loaded, never an empty store."""
        require_items(ws)

    def resolve(self, ws: Workspace, config: EmbedConfig) -> Inputs:
        embedder = load_embedder(config.model, ws)
        runtime = resolve_runtime(config.device, config.precision)
        manifest = ws.read_manifest(IMPORT_COLUMNS if hasattr(embedder, "import_rows") else MANIFEST_COLUMNS)
        rows, skip_reasons = plan_rows(manifest, embedder.kinds)
        _check_kinds(manifest, rows.num_rows, embedder)
        imported = hasattr(embedder, "import_rows") and config.executor == "local"  # no model: big shards
        wanted = config.shard_size or (IMPORT_SHARD_ROWS if imported else MODEL_SHARD_ROWS)
        shard_size = max(config.batch_size, wanted // config.batch_size * config.batch_size)
        fingerprints = {"manifest": ws.manifest_fingerprint(), "model": embedder.identity(),
                        "device": runtime.device.type, "dtype": str(runtime.dtype), "batch_size": config.batch_size,
                        "shard_size": shard_size}
        return Inputs(fingerprints, {"embedder": embedder, "runtime": runtime, "manifest": manifest, "rows": rows,
                                     "skip_reasons": skip_reasons, "shard_size": shard_size})

    def is_current(self, ws: Workspace, meta: dict) -> bool:
        """Reused while the store it wrote is complete and still the one it wrote."""
        loc = store_dir(ws, meta["slug"]).join("meta.json")
        return loc.exists() and atomic.read_json(loc).get("fingerprint") == meta["store_fingerprint"]

    def compute(self, ctx: RunContext) -> Output:
        return _embed(ctx)


def embed(ws: Workspace, config: EmbedConfig, **run: Any) -> StageResult:
    """Embed every ok manifest row the model accepts (or reuse the finished store)."""
    return run_stage(ws, Embed(), config, **run)


def require_items(ws: Workspace) -> None:
    """Raise ``no items to embed: ...`` when the manifest has no ok sample, naming how many samples
    are quarantined and why (the commonest reason codes, and the first reason in full)."""
    table = ws.read_manifest(["status", "reason"])
    if pc.any(pc.equal(table.column("status"), OK)).as_py():
        return
    if not table.num_rows:
        raise CurateError("no items to embed: the manifest has no samples (its sources were empty)")
    reasons = [r for r in table.column("reason").to_pylist() if r]
    codes = Counter(reason_code(r) for r in reasons).most_common()
    shown = ", ".join(f"{c} {n:,}" for c, n in codes[:5]) + (", ..." if len(codes) > 5 else "")
    example = f"; e.g. {' '.join(reasons[0].split())}" if reasons else ""
    raise CurateError(f"no items to embed: all {table.num_rows:,} items are quarantined ({shown}{example}); fix the "
                      "sources or the ingest options and rerun `curate ingest`")


def _check_kinds(manifest: pa.Table, store_rows: int, embedder: Embedder) -> None:
    """A model that embeds none of the workspace's ok samples is a mistake, not an empty store."""
    if store_rows:
        return
    ok = manifest.filter(pc.equal(manifest.column("status"), OK)).column("kind").to_pylist()
    if ok:
        have = ", ".join(f"{k} {n:,}" for k, n in sorted(Counter(ok).items()))
        raise CurateError(f"model {embedder.spec!r} embeds {' and '.join(sorted(embedder.kinds))} samples; this "
                          f"workspace's ok samples are {have}: choose another --model")


def _embed(ctx: RunContext) -> Output:
    ws, config = ctx.ws, ctx.config
    embedder, runtime, manifest = ctx["embedder"], ctx["runtime"], ctx["manifest"]
    rows, shard_size = ctx["rows"], ctx["shard_size"]
    run_fp = ctx.run_id
    folder, state = store_dir(ws, embedder.slug), ws.state("embed", embedder.slug)
    next_path = local_path(state.join(NEXT_VECTORS))  # this run's vector file until _finish moves it in
    reused_loc = state.join("reused.npy")
    working = _working_file(folder, next_path, run_fp) if is_done(state.join("run.json"), run_fp) else None
    if working is not None:  # resume this run
        reused = np.load(local_path(reused_loc)) if reused_loc.exists() else np.zeros(rows.num_rows, dtype=bool)
        vectors = create_or_resume(working, rows.num_rows, embedder.dim, True)
    else:
        vectors, reused = _start_store(ws, embedder, runtime, rows, state, next_path)
        _save_mask(reused_loc, reused)
        mark_done(state.join("run.json"), run_fp, model=config.model)
    ctx.lap("reuse")

    todo = np.flatnonzero(~reused)
    shards = [(k, todo[s:s + shard_size]) for k, s in enumerate(range(0, len(todo), shard_size))]
    failures: dict[int, str] = {}
    pending = []
    for k, positions in shards:
        marker = state.join(f"shard-{k:05d}.json")
        if is_done(marker, run_fp):
            failures.update({int(i): r for i, r in atomic.read_json(marker)["failures"].items()})
        else:
            pending.append((k, positions))
    where = dict(shards)

    bar = ctx.bar(total=len(todo), desc=f"embed {embedder.slug}", unit=" samples", smoothing=0.05,
                  initial=len(todo) - sum(len(s) for _, s in pending))

    def done(k: int, block: np.ndarray, shard_failures: dict[int, str]) -> None:
        positions = where[k]
        vectors[_as_slice(positions)] = block
        vectors.flush()
        release(vectors)  # written through: its pages need not stay resident (10M x 256 is 5 GB)
        global_failures = {int(positions[i]): reason for i, reason in shard_failures.items()}
        failures.update(global_failures)
        mark_done(state.join(f"shard-{k:05d}.json"), run_fp, failures={str(i): r for i, r in global_failures.items()})

    settings = LoaderSettings(config.batch_size, config.workers, device_decode=runtime.device.type == "cuda")
    run_executor(config, ws, embedder, runtime, settings, rows, pending, done, bar.update)
    bar.close()
    ctx.lap("embed")

    meta, status = _finish(ws, embedder, runtime, manifest, rows, ctx["skip_reasons"], failures, run_fp, len(shards))
    facts = {"slug": embedder.slug, "model": embedder.spec, "count": meta["count"], "embedded": meta["valid"],
             "failed": meta["count"] - meta["valid"], "reused_rows": int(reused.sum()),
             "embedded_now": int(sum(len(p) for _, p in pending)), "shards_done": len(pending),
             "shards_skipped": len(shards) - len(pending), "device": runtime.device.type,
             "store_fingerprint": run_fp}
    table = pa.table({"id": status.column("id"), "kept": status.column("embedded"),
                      "reason": status.column("reason")})
    return Output(table, facts)


def _working_file(folder, next_path: Path, run_fp: str) -> Path | None:
    """The vector file of run ``run_fp`` (the run ``run.json`` names) to resume, else None: in the state
    folder while the run embeds; in the store once :func:`_finish` moved it there, when the finish was cut
    short (no meta.json yet) or only the run's sidecar is missing (meta.json is this run's)."""
    if next_path.exists():
        return next_path
    in_store, meta = local_path(folder.join("vectors.npy")), folder.join("meta.json")
    if in_store.exists() and (not meta.exists() or atomic.read_json(meta).get("fingerprint") == run_fp):
        return in_store
    return None


def _start_store(ws: Workspace, embedder: Embedder, runtime: Runtime, rows: pa.Table, state,
                 next_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A fresh vector file for ``rows`` in the state folder, with the rows an earlier complete store
    already holds copied in. The earlier store stays complete and readable until :func:`_finish`
    replaces it, so a run that fails (a missing GPU, a crash, a full disk) never loses it.

    Returns the writable map and the mask of rows that were copied (not to be embedded again)."""
    old = _reusable_store(ws, embedder, runtime)
    reused = np.zeros(rows.num_rows, dtype=bool)
    tmp = next_path.with_name(atomic.TMP_MARK + next_path.name)
    fresh = create_or_resume(tmp, rows.num_rows, embedder.dim, False)
    if old is not None:
        old_vectors, old_hashes, old_valid = old
        usable = np.flatnonzero(old_valid & pc.is_valid(old_hashes).to_numpy(zero_copy_only=False))
        found = pc.index_in(rows.column("content_hash"), value_set=old_hashes.take(pa.array(usable)))
        found = found.to_numpy(zero_copy_only=False)  # float with NaN where not found
        new_at = np.flatnonzero(~np.isnan(found))
        old_at = usable[found[new_at].astype(np.int64)]
        for lo in range(0, len(new_at), 65536):
            fresh[new_at[lo:lo + 65536]] = old_vectors[old_at[lo:lo + 65536]]
        reused[new_at] = True
    fresh.flush()
    del fresh
    _clear_markers(state)
    tmp.replace(next_path)
    return np.load(next_path, mmap_mode="r+"), reused


def _reusable_store(ws: Workspace, embedder: Embedder, runtime: Runtime):
    """(vectors, content hashes, valid) of a complete store of this model whose vectors can be reused."""
    from curate.embed.store import open_store

    if not embedder.content_addressed or not store_dir(ws, embedder.slug).join("meta.json").exists():
        return None
    store = open_store(ws, embedder.slug, current=False)
    meta = store.meta
    same = (meta.get("identity") == embedder.identity() and meta.get("device") == runtime.device.type
            and meta.get("precision") == str(runtime.dtype).removeprefix("torch."))
    ids = read_table(store_dir(ws, embedder.slug).join("ids.parquet"))
    if not same or "content_hash" not in ids.column_names:
        return None
    return store.vectors, ids.column("content_hash").combine_chunks(), np.asarray(store.valid, dtype=bool)


def _save_mask(loc, mask: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, mask)
    atomic.write_bytes(loc, buf.getvalue())


def run_executor(config: EmbedConfig, ws: Workspace, embedder: Embedder, runtime: Runtime,
                 settings: LoaderSettings, rows: pa.Table, pending: list[tuple[int, np.ndarray]], done: ShardDone,
                 progress: Callable[[int], None]) -> None:
    """Embed the pending shards (store positions into ``rows``) locally or on Ray.

    Locally, vectors that come ready (``precomputed:``) are imported in one vectorised pass
    per shard; models run through the loader (:func:`embed_rows`), one shard's rows at a time."""
    if config.executor == "ray":
        from curate.embed.ray_executor import run_on_ray

        shards = [(k, rows.take(pa.array(positions)).to_pylist()) for k, positions in pending]
        run_on_ray(config, settings, shards, done, progress, ws.root.uri, embedder.dim)
        return
    if config.executor != "local":
        raise CurateError(f"unknown executor {config.executor!r} (choose local or ray)")
    embedder.setup(runtime)
    importer = getattr(embedder, "import_rows", None)
    columns = None
    if importer is not None and getattr(embedder, "column", None):
        from curate.embed.precomputed import ColumnBlocks

        columns = ColumnBlocks(embedder.column, embedder.dim)
    for k, positions in pending:
        at = _as_slice(positions)
        if importer is not None:
            wanted = rows.select(["manifest_row", "source", "source_kind"])
            shard = wanted.slice(at.start, at.stop - at.start) if isinstance(at, slice) else wanted.take(positions)
            block, shard_failures = importer(shard, columns)
            progress(len(positions))
        else:
            block, shard_failures = embed_rows(embedder, rows.take(pa.array(positions)).to_pylist(), settings,
                                               progress)
        done(k, block, shard_failures)


def _as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """``positions`` as a slice when they are consecutive (a memcpy instead of a gather/scatter)."""
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1:
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def plan_rows(manifest: pa.Table, kinds: frozenset[str]) -> tuple[pa.Table, np.ndarray]:
    """Store rows (the manifest rows the model embeds, with ``manifest_row``, in manifest order)
    and, per manifest row, the reason it is not a store row (None for store rows)."""
    ok = pc.equal(manifest.column("status"), OK).to_numpy(zero_copy_only=False)
    kind = manifest.column("kind")
    accepted = pc.is_in(kind, value_set=pa.array(sorted(kinds), pa.string())).to_numpy(zero_copy_only=False)
    take = np.flatnonzero(ok & accepted)
    rows = manifest.take(pa.array(take)).append_column("manifest_row", pa.array(take, pa.int64()))
    reasons = np.full(manifest.num_rows, None, dtype=object)
    reasons[~ok] = "quarantined"
    other = np.flatnonzero(ok & ~accepted)
    if len(other):
        names = kind.take(pa.array(other)).to_numpy(zero_copy_only=False)
        reasons[other] = [f"unsupported-kind: this model does not embed {k} samples" for k in names]
    return rows, reasons


def _finish(ws: Workspace, embedder: Embedder, runtime: Runtime, manifest: pa.Table, rows: pa.Table,
            skip_reasons: np.ndarray, failures: dict[int, str], run_fp: str, shards: int) -> dict:
    n = manifest.num_rows
    store_row = np.full(n, -1, dtype=np.int64)
    manifest_rows = rows.column("manifest_row").to_numpy()
    store_row[manifest_rows] = np.arange(rows.num_rows)
    reasons = skip_reasons.copy()
    for k, reason in failures.items():
        reasons[int(manifest_rows[k])] = reason
    embedded = np.equal(reasons, None)
    status = pa.table({
        "id": manifest.column("id"),
        "embedded": pa.array(embedded, pa.bool_()),
        "row": pa.array(store_row, mask=store_row < 0),
        "reason": pa.array(reasons, pa.string()),
    })
    ids = rows.select(["id", "manifest_row", "content_hash"])
    _move_in(ws, embedder.slug)
    meta = {"fingerprint": run_fp, "model": embedder.spec, "slug": embedder.slug, "dim": embedder.dim,
            "count": rows.num_rows, "valid": rows.num_rows - len(failures), "shards": shards,
            "dtype": "float16", "normalised": True, "device": runtime.device.type,
            "precision": str(runtime.dtype).removeprefix("torch."), "identity": embedder.identity(),
            "curate_version": __version__, "manifest_fingerprint": ws.manifest_fingerprint()}
    write_tables(store_dir(ws, embedder.slug), ids, status, meta)
    return meta, status


def _move_in(ws: Workspace, slug: str) -> None:
    """Replace the store's vector file with this run's: the earlier store is incomplete (no meta.json)
    from here until ``write_tables`` writes the new meta.json, a moment later."""
    folder = store_dir(ws, slug)
    next_path = local_path(ws.state("embed", slug).join(NEXT_VECTORS))
    clear(folder.join("meta.json"))
    if next_path.exists():  # absent when an earlier, cut-short finish moved it (see _working_file)
        vectors_path = local_path(folder.join("vectors.npy"))
        vectors_path.parent.mkdir(parents=True, exist_ok=True)
        next_path.replace(vectors_path)


def _clear_markers(state) -> None:
    if state.exists():
        for path in state.fs.ls(state.path, detail=False):
            if path.rsplit("/", 1)[-1].startswith("shard-"):
                state.fs.rm(path)
