"""Attacks on the stage contract: concurrent writers, bad settings, silent overwrites, store choice.

Letters refer to the defects of the stage-contract issue (see docs/hardening.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from curate.dedup.exact import exact_dedup
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.embed.stage import EmbedConfig, embed
from curate.errors import CurateError
from curate.export.stage import ExportConfig, export
from curate.ingest import ingest
from curate.io import atomic
from curate.prune.stage import PruneConfig, prune
from curate.workspace import Workspace
from tests.conftest import encode_image, write

PIPELINE = """
workspace = "{ws}"
[ingest]
sources = ["{src}"]
[embed]
model = "perceptual"
workers = 0
batch-size = 8
shard-size = 16
[dedup]
method = "semantic"
threshold = [0.95]
[prune]
fraction = 0.5
[export]
name = "t"
shard-size = 10
"""


def images(root: Path, n: int = 40) -> Path:
    for i in range(n):
        write(root / "cls" / f"{i:03d}.png", encode_image((24, 24), seed=i % 30))
    return root


def curate(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "curate", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


HOLDER = """
import sys, time
from pathlib import Path
from curate.pipeline import run_pipeline
from curate.runner import writing
from curate.workspace import Workspace

with writing(Workspace("ws"), "curate run ws.toml"):  # what `curate run` takes first; held until told to go
    Path("ready").touch()
    while not Path("go").exists():
        time.sleep(0.02)
    run_pipeline("ws.toml", progress=False)
"""


def test_f_second_writer_is_refused_or_waits_and_the_result_equals_a_serial_run(tmp_path):
    src = images(tmp_path / "src")
    for name in ("ws", "serial"):
        (tmp_path / f"{name}.toml").write_text(PIPELINE.format(ws=name, src=src))
    first = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "ready").exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "ready").exists(), first.stderr and first.stderr.read()
    refused = subprocess.run([sys.executable, "-m", "curate", "ingest", str(src), "-w", "ws"], cwd=tmp_path,
                             capture_output=True, text=True)
    waiting = curate("run", "ws.toml", "--no-progress", "--wait", cwd=tmp_path)
    while "waiting for pid" not in (line := waiting.stderr.readline()):
        assert line, "the second run neither waited nor failed"
    (tmp_path / "go").touch()
    _, first_err = first.communicate(timeout=300)
    wait_out, wait_err = waiting.communicate(timeout=300)
    assert first.returncode == 0, first_err

    assert refused.returncode == 2, refused.stdout
    message = refused.stderr.strip()
    assert message.startswith(f"error: workspace {tmp_path / 'ws'} is in use by pid {first.pid} on ")
    assert "(curate run ws.toml, since " in message and "--wait" in message and "\n" not in message
    assert waiting.returncode == 0, wait_err
    assert wait_out.count("reused") >= 4  # it ran after the first had finished, and found every stage done

    serial = subprocess.run([sys.executable, "-m", "curate", "run", "serial.toml", "--no-progress"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert serial.returncode == 0, serial.stderr
    versions = [json.loads((tmp_path / w / "exports" / "t" / "latest.json").read_text())["version"]
                for w in ("ws", "serial")]
    assert versions[0] == versions[1]
    for stage in ("ingest", "embed", "dedup", "prune", "export"):
        got = sorted(p.name for p in (tmp_path / "ws" / "decisions" / stage).glob("*.parquet"))
        assert got == sorted(p.name for p in (tmp_path / "serial" / "decisions" / stage).glob("*.parquet"))
        for name in got:
            assert (tmp_path / "ws" / "decisions" / stage / name).read_bytes() == \
                (tmp_path / "serial" / "decisions" / stage / name).read_bytes()
    assert not (tmp_path / "ws" / "state" / "lock.json").exists()


def test_f_temporary_file_of_a_live_writer_is_not_swept_by_another_process(tmp_path):
    """The sweep only runs under the lock, so it can never delete a live writer's temporary file."""
    src = images(tmp_path / "src", 6)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    from curate.io.lock import workspace_lock

    live_tmp = tmp_path / "ws" / "decisions" / "dedup" / f"{atomic.TMP_MARK}abc-live.parquet"
    write(live_tmp, b"being written")
    with workspace_lock(ws.root, "another writer"):
        code = (f"from curate.dedup.exact import exact_dedup\nfrom curate.workspace import Workspace\n"
                f"exact_dedup(Workspace({str(tmp_path / 'ws')!r}))\n")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and "is in use by pid" in other.stderr
        assert live_tmp.exists()
    exact_dedup(ws, progress=False)  # once the writer is gone, its leftovers are swept
    assert not live_tmp.exists()


