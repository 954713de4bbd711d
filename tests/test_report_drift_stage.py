"""`report` and `drift` are runner stages: a rerun reuses the run (same run id, the file not rewritten), a
changed input gives a new run id, the sidecar says `table: false`, and both hold the workspace lock (a
second writer fails, or waits with --wait) like every other stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import curate
from curate.cli import cli
from curate.dedup.exact import exact_dedup
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.drift import DriftConfig, read_report, run_drift
from curate.embed.stage import EmbedConfig, embed
from curate.io.lock import workspace_lock
from curate.pipeline import run_pipeline
from curate.report.build import ReportConfig
from curate.report.stage import report
from tests.conftest import vector_workspace

FAST = DriftConfig(sample=40, permutations=50, mmd_sample=40, device="cpu")


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _vectors(n=40, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 8))
    v[1] = v[0]  # a semantic duplicate pair
    return _unit(v)


def _texts(n=40):
    texts = [f"item {i}" for i in range(n)]
    texts[5] = texts[4]  # an exact duplicate pair
    return texts


@pytest.fixture
def ws(tmp_path):
    return vector_workspace(tmp_path, "ws", _vectors(), texts=_texts())


def _sidecar(ws, stage, run_id):
    return json.loads((Path(ws.root.path) / "decisions" / stage / f"{run_id}.json").read_text())


def test_report_rerun_is_reused_and_a_new_dedup_run_gives_a_new_run(ws):
    exact = exact_dedup(ws, progress=False)
    config = ReportConfig(max_points=20)
    first = report(ws, config, progress=False)
    page = Path(ws.root.path) / "report.html"
    assert not first.reused and first.table is None and first.path is None
    assert first.run_id.startswith("report-") and first.meta["out"] == str(page)
    side = _sidecar(ws, "report", first.run_id)
    assert side["table"] is False and "rows" not in side
    assert side["inputs"]["upstream"] == {"dedup": exact.run_id}
    assert side["inputs"]["store"] is not None and side["bytes"] == page.stat().st_size
    stamp, before = page.stat().st_mtime_ns, page.read_bytes()

    again = report(ws, config, progress=False)
    assert again.reused and again.run_id == first.run_id
    assert page.stat().st_mtime_ns == stamp  # not rewritten
    assert curate.open(ws.root.path).report(max_points=20) == str(page)  # the API reuses it too
    cli_run = CliRunner().invoke(cli, ["report", "-w", ws.root.path, "--max-points", "20", "--no-progress"])
    assert cli_run.exit_code == 0, cli_run.output
    assert f"{first.run_id} (unchanged, reused)" in cli_run.output
    assert page.stat().st_mtime_ns == stamp

    semantic = semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=2, device="cpu"), progress=False)
    third = report(ws, config, progress=False)
    assert not third.reused and third.run_id != first.run_id
    assert _sidecar(ws, "report", third.run_id)["inputs"]["upstream"] == {"dedup": semantic.run_id}
    assert page.read_bytes() != before

    # the first run's page was overwritten: pinning its dedup run again recomputes it, never reuses a stale page
    pinned = report(ws, ReportConfig(max_points=20, run_ids={"dedup": exact.run_id}), progress=False)
    assert pinned.run_id != third.run_id and not pinned.reused
    assert page.read_bytes() == before  # same inputs, same bytes
    page.unlink()
    gone = report(ws, ReportConfig(max_points=20, run_ids={"dedup": exact.run_id}), progress=False)
    assert gone.run_id == pinned.run_id and not gone.reused and page.read_bytes() == before


def test_report_in_a_pipeline_goes_next_to_the_export_and_is_reused(ws, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text(f'workspace = "{ws.root.path}"\n[dedup]\nmethod = "exact"\n[export]\nname = "t"\n'
                    "[report]\nmax-points = 20\n")
    first = {o.stage: o.summary for o in run_pipeline(toml, progress=False)}
    latest = json.loads((Path(ws.root.path) / "exports" / "t" / "latest.json").read_text())
    page = Path(latest["path"]) / "report.html"
    assert first["report"].startswith(f"{page} (report-") and "reused" not in first["report"]
    second = {o.stage: o.summary for o in run_pipeline(toml, progress=False)}
    assert second["report"] == first["report"].replace(")", ", reused)")


def _drift_spaces(tmp_path):
    rng = np.random.default_rng(5)
    new = vector_workspace(tmp_path, "new", _unit(rng.normal(size=(60, 8))))
    ref = vector_workspace(tmp_path, "ref", _unit(rng.normal(size=(80, 8))))
    return new, ref


def test_drift_rerun_is_reused_and_a_changed_reference_store_gives_a_new_run(tmp_path):
    new, ref = _drift_spaces(tmp_path)
    config = DriftConfig(**{**FAST.__dict__, "reference": ref.root.path})
    first = run_drift(new, config, progress=False)
    out = Path(new.root.path) / "decisions" / "drift" / f"{first.run_id}-report.json"
    assert not first.reused and first.table is None and first.meta["out"] == str(out)
    side = _sidecar(new, "drift", first.run_id)
    assert side["table"] is False and side["drifted"] == json.loads(out.read_text())["drifted"]
    assert set(side["inputs"]) == {"manifest", "store", "reference_store", "reference_index"}
    stamp, before = out.stat().st_mtime_ns, out.read_text()

    again = run_drift(new, config, progress=False)
    assert again.reused and again.run_id == first.run_id and out.stat().st_mtime_ns == stamp
    assert read_report(again).to_json() == before  # the report read back is the one written
    args = ["drift", "-w", new.root.path, "-r", ref.root.path, "--sample", "40", "--permutations", "50",
            "--device", "cpu", "--no-progress"]
    cli_first, cli_again = (CliRunner().invoke(cli, args) for _ in range(2))
    assert cli_first.exit_code in (0, 1) and cli_again.exit_code == cli_first.exit_code, cli_first.output
    run_line = next(line for line in cli_first.output.splitlines() if line.startswith("  run      drift-"))
    assert "written in" in run_line  # the CLI's default --mmd-sample differs from FAST's: another run
    assert run_line.split()[1] + " (unchanged, reused)" in cli_again.output

    npy = tmp_path / "ref-vectors" / "vectors.npy"  # REF embedded again from other vectors
    np.save(npy, _unit(np.random.default_rng(9).normal(size=(80, 8))))
    embed(ref, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)
    changed = run_drift(new, config, progress=False)
    assert not changed.reused and changed.run_id != first.run_id
    assert _sidecar(new, "drift", changed.run_id)["inputs"]["reference_store"] != side["inputs"]["reference_store"]
    assert out.read_text() == before  # each run has its own report file


def _curate(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "curate", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_report_and_drift_hold_the_workspace_lock(ws, tmp_path):
    exact_dedup(ws, progress=False)
    ref = vector_workspace(tmp_path, "ref", _unit(np.random.default_rng(3).normal(size=(50, 8))))
    commands = {"report": ["report", "-w", ws.root.path, "--max-points", "20", "--no-progress"],
                "drift": ["drift", "-w", ws.root.path, "-r", ref.root.path, "--sample", "40",
                          "--permutations", "50", "--device", "cpu", "--no-progress"]}
    with workspace_lock(ws.root, "another writer"):
        for name, args in commands.items():
            refused = _curate(*args, cwd=tmp_path)
            _, err = refused.communicate(timeout=300)
            assert refused.returncode == 2, err
            assert "is in use by pid" in err and "(another writer, since " in err and "\n" not in err.strip()
            assert not (Path(ws.root.path) / "decisions" / name).exists()  # nothing written
        assert not (Path(ws.root.path) / "report.html").exists()
        waiting = {name: _curate(*args, "--wait", cwd=tmp_path) for name, args in commands.items()}
        for proc in waiting.values():
            while "waiting for pid" not in (line := proc.stderr.readline()):
                assert line, "the second writer neither waited nor failed"
        assert all(proc.poll() is None for proc in waiting.values())
    for name, proc in waiting.items():  # the lock released: each finishes (one after the other)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in ((0,) if name == "report" else (0, 1)), err
        assert "  run      report-" in out if name == "report" else "  run      drift-" in out
    assert (Path(ws.root.path) / "report.html").exists()
    assert not (Path(ws.root.path) / "state" / "lock.json").exists()
