"""Review overrides: recorded by `curate override`, applied by the stage after computing, visible in
its table, followed downstream (prune, export), and part of the run id only while in force."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from curate.decisions import latest_run
from curate.workspace import Workspace
from tests.conftest import run_cli, write

TEXTS = ["alpha beta", "alpha beta", "gamma delta", "gamma delta", "epsilon", "zeta eta"]


cli = run_cli


@pytest.fixture
def ws(tmp_path, capsys):
    rows = [{"id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)]
    src = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    root = str(tmp_path / "ws")
    assert cli(capsys, "ingest", str(src), "-w", root, "--no-progress")[0] == 0
    return root


def dedup(capsys, root):
    code, out, err = cli(capsys, "dedup", "-w", root, "--method", "exact", "--no-progress")
    assert code == 0, err
    return latest_run(Workspace(root), "dedup")


def test_an_override_changes_the_run_survives_reruns_and_reaches_the_export(ws, capsys, tmp_path):
    base = dedup(capsys, ws)
    assert base.table.column("kept").to_pylist() == [True, False, True, False, True, True]
    assert "overridden" not in base.table.column_names  # no review: the table is as it always was

    code, out, err = cli(capsys, "override", "-w", ws, "--stage", "dedup", "--keep", "t1", "--remove", "t5",
                         "--note", "checked by hand")
    assert code == 0, err
    assert "recorded 2 override(s)" in out and "keep   t1" in out

    over = dedup(capsys, ws)
    assert over.run_id != base.run_id
    table = over.table.to_pydict()
    assert table["kept"] == [True, True, True, False, True, False]
    assert table["overridden"] == [False, True, False, False, False, True]
    assert table["reason"][1] == table["reason"][5] == "override: checked by hand"
    assert over.meta["overrides"]["applied"] == 2
    assert dedup(capsys, ws).run_id == over.run_id  # a rerun is reused while the overrides stay

    code, _, err = cli(capsys, "export", "-w", ws, "--out", str(tmp_path / "out"), "--no-progress")
    assert code == 0, err
    run = latest_run(Workspace(ws), "export")
    samples = pq.read_table(f"{run.meta['folder']}/samples.parquet").to_pydict()
    exported = {i for i, e in zip(samples["id"], samples["exported"]) if e}
    assert exported == {"t0", "t1", "t2", "t4"}

    assert cli(capsys, "override", "-w", ws, "--stage", "dedup", "--forget", "t1", "--forget", "t5")[0] == 0
    assert dedup(capsys, ws).run_id == base.run_id  # back to no overrides: the first run, reused


def test_overrides_reach_prune(ws, capsys):
    dedup(capsys, ws)
    assert cli(capsys, "override", "-w", ws, "--stage", "dedup", "--keep", "t3")[0] == 0
    dedup(capsys, ws)
    prune = cli(capsys, "embed", "-w", ws, "--model", "minilm", "--no-progress")
    assert prune[0] == 0, prune[2]
    code, _, err = cli(capsys, "prune", "-w", ws, "--fraction", "1", "--no-progress")
    assert code == 0, err
    table = latest_run(Workspace(ws), "prune").table.to_pydict()
    assert table["kept"][3] is True and table["kept"][1] is False


def test_unknown_ids_are_listed_and_never_applied(ws, capsys):
    base = dedup(capsys, ws)
    code, out, _ = cli(capsys, "override", "-w", ws, "--stage", "dedup", "--remove", "nope")
    assert code == 0 and "not in the manifest (not applied): nope" in out
    assert dedup(capsys, ws).run_id == base.run_id


def test_override_from_the_review_file_and_bad_input(ws, capsys, tmp_path):
    dedup(capsys, ws)
    saved = write(tmp_path / "overrides.json", json.dumps({"format": 1, "overrides": [
        {"stage": "dedup", "id": "t3", "action": "keep", "note": "not duplicates (group 1)"}]}).encode())
    assert cli(capsys, "override", "-w", ws, "--from", str(saved))[0] == 0
    assert dedup(capsys, ws).table.column("kept").to_pylist()[3] is True
    code, _, err = cli(capsys, "override", "-w", ws, "--keep", "t0")
    assert code == 2 and err.strip() == "error: --keep/--remove/--forget need --stage (dedup, prune, select or audit)"
    code, _, err = cli(capsys, "override", "-w", ws, "--from", "/dev/zero")
    assert code == 2 and "not a regular file" in err and err.count("\n") == 1


def test_select_picks_what_review_keeps_and_never_what_it_removes(tmp_path):
    import numpy as np

    from curate.overrides import Override, add
    from curate.select.stage import picked, select, select_config
    from tests.conftest import vector_workspace

    ws = vector_workspace(tmp_path, "s", np.random.default_rng(0).normal(size=(12, 4)))
    config = select_config(budget=3, strategy="typiclust", out=str(tmp_path / "batch.csv"))
    first = picked(select(ws, config, progress=False))
    barred, wanted = first[0], next(f"s{i}" for i in range(12) if f"s{i}" not in first)
    add(ws, [Override("select", barred, "remove", "already labeled elsewhere"),
             Override("select", wanted, "keep", "label this one")])
    config = select_config(budget=3, strategy="typiclust", out=str(tmp_path / "batch2.csv"))
    result = select(ws, config, progress=False)
    again = picked(result)
    assert len(again) == 3 and again[0] == wanted and barred not in again
    rows = dict(zip(result.table.column("id").to_pylist(), result.table.column("reason").to_pylist()))
    assert rows[barred] == "override: already labeled elsewhere" and rows[wanted] == "override: label this one"
    batch = (tmp_path / "batch2.csv").read_text().splitlines()
    assert [line.split(",")[0].strip('"') for line in batch[1:]] == again
    assert select(ws, config, progress=False).run_id == result.run_id


def test_the_run_reused_last_is_the_latest(ws, capsys):
    """Rerunning an older config makes its reused run the one prune and export read."""
    exact = dedup(capsys, ws)
    assert cli(capsys, "dedup", "-w", ws, "--method", "fuzzy", "--no-progress")[0] == 0
    assert latest_run(Workspace(ws), "dedup").run_id.startswith("fuzzy-")
    assert dedup(capsys, ws).run_id == exact.run_id
