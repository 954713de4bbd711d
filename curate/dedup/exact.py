"""Exact dedup: samples with the same content hash are one group; one copy is kept.

Keep rule: the first copy in manifest (ingest) order is kept - sources in the order
they were given to ``curate ingest``, then sorted path/row order within a source - so
the result depends only on the manifest. Quarantined samples are never grouped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError
from curate.inputs import Manifest, Overrides
from curate.manifest import OK
from curate.runner import Output, RunContext, Stage, StageResult, run_stage
from curate.workspace import Workspace

STAGE = "dedup"
DECISION_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("kept", pa.bool_(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("duplicate_of", pa.string()),
    pa.field("group", pa.int64()),
])


@dataclass(frozen=True)
class ExactDedupConfig:
    """Exact dedup has one keep rule today (first in manifest order); the field is explicit
    so later rules change the run id."""

    keep: str = "first"


class ExactDedup(Stage):
    """``curate dedup --method exact`` on the runner: reads only the manifest."""

    name = STAGE
    config_type = ExactDedupConfig

    def validate(self, config: ExactDedupConfig) -> None:
        if config.keep != "first":
            raise CurateError(f"exact dedup keeps the first copy in manifest order (keep='first'), not {config.keep!r}")

    def prefix(self, config: ExactDedupConfig) -> str:
        return "exact"

    def inputs(self, config: ExactDedupConfig) -> tuple:
        return (Manifest(), Overrides())

    def compute(self, ctx: RunContext) -> Output:
        table = ctx.ws.read_manifest(["id", "content_hash", "status"])
        return Output(exact_decisions(table), {"method": "exact"})


def exact_dedup(ws: Workspace, config: ExactDedupConfig = ExactDedupConfig(), **run: Any) -> StageResult:
    """Group identical payloads; write (or reuse) ``decisions/dedup/<run-id>.parquet``."""
    return run_stage(ws, ExactDedup(), config, **run)


def exact_decisions(table: pa.Table) -> pa.Table:
    """Decision table for a manifest slice with ``id``, ``content_hash`` and ``status``."""
    n = table.num_rows
    ids = table.column("id").combine_chunks()
    ok = pc.equal(table.column("status"), OK).to_numpy(zero_copy_only=False)
    # Quarantined rows get a null hash so they never join a group.
    hashes = pc.if_else(ok, table.column("content_hash"), pa.scalar(None, pa.string()))
    indices = pc.dictionary_encode(hashes.combine_chunks()).indices
    codes = pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)

    in_group = codes >= 0
    n_codes = int(codes.max()) + 1 if in_group.any() else 0
    sizes = np.bincount(codes[in_group], minlength=n_codes)
    first = np.full(n_codes, n, dtype=np.int64)
    np.minimum.at(first, codes[in_group], np.flatnonzero(in_group))
    # Groups are numbered by the manifest position of their kept copy.
    multi = np.flatnonzero(sizes > 1)
    group_of_code = np.full(n_codes, -1, dtype=np.int64)
    group_of_code[multi[np.argsort(first[multi], kind="stable")]] = np.arange(len(multi))

    keeper = np.where(in_group, first[np.maximum(codes, 0)], -1)
    group = np.where(in_group, group_of_code[np.maximum(codes, 0)], -1)
    is_dup = in_group & (keeper != np.arange(n))
    kept = ok & ~is_dup
    reason = np.where(~ok, "quarantined", np.where(is_dup, "exact-duplicate", None))
    dup_of = pc.take(ids, pa.array(np.where(is_dup, keeper, 0))) if n else ids
    return pa.table({
        "id": ids,
        "kept": pa.array(kept, pa.bool_()),
        "reason": pa.array(reason.tolist(), pa.string()),
        "duplicate_of": pc.if_else(pa.array(is_dup), dup_of, pa.scalar(None, pa.string())),
        "group": pa.array(group, pa.int64(), mask=group < 0),
    }, schema=DECISION_SCHEMA)
