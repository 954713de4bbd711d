"""`curate run`: config checking, the image quick start end to end, and kill -9 at several points."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.errors import CurateError
from curate.export.stage import ExportConfig
from curate.pipeline import load_pipeline
from curate.settings import build_config

REPO = Path(__file__).resolve().parents[1]


def write_toml(path, text):
    path.write_text(text)
    return path


def test_unknown_keys_tables_and_wrong_types_are_clear_errors(tmp_path):
    with pytest.raises(CurateError, match="unknown setting.*shard_sise.*valid: out, name"):
        build_config(ExportConfig, {"shard_sise": 3}, "export")
    with pytest.raises(CurateError, match=r"\[export\] shard_size must be int, not '3'"):
        build_config(ExportConfig, {"shard_size": "3"}, "export")
    assert build_config(ExportConfig, {"stage": ["dedup"], "run": {"dedup": "x"}}, "export") == \
        ExportConfig(stage=("dedup",), run=(("dedup", "x"),))
    with pytest.raises(CurateError, match="unknown table.*exprot"):
        load_pipeline(write_toml(tmp_path / "a.toml", 'workspace = "ws"\n[exprot]\n'))
    with pytest.raises(CurateError, match="top-level `workspace"):
        load_pipeline(write_toml(tmp_path / "b.toml", "[ingest]\n"))
    with pytest.raises(CurateError, match="not valid TOML"):
        load_pipeline(write_toml(tmp_path / "c.toml", "workspace = \n"))
    with pytest.raises(CurateError, match="cannot read pipeline file"):
        load_pipeline(tmp_path / "missing.toml")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "curate", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_image_quick_start_leaves_shards_lineage_and_report(tmp_path):
    start = time.perf_counter()
    result = run_cli("run", str(REPO / "examples" / "quickstart-images.toml"), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    print(f"quick start took {time.perf_counter() - start:.1f} s")
    for stage in ("demo", "ingest", "embed", "dedup", "prune", "export", "report"):
        assert f"[{stage}" in result.stdout
    latest = json.loads((tmp_path / "ws" / "exports" / "digits" / "latest.json").read_text())
    folder = Path(latest["path"])
    lineage = json.loads((folder / "lineage.json").read_text())
    truth = json.loads((tmp_path / "demo-data" / "ground_truth.json").read_text())
    assert lineage["inputs"]["manifest_rows"] == truth["file_count"]
    assert lineage["counts"]["accounted"] is True
    removed = sum(sum(s["removed"].values()) for s in lineage["counts"]["stages"])
    assert removed + lineage["counts"]["exported"] == truth["file_count"]
    assert [s["stage"] for s in lineage["counts"]["stages"]] == ["ingest", "dedup", "prune"]
    assert {s["name"].rsplit("-", 2)[1] for s in lineage["shards"]} == {"train", "test"}
    assert (folder / "report.html").stat().st_size > 10_000
    samples = pq.read_table(folder / "samples.parquet").to_pylist()
    assert len(samples) == truth["file_count"] and len({r["id"] for r in samples}) == truth["file_count"]
    for r in samples:
        assert r["exported"] == (r["shard"] is not None) == (r["reason"] is None)
    # near dedup removes one member of every planted pair and nothing else (look-alike scans stay)
    by_dedup = {r["id"] for r in samples if r["stage"] == "dedup"}
    planted = truth["exact_copies"] + truth["near_copies"]
    assert len(by_dedup) == len(planted)
    for pair in planted:
        assert len(by_dedup & {f"images/{pair['path']}", f"images/{pair['of']}"}) == 1, pair


KILL_PIPELINE = """
workspace = "ws"
[demo]
folder = "demo-data"
[ingest]
sources = ["demo-data/images"]
[embed]
model = "perceptual"
shard_size = 256
[dedup]
method = "semantic"
[prune]
strategy = "kcenter"
fraction = 0.9
[export]
name = "digits"
shard_size = 40
"""


def final_shards(root: Path) -> list[Path]:
    return [p for p in root.glob("ws/exports/digits/*/*.tar") if not p.name.startswith(".")]


def shards_are_whole(root: Path) -> None:
    """Every shard visible under a final name opens and lists completely."""
    for shard in final_shards(root):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
        assert names and len(names) % 3 == 0, shard  # image + json + cls per sample


def run_until(cwd: Path, ready, deadline: float = 120.0) -> bool:
    """Start `curate run`, SIGKILL it as soon as ``ready(cwd)``; False when it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "curate", "run", "p.toml", "--no-progress"], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < deadline:
        if ready(cwd):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


