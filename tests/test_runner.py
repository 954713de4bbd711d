"""The stage runner: reuse, sidecar, validation before any write, temp sweep, lock, timings."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pytest

from curate.errors import CurateError
from curate.ingest import ingest
from curate.io import atomic
from curate.runner import Inputs, Output, RunContext, Stage, load_result, run_stage, sweep_workspace
from curate.workspace import Workspace


@dataclass(frozen=True)
class ToyConfig:
    keep_every: int = 2


class Toy(Stage):
    """Keeps every ``keep_every``-th manifest row; counts its computes."""

    name = "toy"
    config_type = ToyConfig

    def __init__(self) -> None:
        self.computed = 0

    def validate(self, config: ToyConfig) -> None:
        if config.keep_every < 1:
            raise CurateError("--keep-every must be >= 1")

    def resolve(self, ws: Workspace, config: ToyConfig) -> Inputs:
        return Inputs({"manifest": ws.manifest_fingerprint()})

    def compute(self, ctx: RunContext) -> Output:
        self.computed += 1
        ids = ctx.ws.read_manifest(["id"]).column("id")
        kept = [i % ctx.config.keep_every == 0 for i in range(len(ids))]
        ctx.lap("keep")
        return Output(pa.table({"id": ids, "kept": kept,
                                "reason": [None if k else "skipped" for k in kept]}), {"every": ctx.config.keep_every})


@pytest.fixture
def ws(tmp_path):
    src = tmp_path / "texts.jsonl"
    src.write_text("".join(f'{{"id": "t{i}", "text": "text number {i}"}}\n' for i in range(7)))
    workspace = Workspace(str(tmp_path / "ws"))
    ingest(workspace, [str(src)])
    return workspace


def test_run_writes_table_and_sidecar_then_reuses(ws):
    stage = Toy()
    first = run_stage(ws, stage, ToyConfig(), progress=False)
    assert not first.reused and stage.computed == 1
    assert first.table.column("kept").to_pylist() == [True, False, True, False, True, False, True]
    assert first.meta["counts"] == {"kept": 4, "skipped": 3}
    assert first.meta["every"] == 2 and "keep" in first.meta["seconds"]
    assert first.meta["inputs"]["manifest"] == ws.manifest_fingerprint()
    assert first.path.exists() and first.run_id.startswith("toy-")
    again = run_stage(ws, stage, ToyConfig(), progress=False)
    assert again.reused and stage.computed == 1 and again.run_id == first.run_id
    assert again.table.equals(first.table)
    other = run_stage(ws, stage, ToyConfig(keep_every=3), progress=False)
    assert other.run_id != first.run_id and stage.computed == 2
    forced = run_stage(ws, stage, ToyConfig(), progress=False, force=True)
    assert not forced.reused and stage.computed == 3 and forced.run_id == first.run_id


def test_invalid_config_touches_nothing(ws):
    before = sorted(p for p in ws.root.fs.find(ws.root.path))
    with pytest.raises(CurateError, match="keep-every"):
        run_stage(ws, Toy(), ToyConfig(keep_every=0))
    assert sorted(ws.root.fs.find(ws.root.path)) == before


def test_a_run_without_its_sidecar_is_not_reused(ws):
    stage = Toy()
    first = run_stage(ws, stage, ToyConfig(), progress=False)
    ws.decisions("toy").join(f"{first.run_id}.json").fs.rm(ws.decisions("toy").join(f"{first.run_id}.json").path)
    assert load_result(ws, stage, first.run_id) is None
    assert not run_stage(ws, stage, ToyConfig(), progress=False).reused


def test_temporaries_anywhere_in_the_workspace_are_swept(ws):
    deep = ws.loc("embeddings", "model", f"{atomic.TMP_MARK}abc-vectors.npy")
    other = ws.loc("state", "embed", "model", f"{atomic.TMP_MARK}def-shard-00000.json")
    index = ws.loc("index", "model", f"{atomic.TMP_MARK}0123-index.faiss")
    for loc in (deep, other, index):
        loc.fs.makedirs(loc.path.rpartition("/")[0], exist_ok=True)
        loc.fs.pipe_file(loc.path, b"partial")
    run_stage(ws, Toy(), ToyConfig(), progress=False)
    assert not any(loc.exists() for loc in (deep, other, index))
    assert sweep_workspace(ws) == 0


@dataclass(frozen=True)
class DeviceConfig:
    device: str = "auto"
    executor: str = "local"


class Where(Toy):
    name = "where"
    config_type = DeviceConfig

    def validate(self, config: DeviceConfig) -> None:
        return None

    def compute(self, ctx: RunContext) -> Output:
        self.seen = ctx.config.device
        return Output(None, {"device": ctx.config.device})


def test_auto_device_is_resolved_once_and_recorded_unless_work_goes_to_ray(ws):
    import torch

    stage = Where()
    result = run_stage(ws, stage, DeviceConfig(), progress=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert stage.seen == expected and result.meta["config"]["device"] == expected and result.table is None
    run_stage(ws, stage, DeviceConfig(executor="ray"), progress=False)
    assert stage.seen == "auto"