@pytest.fixture
def workspace(tmp_path):
    src = images(tmp_path / "src", 20)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    return ws


@pytest.mark.parametrize("bad,message", [
    (dict(margin=float("nan")), "--margin must be"), (dict(margin=-1.0), "--margin must be"),
    (dict(clusters=0), "--clusters must be >= 1"), (dict(threshold=(float("nan"),)), "--threshold must be"),
    (dict(threshold=(1.5,)), "--threshold must be"), (dict(threshold=()), "--threshold must be"),
    (dict(executor="spark"), "unknown executor"), (dict(neighbours=0), "--neighbours must be >= 1"),
])
def test_l_nonsense_dedup_settings_are_refused_before_anything_is_written(workspace, bad, message):
    before = sorted(workspace.root.fs.find(workspace.root.path))
    with pytest.raises(CurateError, match=message):
        semantic_dedup(workspace, SemanticConfig(**bad), progress=False)
    assert sorted(workspace.root.fs.find(workspace.root.path)) == before


def test_l_cli_rejects_nan_margin_with_one_line(workspace):
    done = subprocess.run([sys.executable, "-m", "curate", "dedup", "-w", workspace.root.path, "--margin", "nan"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "error: --margin must be a cosine difference in [0, 2], " \
                                                           "not nan"


def test_p_export_refuses_an_unknown_stage_and_leaves_no_empty_version_folder(workspace, monkeypatch):
    with pytest.raises(CurateError, match="--stage 'dedpu' is not a decision stage"):
        export(workspace, ExportConfig(stage=("dedpu",)), progress=False)
    with pytest.raises(CurateError, match="--stage 'typo' is not a decision stage"):
        export(workspace, ExportConfig(run=(("typo", "x"),)), progress=False)
    assert not workspace.loc("exports").exists()

    import curate.export.stage as stage

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(stage, "write_tar", broken)
    with pytest.raises(OSError):
        export(workspace, ExportConfig(name="t"), progress=False)
    folder = workspace.loc("exports", "t")
    assert not folder.exists() or not any(folder.fs.ls(folder.path)), "an empty version folder was left behind"


def test_p_out_never_overwrites_an_existing_file(workspace, tmp_path):
    target = tmp_path / "mine.csv"
    target.write_text("precious\n")
    for command in (["dedup", "--method", "exact"], ["prune", "--fraction", "0.5"]):
        done = subprocess.run([sys.executable, "-m", "curate", *command, "-w", workspace.root.path, "--out",
                               str(target)], capture_output=True, text=True)
        assert done.returncode == 2 and "already exists" in done.stderr
        assert target.read_text() == "precious\n"
    assert not workspace.loc("decisions", "dedup").exists()  # refused before any work


def test_q_prune_defaults_to_the_store_the_latest_dedup_used(workspace, tmp_path):
    np.save(tmp_path / "other.npy", np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32))
    embed(workspace, EmbedConfig(model=f"precomputed:{tmp_path / 'other.npy'}", workers=0), progress=False)
    with pytest.raises(CurateError, match="has 2 embedding stores"):
        semantic_dedup(workspace, SemanticConfig(), progress=False)
    semantic_dedup(workspace, SemanticConfig(model="perceptual-v2", clusters=2), progress=False)
    result = prune(workspace, PruneConfig(fraction=0.5), progress=False)
    assert result.meta["model"] == "perceptual-v2"
    semantic_dedup(workspace, SemanticConfig(model="precomputed-other", clusters=2), progress=False)
    assert prune(workspace, PruneConfig(fraction=0.5), progress=False).meta["model"] == "precomputed-other"
    by_spec = prune(workspace, PruneConfig(fraction=0.5, model="perceptual"), progress=False)
    assert by_spec.meta["model"] == "perceptual-v2"  # a model spec names its store too


def test_h_invalid_embed_setting_on_the_cli_keeps_a_finished_store(workspace):
    meta = workspace.loc("embeddings", "perceptual-v2", "meta.json")
    stamp = os.stat(meta.path).st_mtime_ns
    done = subprocess.run([sys.executable, "-m", "curate", "embed", "-w", workspace.root.path, "--workers", "-1"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == "error: --workers must be >= 0, not -1"
    assert meta.exists() and os.stat(meta.path).st_mtime_ns == stamp
