"""Regression tests for defects a hostile tester found (docs/hardening.md): empty queries files,
offline OpenCLIP downloads, the report's selected count, and drift across precomputed stores."""

from __future__ import annotations

import numpy as np
import pytest

from curate.cli import main
from curate.errors import CurateError
from curate.select.stage import select, select_config
from tests.conftest import vector_workspace


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# --- i. `curate select --strategy similar --queries EMPTY_FILE` ---------------------------------

@pytest.mark.parametrize("name,content", [("q.txt", b""), ("blank.txt", b"\n   \n\t\n"), ("q.csv", b""),
                                          ("q.parquet", b""), ("ids.csv", b"id\n")])
def test_select_similar_empty_queries_file_is_one_line_error(tmp_path, capsys, name, content):
    ws = vector_workspace(tmp_path, "ws", _unit(np.random.default_rng(0).normal(size=(8, 4))))
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CurateError, match=rf"--queries {path}") as info:
        select(ws, select_config(budget=2, strategy="similar", queries=str(path)))
    assert "\n" not in str(info.value)
    with pytest.raises(SystemExit) as code:
        main(["select", "-w", ws.root.uri, "--strategy", "similar", "--queries", str(path), "--budget", "2",
              "-o", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.startswith("error: --queries") and str(path) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_select_similar_unreadable_queries_file_is_one_line_error(tmp_path, monkeypatch):
    ws = vector_workspace(tmp_path, "ws", _unit(np.random.default_rng(0).normal(size=(8, 4))))
    path = tmp_path / "q.txt"
    path.write_text("ws0\n")

    def denied(p, *args, **kwargs):
        raise PermissionError(13, "Permission denied", p)

    monkeypatch.setattr("curate.select.idlist.read_ids", denied)
    with pytest.raises(CurateError, match=r"q\.txt: cannot read it \(.*Permission denied"):
        select(ws, select_config(budget=2, strategy="similar", queries=str(path)))


# --- r. `--model openclip:<arch>/<tag>` without network: fail fast, name the offline form -------

OPENCLIP_SPEC = "openclip:ViT-B-32/laion2b_s34b_b79k"


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache; any real connection or download fails the test."""
    import socket

    import open_clip.factory
    import open_clip.pretrained

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("the test touched the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", no_network)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", no_network)
    monkeypatch.setattr(open_clip.factory, "download_pretrained", no_network)
    return tmp_path / "hf" / "hub"


def _load_fails_fast(spec=OPENCLIP_SPEC):
    import time

    from curate.embed.registry import load_embedder

    start = time.monotonic()
    with pytest.raises(CurateError) as info:
        load_embedder(spec)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message and "openclip:ViT-B-32@/path/to/checkpoint.pt" in message
    return message


def test_openclip_pretrained_offline_fails_fast_naming_the_checkpoint_form(empty_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _load_fails_fast()
    assert "HF_HUB_OFFLINE" in message and str(empty_hub) in message


def test_openclip_pretrained_unreachable_hub_fails_fast_without_offline_flag(empty_hub, monkeypatch):
    import socket

    import huggingface_hub.constants

    from curate.embed import openclip

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    tried = []

    def refused(address, timeout=None, **kwargs):
        tried.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    assert "huggingface.co:443 is unreachable" in _load_fails_fast()
    assert tried == [(("huggingface.co", 443), openclip._PROBE_TIMEOUT_S)]

    # a name lookup that hangs (no timeout of its own) is cut at the probe timeout
    import time

    def hangs(*args, **kwargs):
        time.sleep(1.5)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", hangs)
    monkeypatch.setattr(openclip, "hub_reachable",
                        lambda host, port, timeout=0.3, _f=openclip.hub_reachable: _f(host, port, timeout))
    assert "no answer within 0.3 s" in _load_fails_fast()

    # the hub answers but the download breaks: one line, no retries from here
    class Conn:
        def close(self):
            pass

    def broken(cfg, cache_dir=None):
        raise ConnectionError("Connection reset by peer")

    import open_clip.pretrained

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Conn())
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", broken)
    assert "download failed (ConnectionError: Connection reset by peer)" in _load_fails_fast()


def test_openclip_pretrained_found_in_the_hub_cache_without_network(empty_hub, monkeypatch):
    from curate.embed.openclip import pretrained_weights

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even online, a cached file is used as is
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    weights = repo / "snapshots" / commit / "open_clip_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    assert pretrained_weights("ViT-B-32", "laion2b_s34b_b79k") == str(weights)


# --- s. the report's "selected" is the select run's own picks; no select-after-prune chaining ---------

def _stage_cells(html: str) -> dict[str, list[str]]:
    import re
    from html import unescape

    rows = re.findall(r'<tr data-stage="(\w+)">(.*?)</tr>', html)
    return {stage: [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for stage, row in rows}


def test_report_selected_count_is_the_select_runs_picks_not_chained_after_prune(tmp_path):
    import re
    from pathlib import Path

    from click.testing import CliRunner

    from curate.cli import cli
    from curate.decisions import list_runs
    from curate.report.build import ReportConfig, build_report

    ws = vector_workspace(tmp_path, "ws", _unit(np.random.default_rng(0).normal(size=(20, 4))))
    w = ws.root.path
    runner = CliRunner()
    for args in (["dedup", "-w", w, "--no-progress"], ["prune", "-w", w, "--count", "3", "--no-progress"],
                 ["select", "-w", w, "--strategy", "random", "-n", "5", "-o", str(tmp_path / "batch.csv")]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    meta = list_runs(ws, "select")[-1]
    assert meta["picked"] == 5 and set(meta["upstream_runs"]) == {"dedup"}  # select ignores prune by default
    html = Path(build_report(ws, ReportConfig()).path).read_text(encoding="utf-8")
    cards = dict((k, v) for v, k in re.findall(r"<b>([\d,]+)</b><span>([^<]+)</span>", html))
    assert cards["selected"] == "5"  # was 1: picks that prune also kept (select chained after prune)
    assert cards["kept after dedup + prune"] == "3"
    cells = _stage_cells(html)
    # stage, run, method, input, kept, removed, left after stage
    assert cells["prune"][3] == "ingest ok → dedup" and cells["prune"][4] == "3" and cells["prune"][6] == "3"
    assert cells["select"][3] == "ingest ok → dedup" and cells["select"][4] == "5" and cells["select"][6] == "5"

    # a select run that did use prune as upstream is shown after it
    result = select(ws, select_config(budget=2, strategy="random", upstream=("dedup", "prune"), seed=1))
    assert set(list_runs(ws, "select")[-1]["upstream_runs"]) == {"dedup", "prune"}
    html = Path(build_report(ws, ReportConfig(run_ids={"select": result.run.run_id})).path).read_text("utf-8")
    cells = _stage_cells(html)
    assert cells["select"][3] == "ingest ok → dedup → prune" and cells["select"][6] == "2"
    assert dict((k, v) for v, k in re.findall(r"<b>([\d,]+)</b><span>([^<]+)</span>", html))["selected"] == "2"


# --- q. drift between precomputed stores whose file names (so slugs) differ ------------------------

def _precomputed_workspace(tmp_path, name, vectors, file_name):
    """A text workspace embedded with ``precomputed:<tmp>/<name>-npy/<file_name>`` (slug precomputed-<stem>)."""
    import json

    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace
    from tests.conftest import write

    src = write(tmp_path / f"{name}.jsonl", b"".join(json.dumps({"id": f"{name}{i}", "text": f"t {i}"}).encode()
                                                      + b"\n" for i in range(len(vectors))))
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    _embed_npy(ws, tmp_path / f"{name}-npy" / file_name, vectors)
    return ws


def _embed_npy(ws, npy, vectors):
    from curate.embed.stage import EmbedConfig, embed

    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, _unit(vectors))
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)


def test_drift_compares_precomputed_stores_of_different_names(tmp_path):
    from click.testing import CliRunner

    from curate.cli import cli
    from curate.drift import DriftConfig, drift
    from curate.embed.store import list_stores

    rng = np.random.default_rng(0)
    a = _precomputed_workspace(tmp_path, "a", rng.normal(size=(60, 8)), "x.npy")
    b = _precomputed_workspace(tmp_path, "b", rng.normal(size=(60, 8)), "y.npy")
    assert list_stores(a) == ["precomputed-x"] and list_stores(b) == ["precomputed-y"]
    fast = DriftConfig(sample=40, permutations=50, mmd_sample=40, device="cpu")
    report = drift(a, b, fast)  # was: "pick the embedding model with --model"
    assert report.model == "precomputed-x" and report.reference["model"] == "precomputed-y"
    assert report.new["model"] == "precomputed-x"
    result = CliRunner().invoke(cli, ["drift", "-w", a.root.path, "-r", b.root.path, "--sample", "40",
                                      "--permutations", "50", "--device", "cpu"])
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert "on precomputed-x vs precomputed-y" in result.output

    # REF with two precomputed stores: ambiguous, so name REF's store explicitly
    _embed_npy(b, tmp_path / "b-npy" / "z.npy", rng.normal(size=(60, 8)))
    with pytest.raises(CurateError, match="--reference-model"):
        drift(a, b, fast)
    explicit = drift(a, b, DriftConfig(**{**fast.__dict__, "reference_model": "precomputed-z"}))
    assert explicit.reference["model"] == "precomputed-z"
    result = CliRunner().invoke(cli, ["drift", "-w", a.root.path, "-r", b.root.path, "--reference-model",
                                      "precomputed-y", "--sample", "40", "--permutations", "50", "--device", "cpu"])
    assert result.exit_code in (0, 1) and "vs precomputed-y" in result.output, (result.output, result.exception)

    # different dimensions: a clear one-line error naming both stores
    c = _precomputed_workspace(tmp_path, "c", rng.normal(size=(60, 4)), "w.npy")
    with pytest.raises(CurateError, match=r"dimension: NEW precomputed-x has 8-d vectors, REF precomputed-w 4-d"):
        drift(a, c, fast)
