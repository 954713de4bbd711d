"""Human review as an input: keep or remove an id in one stage's decisions, with a note.

Overrides live in ``WS/review/overrides.json`` (``{"format": 1, "overrides": [record, ...]}``),
one record per call: ``stage``, ``id``, ``action`` (``keep`` | ``remove``), ``note`` and ``at``
(UNIX seconds). The newest record of a (stage, id) pair is the one in force; ``forget``
records drop a pair. Each deciding stage reads the records in force for it as a typed input
(``curate.inputs.Overrides``): they are fingerprinted (so a rerun is reused until they change)
and applied after the stage computes, so the decision table shows them: ``kept`` as asked,
``reason = "override: <note>"`` and an ``overridden`` column. Ids that are not in the
manifest are reported and never applied.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location
from curate.io.hashing import fingerprint
from curate.workspace import Workspace

FORMAT = 1
ACTIONS = ("keep", "remove", "forget")
STAGES = ("dedup", "prune", "select", "audit")
MAX_NOTE = 500


@dataclass(frozen=True)
class Override:
    """One review decision: keep or remove ``id`` in ``stage``'s decisions (``forget`` drops it)."""

    stage: str
    id: str
    action: str
    note: str = ""
    at: float = 0.0

    @property
    def reason(self) -> str:
        return f"override: {self.note or self.action}"


def overrides_path(ws: Workspace) -> Location:
    return ws.loc("review", "overrides.json")


def check(stage: str, action: str, note: str = "") -> None:
    """One-line errors for a record that cannot be applied."""
    if stage not in STAGES:
        raise CurateError(f"--stage must be one of {', '.join(STAGES)}, not {stage!r}")
    if action not in ACTIONS:
        raise CurateError(f"unknown override action {action!r} (one of {', '.join(ACTIONS)})")
    if len(note) > MAX_NOTE or any(ord(c) < 32 for c in note):
        raise CurateError(f"--note must be one line of at most {MAX_NOTE} characters")


def read_all(ws: Workspace) -> list[Override]:
    """Every record ever written, oldest first (an absent file is no overrides)."""
    loc = overrides_path(ws)
    if not loc.exists():
        return []
    data = atomic.read_json(loc)
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("overrides"), list):
        raise CurateError(f"{loc.uri} is not a curate overrides file (format {FORMAT}); fix or remove it")
    return [_record(r, loc.uri) for r in data["overrides"]]


def _record(raw: object, where: str) -> Override:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise CurateError(f"{where}: an override record needs a string 'id': {str(raw)[:80]}")
    rec = Override(str(raw.get("stage", "")), raw["id"], str(raw.get("action", "")), str(raw.get("note") or ""),
                   float(raw.get("at") or 0.0))
    check(rec.stage, rec.action, rec.note)
    return rec


def in_force(records: Iterable[Override], stage: str) -> dict[str, Override]:
    """id -> the newest keep/remove record of ``stage`` (a later ``forget`` drops the id)."""
    current: dict[str, Override] = {}
    for rec in records:
        if rec.stage != stage:
            continue
        if rec.action == "forget":
            current.pop(rec.id, None)
        else:
            current[rec.id] = rec
    return dict(sorted(current.items()))


def add(ws: Workspace, records: list[Override]) -> list[Override]:
    """Append ``records`` (stamped now when they carry no time) to the workspace's file, atomically."""
    for rec in records:
        check(rec.stage, rec.action, rec.note)
    now = time.time()
    stamped = [rec if rec.at else Override(rec.stage, rec.id, rec.action, rec.note, now) for rec in records]
    every = read_all(ws) + stamped
    atomic.write_json(overrides_path(ws), {"format": FORMAT, "overrides": [_plain(r) for r in every]})
    return stamped


def _plain(rec: Override) -> dict:
    return {"stage": rec.stage, "id": rec.id, "action": rec.action, "note": rec.note, "at": rec.at}


def load_file(path: str, default_stage: str | None = None) -> list[Override]:
    """Records from a file the report's review page saved (same format; ``stage`` may be left out
    when ``default_stage`` is given)."""
    import json

    from curate.io.fs import CAP_ID_LIST, read_user_file

    try:
        data = json.loads(read_user_file(path, what="--from", max_bytes=CAP_ID_LIST))
    except ValueError as exc:
        raise CurateError(f"--from {path}: not a JSON file ({exc})") from None
    raw = data.get("overrides") if isinstance(data, dict) else data
    if not isinstance(raw, list):
        raise CurateError(f"{path}: expected a JSON list of overrides, or {{\"overrides\": [...]}}")
    records = []
    for item in raw:
        if isinstance(item, dict) and not item.get("stage") and default_stage:
            item = {**item, "stage": default_stage}
        records.append(_record(item, path))
    return records


@dataclass(frozen=True)
class StageOverrides:
    """The records in force for one stage, split by whether the manifest has their id."""

    stage: str
    records: dict[str, Override]  # id -> record, ids in the manifest only
    unknown: tuple[str, ...]  # ids not in the manifest: reported, never applied

    @property
    def fingerprint(self) -> str | None:
        """Changes exactly when what would be applied changes (None when nothing is)."""
        if not self.records:
            return None
        return fingerprint([[i, r.action, r.note] for i, r in self.records.items()])

    def apply(self, table: pa.Table) -> pa.Table:
        """``table`` with the overrides applied (``kept``, ``reason``) and an ``overridden`` column."""
        ids = table.column("id").to_pylist()
        kept = table.column("kept").to_numpy(zero_copy_only=False).astype(bool).copy()
        reason = table.column("reason").to_pylist()
        overridden = np.zeros(len(ids), dtype=bool)
        for row, sid in enumerate(ids):
            rec = self.records.get(sid)
            if rec is not None:
                kept[row] = rec.action == "keep"
                reason[row] = rec.reason
                overridden[row] = True
        out = table.set_column(table.schema.get_field_index("kept"), "kept", pa.array(kept))
        out = out.set_column(out.schema.get_field_index("reason"), "reason", pa.array(reason, pa.string()))
        if "overridden" in out.column_names:
            out = out.drop_columns(["overridden"])
        return out.append_column("overridden", pa.array(overridden))

    def facts(self) -> dict:
        return {"overrides": {"applied": len(self.records), "unknown_ids": list(self.unknown[:20]),
                              "unknown": len(self.unknown)}}


def for_stage(ws: Workspace, stage: str, manifest_ids: pa.ChunkedArray) -> StageOverrides:
    """The overrides in force for ``stage``, with the ids the manifest lacks set apart."""
    import pyarrow.compute as pc

    current = in_force(read_all(ws), stage)
    if not current:
        return StageOverrides(stage, {}, ())
    asked = pa.array(list(current), pa.string())
    known = set(manifest_ids.filter(pc.is_in(manifest_ids, value_set=asked)).to_pylist())
    return StageOverrides(stage, {i: r for i, r in current.items() if i in known},
                          tuple(i for i in current if i not in known))
