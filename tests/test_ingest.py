import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.io.atomic import TMP_MARK
from curate.readers.base import ReadOptions
from curate.workspace import Workspace
from tests.conftest import encode_image, write

CONFIG = IngestConfig(read=ReadOptions(workers=2))


def planted_tree(root: Path) -> dict:
    """Images with planted exact copies and corrupt files; returns the ground truth."""
    truth = {"copies": {}, "corrupt": {}}
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            for i in range(6):
                fmt = "JPEG" if i % 2 else "PNG"
                write(root / split / label / f"{i}.{fmt.lower()}",
                      encode_image((24, 16), fmt=fmt, seed=hash((split, label, i)) % 2**32))
    for n, original in enumerate(["train/cat/1.jpeg", "train/dog/2.png", "test/cat/3.jpeg"]):
        copy = f"train/dog/copy{n}{Path(original).suffix}"
        write(root / copy, (root / original).read_bytes())
        truth["copies"][copy] = original
    good = (root / "train/cat/1.jpeg").read_bytes()
    corrupt = {"train/cat/zero.jpeg": (b"", "empty-file"),
               "train/cat/trunc.jpeg": (good[:200], "truncated-image"),
               "test/dog/fake.png": (b"GIF? no.", "not-an-image"),
               "test/dog/readme.txt": (b"notes", "unsupported-file-type")}
    for rel, (data, code) in corrupt.items():
        write(root / rel, data)
        truth["corrupt"][rel] = code
    return truth


def test_planted_tree_every_file_once_and_corrupt_quarantined(tmp_path):
    src = tmp_path / "data"
    truth = planted_tree(src)
    ws = Workspace(str(tmp_path / "ws"))
    result = ingest(ws, [str(src)], CONFIG)
    table = ws.read_manifest()
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    assert sorted(table.column("id").to_pylist()) == [f"data/{f}" for f in files]
    assert result.meta["samples"] == table.num_rows == len(files)
    rows = {r["id"]: r for r in table.to_pylist()}
    for rel, code in truth["corrupt"].items():
        assert rows[f"data/{rel}"]["status"] == "quarantined"
        assert rows[f"data/{rel}"]["reason"].startswith(code + ":")
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) == len(files) - len(truth["corrupt"]) == table.num_rows - result.meta["quarantined"]
    assert all(r["reason"] is None and r["content_hash"] for r in ok)
    assert rows["data/test/cat/0.png"]["split"] == "test"
    assert rows["data/test/cat/0.png"]["label"] == "cat"


def test_rerun_skips_unchanged_units_and_rereads_changed_ones(tmp_path):
    src = tmp_path / "data"
    planted_tree(src)
    ws = Workspace(str(tmp_path / "ws"))
    config = IngestConfig(read=ReadOptions(workers=2, files_per_unit=10))
    first = ingest(ws, [str(src)], config)
    before = {p.name: p.read_bytes() for p in (tmp_path / "ws" / "manifest").iterdir()}
    assert first.meta["units_read"] == 4 and first.meta["units_skipped"] == 0

    again = ingest(ws, [str(src)], config)
    assert again.reused and again.run_id == first.run_id  # every unit unchanged: nothing read
    after = {p.name: p.read_bytes() for p in (tmp_path / "ws" / "manifest").iterdir()}
    assert after == before

    # change one file in the last unit (sorted order: train/dog/... is last)
    target = src / "train" / "dog" / "5.jpeg"
    target.write_bytes(encode_image((30, 30), fmt="JPEG", seed=99))
    third = ingest(ws, [str(src)], config)
    assert (third.meta["units_read"], third.meta["units_skipped"]) == (1, 3)
    row = [r for r in ws.read_manifest().to_pylist() if r["id"] == "data/train/dog/5.jpeg"][0]
    assert (row["width"], row["height"]) == (30, 30)