@pytest.mark.slow
def test_kill_9_at_several_points_then_rerun_gives_the_same_version(tmp_path):
    # same sources (paths and mtimes are part of the fingerprints), two workspaces: ws-clean runs through
    crashed = tmp_path
    write_toml(crashed / "p.toml", KILL_PIPELINE)
    write_toml(crashed / "clean.toml", KILL_PIPELINE.replace('workspace = "ws"', 'workspace = "ws-clean"'))
    assert run_cli("run", "clean.toml", "--no-progress", cwd=crashed).returncode == 0
    clean_folder = Path(json.loads((crashed / "ws-clean" / "exports" / "digits" / "latest.json").read_text())["path"])
    expected = clean_folder.name

    points = {
        "manifest written": lambda d: (d / "ws" / "manifest" / "_meta.json").exists(),
        "mid embed": lambda d: len(list((d / "ws" / "state" / "embed").rglob("*.json"))) >= 3
        if (d / "ws" / "state" / "embed").exists() else False,
        "first shard being written": lambda d: any(".tmp-" in p.name for p in d.glob("ws/exports/digits/*/*")),
        "some shards renamed": lambda d: len(final_shards(d)) >= 5,
    }
    killed = []
    for name, ready in points.items():
        if run_until(crashed, ready):
            killed.append(name)
        shards_are_whole(crashed)
    assert len(killed) >= 3, killed  # most points are reached before the run ends
    result = run_cli("run", "p.toml", "--no-progress", cwd=crashed)
    assert result.returncode == 0, result.stderr
    latest = json.loads((crashed / "ws" / "exports" / "digits" / "latest.json").read_text())
    assert latest["version"] == expected
    folder = Path(latest["path"])
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]
    for shard in sorted(clean_folder.glob("*.tar")):
        assert (folder / shard.name).read_bytes() == shard.read_bytes()


METHOD_PIPELINE = """
workspace = "ws-{method}"
[ingest]
sources = ["{src}"]
[embed]
model = "perceptual"
workers = 0
[dedup]
method = "{method}"
"""


@pytest.mark.parametrize("method", ["semantic", "exact", "knn", "fuzzy", "near"])
def test_every_dedup_method_runs_through_curate_run(tmp_path, monkeypatch, method):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    from curate.pipeline import run_pipeline

    rng = __import__("numpy").random.default_rng(0)
    src = tmp_path / "imgs" / "c"
    src.mkdir(parents=True)
    for i in range(8):
        arr = (rng.random((6, 6, 3)) * 255).astype("uint8")
        Image.fromarray(arr).resize((48, 48), Image.Resampling.BICUBIC).save(src / f"{i}.png")
    (src / "copy.png").write_bytes((src / "3.png").read_bytes())
    toml = write_toml(tmp_path / "p.toml", METHOD_PIPELINE.format(method=method, src=tmp_path / "imgs"))
    outcomes = run_pipeline(toml, progress=False)
    assert [o.stage for o in outcomes] == ["ingest", "embed", "dedup"]
    assert outcomes[-1].summary.startswith(f"{method}: kept 8; removed exact-duplicate 1")


def run_file(tmp_path, capsys, text: str) -> tuple[int, str]:
    """``curate run`` on a pipeline file over ``tmp_path/ws`` (in this process): (exit status, stderr)."""
    from curate.cli import main

    toml = write_toml(tmp_path / "p.toml", f'workspace = "{tmp_path / "ws"}"\n{text}\n')
    try:
        main(["run", str(toml), "--no-progress"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("table, what", [
    ("[dedup]", "[dedup] (semantic)"),
    ('[dedup]\nmethod = "knn"', "[dedup] (knn)"),
    ('[dedup]\nmethod = "near"\nmodel = "perceptual"', "[dedup] (near)"),
    ("[prune]\nfraction = 0.5", "[prune] (kcenter)"),
    ('[select]\nbudget = 2\nstrategy = "typiclust"\nout = "b.csv"', "[select] (typiclust)"),
])
def test_a_table_that_reads_embeddings_needs_an_embed_table_before_anything_runs(tmp_path, capsys, table, what):
    from tests.conftest import encode_image, write

    for i in range(4):
        write(tmp_path / "imgs" / f"{i}.png", encode_image((16, 12), seed=i))
    code, err = run_file(tmp_path, capsys, f'[ingest]\nsources = ["{tmp_path / "imgs"}"]\n{table}')
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {what} reads embeddings: add an [embed] table before it"), err
    assert not (tmp_path / "ws").exists()  # ingest did not run: no manifest, no workspace


def test_a_workspace_stage_without_ingest_or_a_manifest_stops_before_the_demo_runs(tmp_path, capsys):
    code, err = run_file(tmp_path, capsys, f'[demo]\nfolder = "{tmp_path / "demo"}"\n[embed]\nworkers = 0')
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: [embed] needs a manifest: add an [ingest] table before it"), err
    assert not (tmp_path / "demo").exists() and not (tmp_path / "ws").exists()


def test_what_the_workspace_already_has_satisfies_a_table(tmp_path, capsys):
    from tests.conftest import encode_image, write

    for i in range(6):
        write(tmp_path / "imgs" / f"{i}.png", encode_image((16, 12), seed=i))
    code, err = run_file(tmp_path, capsys, f'[ingest]\nsources = ["{tmp_path / "imgs"}"]\n[embed]\nworkers = 0\n'
                                           '[dedup]\nmethod = "near"')  # near without a model needs no store
    assert code == 0, err
    code, err = run_file(tmp_path, capsys, "[dedup]\n[prune]\nfraction = 0.5")  # the manifest and store are there
    assert code == 0, err
