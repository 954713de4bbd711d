"""Mining queries: workspace ids, or external images / texts embedded exactly like the store.

``--queries`` is one of

- a text / CSV / Parquet list of workspace ids (one per line, or an ``id`` column): their stored
  vectors are the queries (e.g. the evaluation items the model got wrong);
- a folder: every image file (by extension) and ``.txt`` file under it, sorted by path;
- a ``.jsonl`` file: one object per line with ``text``, or ``image`` / ``path`` (an image file,
  relative to the JSONL's folder), and optionally ``id``.

External items are embedded with the store's own model spec (its ``meta.json``) through the
embed stage's ``prepare`` / ``forward`` path (``embed_rows``), so an external copy of a
workspace image gets cosine ~1 to it; the embedder's identity must equal the store's. An item
the embedder cannot read, a kind it does not embed, or a workspace id without an embedding is
reported in ``failures``, not fatal; unknown workspace ids are an error (a wrong workspace).
Every file is read through :func:`curate.io.fs.read_user_file`: a FIFO or device given as
``--queries`` is a one-line error, one inside a query folder a failure of that item.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from curate.embed.store import StoredEmbeddings
from curate.errors import CurateError
from curate.io.fs import CAP_ID_LIST, CAP_PAYLOAD, Location, UserFileError, locate, read_user_file

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
_PRECISION = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


@dataclass(frozen=True)
class Queries:
    vectors: np.ndarray  # [Q, d] float32 unit rows
    names: list[str]  # workspace id, or the external item's id / relative path
    manifest_rows: np.ndarray  # int64 [Q]: manifest row of a workspace query, -1 for external ones
    failures: list[tuple[str, str]]  # (name, reason) of the queries that could not be used
    external: bool


def is_external(path: str) -> bool:
    loc = locate(path)
    return loc.isdir() or loc.path.lower().endswith(JSONL_EXTENSIONS)


def describe(path: str) -> list:
    """What identifies the query input for the run fingerprint: uri, size, mtime (per file of a folder)."""
    loc = locate(path)
    if not loc.exists():
        raise CurateError(f"--queries {path!r} not found")
    files = sorted(loc.fs.find(loc.path)) if loc.isdir() else [loc.path]
    out = [loc.uri]
    for f in files:
        info = loc.fs.info(f)
        out.append([f, info.get("size"), info.get("mtime") or info.get("LastModified") or info.get("ETag")])
    return out


def load_queries(path: str, store: StoredEmbeddings, manifest_ids: list[str],
                 device: str | torch.device = "auto") -> Queries:
    """The query vectors for ``path`` (see the module docstring); a CurateError when none is usable.

    An empty, all-blank or unreadable file is a one-line CurateError naming the file, never a traceback.
    """
    if not locate(path).exists():
        raise CurateError(f"--queries {path!r} not found")
    try:
        queries = _external(path, store, device) if is_external(path) else _workspace(path, store, manifest_ids)
    except CurateError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CurateError(f"--queries {path}: cannot read it ({detail})") from None
    if not len(queries.names):
        detail = (f" (first: {queries.failures[0][0]}: {queries.failures[0][1]})" if queries.failures
                  else " (it holds no items)")
        raise CurateError(f"--queries {path}: no usable query{detail}")
    return queries


def _workspace(path: str, store: StoredEmbeddings, manifest_ids: list[str]) -> Queries:
    from curate.select.idlist import read_ids

    ids = read_ids(path, what="--queries")
    if not ids:
        raise CurateError(f"--queries {path}: the file is empty (no ids: one workspace id per line, or an "
                          "`id` column; for external items give a folder or a .jsonl file)")
    index = {v: i for i, v in enumerate(manifest_ids)}
    unknown = [v for v in ids if v not in index]
    if unknown:
        raise CurateError(f"--queries {path}: {len(unknown)} ids are not in this workspace (first: {unknown[0]!r}); "
                          "for external items give a folder or a .jsonl file")
    store_row = np.full(len(manifest_ids), -1, dtype=np.int64)
    store_row[store.manifest_rows[store.valid]] = np.flatnonzero(store.valid)
    names, rows, failures = [], [], []
    for v in ids:
        if store_row[index[v]] < 0:
            failures.append((v, "no-embedding: quarantined, not embedded or embedding failed"))
        else:
            names.append(v)
            rows.append(index[v])
    mrows = np.asarray(rows, dtype=np.int64)
    vectors = np.asarray(store.vectors[np.sort(store_row[mrows])], dtype=np.float32)
    vectors = vectors[np.argsort(np.argsort(store_row[mrows]))]  # back to file order
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    return Queries(vectors.reshape(len(names), store.vectors.shape[1]), names, mrows, failures, external=False)


def _items(path: str) -> tuple[list[str], list[dict], list[tuple[str, str]]]:
    """(names, embed rows, failures) of an external folder or JSONL file."""
    loc = locate(path)
    names, rows, failures = [], [], []
    if loc.isdir():
        for f in sorted(loc.fs.find(loc.path)):
            rel = posixpath.relpath(f, loc.path)
            if rel.rsplit("/", 1)[-1].startswith("."):
                continue
            lower = f.lower()
            if lower.endswith(IMAGE_EXTENSIONS):
                names.append(rel)
                rows.append(_image_row(Location(loc.fs, f)))
            elif lower.endswith(".txt"):
                try:
                    data = read_user_file(Location(loc.fs, f), what="--queries item", max_bytes=CAP_PAYLOAD)
                except UserFileError as exc:
                    failures.append((rel, exc.reason))
                    continue
                names.append(rel)
                rows.append({"kind": "text", "text": data.decode("utf-8", "replace")})
            else:
                failures.append((rel, "unsupported-file: not an image or .txt file"))
        return names, rows, failures
    parent = posixpath.dirname(loc.path)
    text = read_user_file(loc, what="--queries", max_bytes=CAP_ID_LIST).decode("utf-8", "replace")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name = f"{loc.name}#line={n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            failures.append((name, f"bad-json: {exc}"))
            continue
        if not isinstance(obj, dict):
            failures.append((name, "bad-json: not an object"))
            continue
        name = str(obj.get("id", name))
        image = obj.get("image", obj.get("path"))
        if isinstance(obj.get("text"), str):
            names.append(name)
            rows.append({"kind": "text", "text": obj["text"]})
        elif isinstance(image, str):
            target = image if "://" in image or image.startswith("/") else posixpath.join(parent, image)
            names.append(name)
            rows.append(_image_row(Location(loc.fs, target) if "://" not in image else locate(image)))
        else:
            failures.append((name, "no-payload: needs a `text` or `image` field"))
    return names, rows, failures


def _image_row(loc: Location) -> dict:
    return {"kind": "image", "source": loc.uri, "source_kind": "file", "text": None}


def _external(path: str, store: StoredEmbeddings, device: str | torch.device) -> Queries:
    from curate.embed.base import resolve_runtime
    from curate.embed.registry import load_embedder
    from curate.embed.runner import LoaderSettings, embed_rows

    spec = store.meta["model"]
    if spec.startswith("precomputed:"):
        raise CurateError(f"the store holds bring-your-own embeddings ({spec}): external queries cannot be "
                          "embedded; give workspace ids (or embed the workspace with a model)")
    embedder = load_embedder(spec)
    if json.loads(json.dumps(embedder.identity())) != store.meta.get("identity"):
        raise CurateError(f"model {spec!r} here differs from the one that embedded the store (weights or "
                          "version changed): re-embed the workspace")
    names, rows, failures = _items(path)
    keep = [i for i, r in enumerate(rows) if r["kind"] in embedder.kinds]
    failures += [(names[i], f"unsupported-kind: {spec} does not embed {rows[i]['kind']} samples")
                 for i in range(len(rows)) if i not in set(keep)]
    names, rows = [names[i] for i in keep], [rows[i] for i in keep]
    if not rows:
        return Queries(np.empty((0, store.vectors.shape[1]), np.float32), [], np.empty(0, np.int64), failures, True)
    runtime = resolve_runtime(device, _PRECISION.get(store.meta.get("precision"), "fp16"))
    embedder.setup(runtime)
    vectors, failed = embed_rows(embedder, rows, LoaderSettings(batch_size=64, workers=0,
                                                                 device_decode=runtime.device.type == "cuda"))
    failures += [(names[i], reason) for i, reason in sorted(failed.items())]
    ok = [i for i in range(len(rows)) if i not in failed]
    vectors = vectors[ok].astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    return Queries(vectors, [names[i] for i in ok], np.full(len(ok), -1, np.int64), failures, True)