def test_changed_read_options_invalidate_units(tmp_path):
    src = tmp_path / "data"
    planted_tree(src)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], CONFIG)
    strict = IngestConfig(read=ReadOptions(workers=2, image=__import__(
        "curate.probe.image", fromlist=["ImageCheck"]).ImageCheck(max_pixels=100)))
    result = ingest(ws, [str(src)], strict)
    assert result.meta["units_read"] == 1
    reasons = [r for r in ws.read_manifest().column("reason").to_pylist() if r]
    assert any(r.startswith("decompression-bomb") for r in reasons)


def test_duplicate_ids_are_quarantined_and_renamed(tmp_path):
    a = write(tmp_path / "a.jsonl", b'{"id": "x", "text": "one"}\n{"id": "y", "text": "two"}\n')
    b = write(tmp_path / "b.jsonl", b'{"id": "x", "text": "three"}\n{"id": "x", "text": "four"}\n')
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(a), str(b)], CONFIG)
    rows = ws.read_manifest(["id", "status", "reason", "text"]).to_pylist()
    assert [r["id"] for r in rows] == ["x", "y", "x~dup1", "x~dup2"]
    assert [r["status"] for r in rows] == ["ok", "ok", "quarantined", "quarantined"]
    assert rows[2]["reason"].startswith("duplicate-id: ")
    assert rows[3]["text"] == "four"  # nothing merged: the repeat keeps its own payload


def test_manifest_keeps_source_order(tmp_path):
    a = write(tmp_path / "b_first.jsonl", b'{"text": "1"}\n{"text": "2"}\n')
    b = write(tmp_path / "a_second.jsonl", b'{"text": "3"}\n')
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(a), str(b)], CONFIG)
    assert ws.read_manifest(["id"]).column("id").to_pylist() == ["b_first:1", "b_first:2", "a_second:1"]


def test_manifest_parts_are_split_by_row_count(tmp_path):
    lines = b"".join(b'{"text": "row %d"}\n' % i for i in range(25))
    src = write(tmp_path / "t.jsonl", lines)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig(rows_per_part=10))
    assert ws.manifest_meta()["parts"] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert ws.read_manifest().num_rows == 25
    # fewer rows later: stale parts are removed
    write(tmp_path / "t.jsonl", lines[: lines.index(b'{"text": "row 5"}')])
    ingest(ws, [str(src)], IngestConfig(rows_per_part=10))
    assert sorted(os.listdir(tmp_path / "ws" / "manifest")) == ["_meta.json", "part-00000.parquet"]


def test_fsspec_source_and_workspace_match_the_local_path(tmp_path):
    """memory:// is fsspec's in-process filesystem: a real non-local implementation."""
    src = tmp_path / "data"
    planted_tree(src)
    mem = fsspec.filesystem("memory")
    for path in src.rglob("*"):
        if path.is_file():
            mem.pipe(f"/fsspec-src/data/{path.relative_to(src)}", path.read_bytes())
    local_ws = Workspace(str(tmp_path / "ws"))
    ingest(local_ws, [str(src)], CONFIG)
    remote_ws = Workspace("memory://fsspec-ws")
    ingest(remote_ws, ["memory://fsspec-src/data"], CONFIG)
    local, remote = local_ws.read_manifest(), remote_ws.read_manifest()
    first_source = remote.column("source").to_pylist()[0]
    assert first_source.startswith("memory://") and "/fsspec-src/data/test/cat/" in first_source
    drop = ["source"]
    assert remote.drop(drop).equals(local.drop(drop))
    assert mem.exists("/fsspec-ws/manifest/_meta.json")
    again = ingest(remote_ws, ["memory://fsspec-src/data"], CONFIG)
    assert again.reused


