"""Must-show of the embedding issue: offline embedders over whole workspaces, through the CLI."""

import json
import subprocess
import sys

import numpy as np
import pyarrow.compute as pc

from curate.demo import build_demo
from curate.embed.store import open_store
from curate.workspace import Workspace
from tests.conftest import write


def curate(*args):
    result = subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ok_ids(ws: Workspace) -> list[str]:
    m = ws.read_manifest(["id", "status"])
    return m.filter(pc.equal(m.column("status"), "ok")).column("id").to_pylist()


def test_perceptual_on_demo_aligned_normalised_and_separates_near_copies(tmp_path):
    truth = build_demo(tmp_path / "demo")
    ws = Workspace(str(tmp_path / "ws"))
    curate("ingest", str(tmp_path / "demo" / "images"), "-w", ws.root.path, "--no-progress")
    out = curate("embed", "-w", ws.root.path, "--model", "perceptual", "--no-progress")
    assert "embedded 1,872, failed 0" in out
    store = open_store(ws, "perceptual-v2")
    assert store.ids == ok_ids(ws)
    vectors = store.vectors.astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)

    row = {sample_id: i for i, sample_id in enumerate(store.ids)}
    pairs = [(row[f"images/{c['path']}"], row[f"images/{c['of']}"]) for c in truth["near_copies"]]
    copy_sims = np.array([vectors[a] @ vectors[b] for a, b in pairs])
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(vectors), size=(2, 5000))
    labels = np.array([i.split("/")[2] for i in store.ids])
    unrelated = (vectors[a] * vectors[b]).sum(axis=1)[labels[a] != labels[b]]
    assert copy_sims.min() > np.quantile(unrelated, 0.99), (copy_sims.min(), np.quantile(unrelated, 0.99))


def test_minilm_on_text_workspace_is_aligned_and_semantic(tmp_path):
    texts = ["A man is playing a guitar.", "Someone plays an acoustic guitar.", "",
             "The stock market fell sharply today.", "Share prices dropped steeply this morning."]
    src = write(tmp_path / "t.jsonl", b"".join(json.dumps({"id": f"t{i}", "text": t}).encode() + b"\n"
                                               for i, t in enumerate(texts)))
    ws = Workspace(str(tmp_path / "ws"))
    curate("ingest", str(src), "-w", ws.root.path, "--no-progress")
    curate("embed", "-w", ws.root.path, "--model", "minilm", "--workers", "0", "--no-progress")
    store = open_store(ws, "minilm-l6-v2")
    assert store.ids == ok_ids(ws) == ["t0", "t1", "t3", "t4"]
    v = store.vectors.astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=2e-3)
    sim = v @ v.T
    assert sim[0, 1] > 0.5 and sim[2, 3] > 0.5
    assert max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3]) < 0.3


def test_semantic_dedup_on_demo_finds_planted_copies_and_keeps_the_rest(tmp_path):
    """Must-show of the dedup issue: offline embedder + semantic dedup on the demo."""
    import pyarrow.parquet as pq

    truth = build_demo(tmp_path / "demo")
    ws = str(tmp_path / "ws")
    curate("ingest", str(tmp_path / "demo" / "images"), "-w", ws, "--no-progress")
    curate("embed", "-w", ws, "--model", "perceptual", "--no-progress")
    out = curate("dedup", "-w", ws, "--method", "semantic", "--threshold", "0.9", "--out", str(tmp_path / "d.parquet"))
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "d.parquet").to_pylist()}
    planted = {frozenset((f"images/{c['path']}", f"images/{c['of']}"))
               for c in truth["near_copies"] + truth["exact_copies"]}
    for pair in planted:
        a, b = sorted(pair)
        assert rows[a]["kept"] != rows[b]["kept"], f"planted pair {a} / {b} not resolved to one copy"
        gone, kept = (a, b) if not rows[a]["kept"] else (b, a)
        assert rows[gone]["duplicate_of"] == kept
    removed = {i for i, r in rows.items() if r["reason"] in ("semantic-duplicate", "exact-duplicate")}
    assert len(removed) == len(planted)  # nothing unrelated was removed
    assert sum(r["kept"] for r in rows.values()) == truth["source_count"]
    assert "leakage pairs (test/val duplicating train) 4" in out  # the planted cross-split copies
