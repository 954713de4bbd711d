"""Sources that fail while being read: an I/O error on one image, a shard removed between plan and
read, a source gone before planning. Each becomes a quarantined row with a reason (or one
error line), the rest is read, and once the fault is gone a rerun gives the clean manifest."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import pytest

from curate.ingest import IngestConfig, ingest
from curate.manifest import reason_code
from curate.readers import READERS
from curate.readers.base import ReadOptions
from curate.workspace import Workspace
from tests.hardening.faults import small_dataset

CONFIG = IngestConfig(read=ReadOptions(workers=2, files_per_unit=8))


@pytest.fixture
def data(tmp_path):
    sources = small_dataset(tmp_path)
    clean = Workspace(str(tmp_path / "clean"))
    ingest(clean, sources, CONFIG)
    return tmp_path, sources, clean.read_manifest().to_pylist()


def failing_reads(monkeypatch, path: str) -> None:
    """Reading ``path`` fails with EIO (a bad sector, a flaky network mount)."""
    import curate.readers.imagefolder as imagefolder

    original = imagefolder.read_user_file  # every source image is read through it

    def read_user_file(loc, **kwargs):
        if getattr(loc, "path", loc) == path:
            raise OSError(errno.EIO, "Input/output error", path)
        return original(loc, **kwargs)

    monkeypatch.setattr(imagefolder, "read_user_file", read_user_file)


def test_io_error_on_one_image_quarantines_it_and_a_rerun_after_the_fault_reads_it(data, monkeypatch):
    root, sources, clean = data
    bad = root / "images" / "train" / "c0" / "000.png"
    ws = Workspace(str(root / "ws"))
    with monkeypatch.context() as m:
        failing_reads(m, str(bad))
        ingest(ws, sources, CONFIG)
    rows = ws.read_manifest().to_pylist()
    assert [r["id"] for r in rows] == [r["id"] for r in clean]  # everything accounted for, same order
    broken = {r["id"]: r["reason"] for r, c in zip(rows, clean) if r["reason"] != c["reason"]}
    assert list(broken) == ["images/train/c0/000.png"]
    reason = broken["images/train/c0/000.png"]
    assert reason_code(reason) == "read-error" and "Input/output" in reason
    os.utime(bad)  # the file was restored (a new mtime): only its unit is read again
    result = ingest(ws, sources, CONFIG)
    assert result.meta["units_read"] == 1
    assert ws.read_manifest().to_pylist() == clean


def test_transient_read_error_is_retried_on_rerun(data, monkeypatch):
    root, sources, clean = data
    ws = Workspace(str(root / "ws"))
    with monkeypatch.context() as m:
        failing_reads(m, str(root / "images" / "train" / "c0" / "000.png"))
        ingest(ws, sources, CONFIG)
    ingest(ws, sources, CONFIG)  # the fault is gone, the file unchanged
    assert ws.read_manifest().to_pylist() == clean


def test_shard_removed_between_plan_and_read(data, monkeypatch):
    root, sources, clean = data
    shard = root / "shards" / "part-0000.tar"
    kept = shard.read_bytes()
    reader = READERS["webdataset"]
    original = type(reader).read

    def read(self, unit, opts):
        shard.unlink(missing_ok=True)  # gone after planning, before reading
        yield from original(self, unit, opts)

    monkeypatch.setattr(type(reader), "read", read)
    ws = Workspace(str(root / "ws"))
    ingest(ws, sources, CONFIG)
    monkeypatch.undo()
    rows = ws.read_manifest().to_pylist()
    from_shard = [r for r in rows if r["source_kind"] == "webdataset"]
    assert len(from_shard) == 1 and reason_code(from_shard[0]["reason"]) == "corrupt-shard"
    assert "No such file" in from_shard[0]["reason"]
    assert [r for r in rows if r["source_kind"] != "webdataset"] == [
        r for r in clean if r["source_kind"] != "webdataset"]
    shard.write_bytes(kept)  # restored: new mtime, the unit is read again
    ingest(ws, sources, CONFIG)
    assert ws.read_manifest().to_pylist() == clean


def test_source_gone_before_planning_is_one_error_line(data):
    root, sources, _ = data
    shutil.rmtree(root / "images")
    result = subprocess.run([sys.executable, "-m", "curate", "ingest", *sources, "-w", str(root / "ws"),
                             "--no-progress"], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: source not found: {root / 'images'}"]
    assert not (root / "ws" / "manifest" / "_meta.json").exists()