def test_misuse_is_a_one_line_error(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    with pytest.raises(CurateError, match="source not found"):
        ingest(ws, [str(tmp_path / "nope")], CONFIG)
    write(tmp_path / "x.bin", b"?")
    with pytest.raises(CurateError, match="unknown source kind"):
        ingest(ws, [str(tmp_path / "x.bin")], CONFIG)
    with pytest.raises(CurateError, match="no sources"):
        ingest(ws, [], CONFIG)
    assert not (tmp_path / "ws" / "manifest").exists()


def _ingest_cmd(src: Path, ws: Path) -> list[str]:
    return [sys.executable, "-m", "curate", "ingest", str(src), "-w", str(ws), "--no-progress",
            "--workers", "1", "--files-per-unit", "40"]


def _all_parquet_readable(ws: Path) -> None:
    for path in ws.rglob("*.parquet"):
        if TMP_MARK not in path.name:  # temporaries of the killed writer may be partial
            pq.read_table(path)  # a partial file under a final name would fail here


@pytest.mark.slow
def test_kill_minus_nine_then_rerun_gives_identical_manifest(tmp_path):
    src = tmp_path / "data"
    for i in range(400):
        write(src / f"c{i % 4}" / f"{i:04d}.jpg", encode_image((96, 96), fmt="JPEG", seed=i))
    clean = tmp_path / "clean"
    subprocess.run(_ingest_cmd(src, clean), check=True, capture_output=True)
    expected = {p.name: p.read_bytes() for p in (clean / "manifest").iterdir()}

    rng = random.Random(7)
    for attempt, markers_before_kill in enumerate([1, 3, 6, None]):
        ws = tmp_path / f"ws{attempt}"
        proc = subprocess.Popen(_ingest_cmd(src, ws), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        units = ws / "state" / "ingest" / "units"
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            done = len(list(units.glob("*.json"))) if units.exists() else 0
            if markers_before_kill is not None and done >= markers_before_kill:
                break
            if markers_before_kill is None and done >= 1 and rng.random() < 0.02:
                break
            time.sleep(0.002)
        was_running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if markers_before_kill is not None:
            assert was_running, "the kill should land mid-run"
        _all_parquet_readable(ws)
        rerun = subprocess.run(_ingest_cmd(src, ws), capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert "unchanged" in rerun.stdout
        got = {p.name: p.read_bytes() for p in (ws / "manifest").iterdir()}
        assert got == expected
        assert not [p for p in ws.rglob("*") if TMP_MARK in p.name], "leftover temporaries were swept"
        meta = json.loads((ws / "manifest" / "_meta.json").read_text())
        assert meta["count"] == 400


def test_every_sample_missing_its_field_is_one_error_with_the_hint(tmp_path, capsys):
    from curate.cli import main
    from curate.ingest import ingest_config

    src = write(tmp_path / "d.jsonl", b'{"id": "a", "content": "one"}\n{"id": "b", "content": "two"}\n')
    ws = Workspace(str(tmp_path / "ws"))
    with pytest.raises(SystemExit) as exited:
        main(["ingest", str(src), "-w", ws.root.path, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1
    assert err[0] == ("error: all 2 samples lack their payload field, e.g. missing-field: line 1 has no field 'text'; "
                      "the record has: id, content; pass --text-field content; the manifest was left as it was: "
                      "rerun with the right --text-field or --image-field")
    assert not ws.has_manifest()
    ingest(ws, [str(src)], ingest_config({"text_field": "content"}))  # the hinted option
    before = ws.manifest_meta()
    assert before["count"] == 2 and before["quarantined"] == 0
    with pytest.raises(CurateError, match="the manifest was left as it was"):
        ingest(ws, [str(src)], ingest_config({"text_field": "body"}))
    assert ws.manifest_meta() == before  # the good manifest is not replaced by one with nothing in it
    mixed = write(tmp_path / "m.jsonl", b'{"id": "a", "content": "one"}\n{"id": "b", "text": "two"}\n')
    other = Workspace(str(tmp_path / "ws2"))
    ingest(other, [str(mixed)], IngestConfig())  # one usable sample: the other is an ordinary quarantined row
    assert other.read_manifest(["status"]).column("status").to_pylist() == ["quarantined", "ok"]
