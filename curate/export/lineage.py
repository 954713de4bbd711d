"""``lineage.json``: which inputs, stage runs and code produced an export, and where every sample went.

Counts are kept per stage as ``in`` / ``out`` / ``removed`` by reason code, and they add up:
every manifest row is either exported or removed by exactly one stage (``accounted``).
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from importlib import metadata

import numpy as np
import pyarrow as pa

from curate import __version__
from curate.decisions import Upstream
from curate.export.shards import ShardInfo
from curate.io.fs import locate
from curate.manifest import reason_code

PACKAGES = ("numpy", "pyarrow", "torch", "torchvision", "open_clip_torch", "faiss-cpu", "faiss-gpu-cu12", "triton",
            "pillow", "scikit-learn", "ray", "fsspec")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape results (absent ones are left out)."""
    found = {"curate": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def stage_counts(manifest: pa.Table, up: Upstream) -> list[dict]:
    """Per stage, rows in and out and the removed ones by reason code (ingest first, then each run)."""
    status = manifest.column("status").to_pylist()
    alive = np.array([s == "ok" for s in status], dtype=bool)
    m_reasons = manifest.column("reason").to_pylist()
    removed = Counter(reason_code(m_reasons[i]) or "quarantined" for i in np.flatnonzero(~alive))
    rows = [{"stage": "ingest", "in": len(status), "out": int(alive.sum()), "removed": dict(sorted(removed.items()))}]
    for run in up.runs:
        kept = run.table.column("kept").to_numpy(zero_copy_only=False).astype(bool)
        reasons = run.table.column("reason").to_pylist()
        gone = alive & ~kept
        removed = Counter(reason_code(reasons[i]) or "removed" for i in np.flatnonzero(gone))
        rows.append({"stage": run.stage, "run_id": run.run_id, "in": int(alive.sum()), "out": int((alive & kept).sum()),
                     "removed": dict(sorted(removed.items()))})
        alive &= kept
    return rows


def label_counts(manifest: pa.Table, mask: np.ndarray | None = None) -> dict[str, int]:
    labels = manifest.column("label").to_pylist()
    chosen = labels if mask is None else [labels[i] for i in np.flatnonzero(mask)]
    return dict(sorted(Counter("(none)" if x is None else x for x in chosen).items()))


def build_lineage(*, version: str, name: str, fmt: str, settings: dict, ws_uri: str, manifest_meta: dict,
                  manifest: pa.Table, up: Upstream, run_meta: dict[str, dict], shards: list[ShardInfo]) -> dict:
    """The whole lineage record (JSON-ready)."""
    counts = stage_counts(manifest, up)
    exported = int(sum(s.samples for s in shards))
    removed_total = sum(sum(stage["removed"].values()) for stage in counts)
    return {
        "version": version,
        "name": name,
        "format": fmt,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": settings,
        "inputs": {
            "workspace": ws_uri,
            "manifest_fingerprint": manifest_meta.get("fingerprint"),
            "manifest_rows": manifest.num_rows,
            "sources": [locate(s).uri for s in manifest_meta.get("sources", [])],
        },
        "stages": [
            {"stage": run.stage, "run_id": run.run_id, "decision_file": run.path.uri,
             "config": run_meta[run.stage].get("config"), "model": run_meta[run.stage].get("model"),
             "store_fingerprint": run_meta[run.stage].get("store_fingerprint"),
             "method": run_meta[run.stage].get("method")}
            for run in up.runs
        ],
        "counts": {
            "stages": counts,
            "exported": exported,
            "accounted": exported + removed_total == manifest.num_rows,
        },
        "labels": {"before": label_counts(manifest), "after": label_counts(manifest, up.kept)},
        "shards": [{"name": s.name, "split": s.split, "samples": s.samples, "bytes": s.bytes, "sha256": s.sha256}
                   for s in shards],
        "packages": package_versions(),
    }
