"""The small reference flow shared by the fault tests: stage commands and what each stage makes."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.hardening.faults import TMP_MARK, digest, final_files

STAGES = ["ingest", "embed", "dedup", "prune", "select", "export"]
TIMED = {".json"}  # sidecars and markers carry times; everything else must be byte-identical


def stage_args(stage: str, ws: str, sources: list[str]) -> list[str]:
    return {
        "ingest": ["ingest", *sources, "-w", ws, "--files-per-unit", "8", "--workers", "1", "--no-progress"],
        "embed": ["embed", "-w", ws, "--model", "perceptual", "--shard-size", "16", "--batch-size", "8",
                  "--workers", "0", "--no-progress"],
        "dedup": ["dedup", "-w", ws, "--method", "semantic"],
        "prune": ["prune", "-w", ws, "--fraction", "0.8", "--strategy", "kcenter"],
        "select": ["select", "-w", ws, "--strategy", "typiclust", "--budget", "10", "--out", f"{ws}/batch.csv"],
        "export": ["export", "-w", ws, "--name", "t", "--shard-size", "5", "--no-progress"],
    }[stage]


def stage_workspace(flow, stage: str, suffix: str) -> tuple[str, Path, list[str]]:
    """A fresh workspace ``ws-<stage>-<suffix>`` holding the reference state just before ``stage``."""
    root, sources, snaps, _ = flow
    ws_name = f"ws-{stage}-{suffix}"
    ws = root / ws_name
    if snaps[stage].exists():
        shutil.copytree(snaps[stage], ws)
    return ws_name, ws, stage_args(stage, ws_name, sources)


def comparable(ws: Path) -> dict[str, str]:
    """Relative path -> sha256 of every final artifact that carries no time."""
    return {str(p.relative_to(ws)): digest(p) for p in final_files(ws) if p.suffix not in TIMED}


def made_by(rel: str, stage: str) -> bool:
    """Artifacts of ``stage`` and earlier stages in the reference workspace."""
    order = {"manifest": "ingest", "state/ingest": "ingest", "embeddings": "embed", "state/embed": "embed",
             "index": "dedup", "decisions/dedup": "dedup", "decisions/prune": "prune",
             "decisions/select": "select", "batch.csv": "select", "exports": "export"}
    owner = next((s for prefix, s in order.items() if rel.startswith(prefix)), None)
    return owner is not None and STAGES.index(owner) <= STAGES.index(stage)


def swept(rel: Path) -> bool:
    """A rerun sweeps temporaries left by a killed writer anywhere in the workspace (curate.runner)."""
    return TMP_MARK in rel.name


