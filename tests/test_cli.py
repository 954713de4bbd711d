import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curate.cli import cli


def curate(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [[], *[[name] for name in cli.commands]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


@pytest.mark.parametrize("args,message", [
    (["dedup", "-w", "{tmp}/missing"], "does not exist"),
    (["ingest", "{tmp}/nothing-here", "-w", "{tmp}/ws"], "source not found"),
    (["ingest", "{tmp}/file.xyz", "-w", "{tmp}/ws"], "unknown source kind"),
    (["demo", "{tmp}/notempty"], "not empty"),
])
def test_misuse_exits_nonzero_with_one_line_error(tmp_path, args, message):
    (tmp_path / "file.xyz").write_text("?")
    (tmp_path / "notempty").mkdir()
    (tmp_path / "notempty" / "x").write_text("x")
    result = curate(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path):
    result = curate("dedup")
    assert result.returncode == 2 and "--workspace" in result.stderr
    result = curate("ingest", str(tmp_path), "-w", str(tmp_path / "ws"), "--kind", "nope")
    assert result.returncode == 2 and "Invalid value" in result.stderr


def test_quick_start_on_demo_finds_every_planted_exact_copy(tmp_path):
    assert curate("demo", str(tmp_path / "demo")).returncode == 0
    truth = json.loads((tmp_path / "demo" / "ground_truth.json").read_text())
    ingest = curate("ingest", str(tmp_path / "demo" / "images"), "-w", str(tmp_path / "ws"))
    assert ingest.returncode == 0, ingest.stderr
    for word in ("kind", "status", "reason", "split", "label"):
        assert f"  {word}" in ingest.stdout
    dedup = curate("dedup", "-w", str(tmp_path / "ws"), "--method", "exact",
                   "--out", str(tmp_path / "decisions.parquet"))
    assert dedup.returncode == 0, dedup.stderr

    manifest = pq.read_table(tmp_path / "ws" / "manifest" / "part-00000.parquet")
    decisions = pq.read_table(tmp_path / "decisions.parquet").to_pylist()
    assert len(decisions) == manifest.num_rows == truth["file_count"]
    by_id = {d["id"]: d for d in decisions}
    assert len(by_id) == len(decisions)
    order = {sample_id: i for i, sample_id in enumerate(manifest.column("id").to_pylist())}
    for item in truth["exact_copies"]:
        # the kept copy is whichever of the pair comes first in manifest order
        first, second = sorted([f"images/{item['path']}", f"images/{item['of']}"], key=order.get)
        assert by_id[first]["kept"] and by_id[first]["reason"] is None
        assert by_id[second]["reason"] == "exact-duplicate"
        assert by_id[second]["duplicate_of"] == first
        assert by_id[first]["group"] == by_id[second]["group"] is not None
    for item in truth["corrupt"]:
        assert by_id[f"images/{item['path']}"]["reason"] == "quarantined"
    removed = [d for d in decisions if d["reason"] == "exact-duplicate"]
    assert len(removed) == len(truth["exact_copies"])  # nothing else is byte-identical

    rerun = curate("dedup", "-w", str(tmp_path / "ws"), "--method", "exact")
    assert "reused" in rerun.stdout
