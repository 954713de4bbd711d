"""The select stage end to end on tiny text workspaces with hand-made embeddings and predictions."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.decisions import list_runs
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.embed.stage import EmbedConfig, embed
from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.select.stage import picked, select, select_config
from curate.workspace import Workspace
from tests.conftest import write


def angle(deg, d=4):
    v = np.zeros(d)
    v[0], v[1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v


def workspace(tmp_path, vectors, texts=None, labels=None):
    """Text workspace w0..w{n-1} whose embeddings are ``vectors``; an empty text is quarantined."""
    n = len(vectors)
    texts = texts or [f"item {i}" for i in range(n)]
    rows = [{"id": f"w{i}", "text": texts[i], **({"label": labels[i]} if labels else {})} for i in range(n)]
    src = write(tmp_path / "src.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    np.save(tmp_path / "vectors.npy", np.asarray(vectors, dtype=np.float32))
    embed(ws, EmbedConfig(model=f"precomputed:{tmp_path / 'vectors.npy'}", workers=0), progress=False)
    return ws


def spread(n, d=4):
    return [angle(i * 150.0 / n, d) + np.eye(d)[2] * 0.01 * i for i in range(n)]


def probs_with_margins(gaps):
    """Two-class probabilities whose margin is ``gap``: p = (1 + gap) / 2."""
    p = (1 + np.asarray(gaps)) / 2
    return np.stack([p, 1 - p], 1).astype(np.float32)


def table(result):
    return {r["id"]: r for r in result.run.table.to_pylist()}


def test_decision_table_reasons_ranks_and_rounds(tmp_path):
    texts = [f"item {i}" for i in range(8)]
    texts[5] = ""  # quarantined: empty-text
    ws = workspace(tmp_path, spread(8), texts)
    (tmp_path / "labeled.txt").write_text("w0\nw1\n")
    gaps = [0.1, 0.0, 0.5, 0.05, 0.3, 0.2, 0.9]  # the 7 ok rows (w5 is skipped): w0 w1 w2 w3 w4 w6 w7
    np.save(tmp_path / "p.npy", probs_with_margins(gaps))
    cfg = select_config(budget=3, strategy="margin", predictions=str(tmp_path / "p.npy"),
                       labeled=str(tmp_path / "labeled.txt"), out=str(tmp_path / "batch.csv"))
    result = select(ws, cfg)
    # candidates w2 w3 w4 w6 w7 with gaps .5 .05 .3 .2 .9 -> most uncertain: w3, w6, w4
    assert picked(result) == ["w3", "w6", "w4"] and result.meta["round"] == 1 and result.meta["candidates"] == 5
    rows = table(result)
    assert list(rows) == [f"w{i}" for i in range(8)]  # one row per manifest id, in order
    assert [rows[i]["rank"] for i in ("w3", "w6", "w4")] == [1, 2, 3]
    assert rows["w3"]["score"] == pytest.approx(0.95) and rows["w3"]["reason"] is None and rows["w3"]["kept"]
    assert rows["w0"]["reason"] == "labeled" and rows["w5"]["reason"].startswith("quarantined: empty-text")
    assert rows["w2"]["reason"] == "not-selected" and rows["w2"]["rank"] is None and rows["w2"]["score"] is None
    # another budget with the same labeled set is the same round; a grown labeled set is the next one
    again = select(ws, dataclasses.replace(cfg, budget=2, handoff=dataclasses.replace(
        cfg.handoff, out=str(tmp_path / "batch2.csv"))))  # batch.csv belongs to the first run: never overwritten
    assert again.meta["round"] == 1 and picked(again) == ["w3", "w6"] and again.run_id != result.run_id
    (tmp_path / "labeled2.txt").write_text("w0\nw1\nw3\n")
    grown = select(ws, dataclasses.replace(cfg, labeled=str(tmp_path / "labeled2.txt"), handoff=dataclasses.replace(
        cfg.handoff, out=str(tmp_path / "batch3.csv"))))
    assert grown.meta["round"] == 2 and picked(grown) == ["w6", "w4", "w2"]
    assert select(ws, cfg).meta["round"] == 1  # the same run again keeps its round
    assert [m["round"] for m in list_runs(ws, "select")] == [1, 1, 2]


def test_dedup_removed_items_are_never_candidates(tmp_path):
    vectors = spread(6)
    vectors[1] = vectors[0] + np.eye(4)[3] * 0.01  # near-duplicate of w0
    ws = workspace(tmp_path, vectors)
    semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1))
    result = select(ws, select_config(budget=10, strategy="random"))
    rows = table(result)
    removed = [i for i, r in rows.items() if r["reason"] and r["reason"].startswith("dedup: semantic-duplicate")]
    assert len(removed) == 1 and removed[0] in ("w0", "w1")
    assert len(picked(result)) == 5 and removed[0] not in picked(result)


@pytest.mark.parametrize("typical", [0.0, 10.0])  # uncertainty x diversity only / TypiClust phase first
def test_hybrid_in_the_stage_skips_near_duplicates_of_labeled_and_of_each_other(tmp_path, typical):
    # w0 labeled; w1 ~ w0; w2 ~ w3 (cos > 0.9); w4, w5 elsewhere. w1, w2, w3 are the most uncertain.
    vectors = [angle(0), angle(5), angle(90), angle(93), angle(45), angle(170)]
    ws = workspace(tmp_path, vectors)
    (tmp_path / "labeled.txt").write_text("w0\n")
    ids = [f"w{i}" for i in range(1, 6)]
    probs = probs_with_margins([0.0, 0.02, 0.01, 0.6, 0.7])
    pq.write_table(pa.table({"id": ids, "logits": list(np.log(probs))}), tmp_path / "p.parquet")
    result = select(ws, select_config(budget=3, predictions=str(tmp_path / "p.parquet"),
                                     labeled=str(tmp_path / "labeled.txt"), typical_per_class=typical))
    assert "w1" not in picked(result) and not {"w2", "w3"} <= set(picked(result))
    assert len(picked(result)) == 3
    if typical == 0:
        assert picked(result)[0] == "w3"  # most uncertain x farthest


def test_logits_and_probabilities_give_the_same_batch_and_missing_rows_are_reported(tmp_path):
    ws = workspace(tmp_path, spread(6))
    probs = probs_with_margins([0.4, 0.1, 0.3, 0.2])
    ids = ["w0", "w2", "w3", "w5"]
    pq.write_table(pa.table({"id": ids, "probs": list(probs)}), tmp_path / "p.parquet")
    pq.write_table(pa.table({"id": ids, "logits": list(np.log(probs) + 3.0)}), tmp_path / "l.parquet")
    a = select(ws, select_config(budget=2, strategy="entropy", predictions=str(tmp_path / "p.parquet")))
    b = select(ws, select_config(budget=2, strategy="entropy", predictions=str(tmp_path / "l.parquet")))
    assert picked(a) == picked(b) == ["w2", "w5"]
    assert table(a)["w1"]["reason"] == "no-prediction"


def test_probe_scores_the_pool_from_manifest_labels(tmp_path):
    rng = np.random.default_rng(0)
    labels = ["left" if i % 2 else "right" for i in range(30)]
    vectors = [angle(80 if lab == "left" else 10) + rng.normal(scale=0.2, size=4) for lab in labels]
    vectors[7] = angle(45)  # on the boundary: the most uncertain item
    ws = workspace(tmp_path, vectors, labels=labels)
    (tmp_path / "labeled.txt").write_text("\n".join(f"w{i}" for i in range(10, 30)) + "\n")
    result = select(ws, select_config(budget=3, strategy="margin", probe=True, labeled=str(tmp_path / "labeled.txt"),
                                     out=str(tmp_path / "batch.json")))
    assert picked(result)[0] == "w7"
    tasks = json.loads((tmp_path / "batch.json").read_text())
    assert [t["meta"]["id"] for t in tasks] == picked(result)
    assert tasks[0]["data"] == {"text": "item 7", "id": "w7"}
    assert {t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks} <= {"left", "right"}


def test_class_quota_in_the_stage(tmp_path):
    ws = workspace(tmp_path, spread(8))
    probs = np.array([[0.55, 0.45]] * 4 + [[0.2, 0.8]] * 4, dtype=np.float32)  # class 0 most uncertain
    np.save(tmp_path / "p.npy", probs)
    result = select(ws, select_config(budget=4, predictions=str(tmp_path / "p.npy"), dup_threshold=None,
                                     class_quota=(("0", 1),)))
    assert sum(r in ("w0", "w1", "w2", "w3") for r in picked(result)) == 1 and len(picked(result)) == 4


@pytest.mark.parametrize("make,message", [
    (lambda p: np.save(p / "x.npy", np.full((5, 2), 0.5, np.float32)), "5 rows, but the manifest has 6 ok rows"),
    (lambda p: np.save(p / "x.npy", np.array([[np.nan, 1]] * 6, np.float32)), "NaN"),
    (lambda p: pq.write_table(pa.table({"id": ["w0", "zz"], "probs": [[0.5, 0.5]] * 2}), p / "x.parquet"),
     "1 ids are not in the manifest (e.g. 'zz')"),
])
def test_bad_predictions_are_one_line_errors(tmp_path, make, message):
    ws = workspace(tmp_path, spread(6))
    make(tmp_path)
    path = next(tmp_path.glob("x.*"))
    with pytest.raises(CurateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select(ws, select_config(budget=2, strategy="margin", predictions=str(path)))


@pytest.mark.parametrize("cfg,message", [
    (dict(strategy="margin"), "needs model predictions.*--probe"),
    (dict(strategy="bald"), "needs MC-dropout samples"),
    (dict(strategy="nope"), "unknown strategy 'nope'"),
    (dict(budget=0, strategy="random"), "--budget must be positive"),
])
def test_config_errors(tmp_path, cfg, message):
    ws = workspace(tmp_path, spread(4))
    with pytest.raises(CurateError, match=message):
        select(ws, select_config(**{"budget": 2, **cfg}))


def test_cli_smoke_and_errors(tmp_path):
    ws = workspace(tmp_path, spread(6))
    out = tmp_path / "b.parquet"
    result = CliRunner().invoke(cli, ["select", "-w", ws.root.path, "--budget", "3", "--strategy", "coreset",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "picked 3 of 6 candidates" in result.output
    batch = pq.read_table(out)
    assert batch.column("rank").to_pylist() == [1, 2, 3] and {"id", "source", "score"} <= set(batch.column_names)
    help_text = CliRunner().invoke(cli, ["select", "--help"]).output
    for name in ("hybrid", "least-confidence", "margin", "entropy", "bald", "coreset", "badge", "typiclust",
                 "cluster-margin", "random"):
        assert f"{name}:" in help_text
    proc = subprocess.run([sys.executable, "-m", "curate", "select", "-w", ws.root.path, "--budget", "2",
                           "--strategy", "entropy", "--out", str(tmp_path / "x.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--probe" in proc.stderr and "Traceback" not in proc.stderr


def test_bald_from_parquet_mc_column_and_from_a_3d_npy(tmp_path):
    ws = workspace(tmp_path, spread(4))
    mc = np.array([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]], [[0.9, 0.1], [0.8, 0.2]],
                   [[0.0, 1.0], [1.0, 0.0]]], dtype=np.float32)  # w1 and w3 disagree across samples
    pq.write_table(pa.table({"id": ["w0", "w1", "w2", "w3"], "mc": [m.tolist() for m in mc]}), tmp_path / "m.parquet")
    np.save(tmp_path / "m.npy", mc)
    for path in ("m.parquet", "m.npy"):
        result = select(ws, select_config(budget=2, strategy="bald", predictions=str(tmp_path / path)))
        assert picked(result) == ["w1", "w3"]
        assert table(result)["w1"]["score"] == pytest.approx(np.log(2), abs=1e-6)


def planted(clusters=4, size=8, d=8, seed=0):
    """``clusters`` tight groups of ``size`` around orthogonal directions: cluster of row i is i // size."""
    rng = np.random.default_rng(seed)
    return [np.eye(d)[i // size] + rng.normal(scale=0.05, size=d) for i in range(clusters * size)]


def cli_select(ws, *args):
    result = CliRunner().invoke(cli, ["select", "-w", ws.root.path, *args])
    assert result.exit_code == 0, result.output
    return result.output


def batch_ids(path):
    return [t["meta"]["id"] for t in json.loads(path.read_text())]


def test_default_select_without_predictions_is_a_typiclust_cold_start(tmp_path):
    ws = workspace(tmp_path, planted())
    out = cli_select(ws, "-n", "4", "-o", str(tmp_path / "b" / "batch.json"))
    assert "picked 4 of 32 candidates" in out
    assert "warm-up  TypiClust's typical items first: no model predictions" in out
    ids = batch_ids(tmp_path / "b" / "batch.json")
    assert sorted(int(i[1:]) // 8 for i in ids) == [0, 1, 2, 3]  # one typical item of each planted cluster
    notes = (tmp_path / "b" / "LABELING.md").read_text()
    assert "TypiClust warm-up: no model predictions" in notes and "strategy `hybrid`" in notes


def test_manifest_labels_are_the_labeled_set_without_a_labeled_file(tmp_path):
    labels = [("a" if i // 8 % 2 else "b") if i % 8 < 3 else None for i in range(32)]  # 3 labeled per cluster
    ws = workspace(tmp_path, planted(), labels=labels)
    labeled = {f"w{i}" for i, lab in enumerate(labels) if lab}
    out = cli_select(ws, "-n", "6", "-o", str(tmp_path / "b" / "batch.json"))
    assert "picked 6 of 20 candidates" in out and "12 items with a manifest label (no --labeled file)" in out
    assert "warm-up" in out  # no predictions: still the cold start
    ids = batch_ids(tmp_path / "b" / "batch.json")
    assert len(set(ids)) == 6 and not set(ids) & labeled
    # --probe trains on the manifest labels (12 labels for 2 classes: past the warm-up)
    out = cli_select(ws, "-n", "6", "--probe", "-o", str(tmp_path / "p" / "batch.json"))
    assert "picked 6 of 20 candidates" in out and "warm-up" not in out
    tasks = json.loads((tmp_path / "p" / "batch.json").read_text())
    assert len(tasks) == 6 and not {t["meta"]["id"] for t in tasks} & labeled
    for t in tasks:  # the probe learnt the labels: cluster 1 and 3 are a, 0 and 2 are b
        row = int(t["meta"]["id"][1:])
        assert t["predictions"][0]["result"][0]["value"]["choices"] == ["a" if row // 8 % 2 else "b"]


def test_every_candidate_labeled_in_the_manifest_still_picks(tmp_path):
    ws = workspace(tmp_path, planted(), labels=["a" if i // 8 % 2 else "b" for i in range(32)])
    out = cli_select(ws, "-n", "4", "-o", str(tmp_path / "b" / "batch.json"))
    assert "picked 4 of 32 candidates" in out and "every candidate has a manifest label" in out
    assert len(batch_ids(tmp_path / "b" / "batch.json")) == 4
    result = select(ws, select_config(budget=4, strategy="margin", probe=True))  # trains on all 32 labels
    assert len(picked(result)) == 4 and result.meta["labeled_from"] == "given"


def test_probe_without_labels_says_what_is_missing(tmp_path):
    ws = workspace(tmp_path, planted())
    with pytest.raises(CurateError, match="the manifest has none and no --labeled file was given"):
        select(ws, select_config(budget=2, probe=True))
    (tmp_path / "ids.txt").write_text("w0\nw9\n")
    with pytest.raises(CurateError, match=r"no item in --labeled .*ids.txt has a label"):
        select(ws, select_config(budget=2, probe=True, labeled=str(tmp_path / "ids.txt")))


def test_rerunning_select_with_the_same_labeled_set_keeps_the_round(tmp_path):
    ws = workspace(tmp_path, planted())
    first = cli_select(ws, "-n", "4", "-o", str(tmp_path / "b1.csv"))
    again = cli_select(ws, "-n", "4", "-o", str(tmp_path / "b1.csv"))
    bigger = cli_select(ws, "-n", "6", "-o", str(tmp_path / "b2.csv"))
    assert "round 1" in first and "round 1" in again and "round 1" in bigger
    (tmp_path / "labeled.txt").write_text("w0\nw8\n")
    assert "round 2" in cli_select(ws, "-n", "4", "--labeled", str(tmp_path / "labeled.txt"), "-o",
                                   str(tmp_path / "b3.csv"))
    (tmp_path / "labeled.txt").write_text("w0\nw8\n")  # rewritten, same ids: a new run, the same round
    assert "round 2" in cli_select(ws, "-n", "3", "--labeled", str(tmp_path / "labeled.txt"), "-o",
                                   str(tmp_path / "b4.csv"))
    assert [m["round"] for m in list_runs(ws, "select")] == [1, 1, 2, 2]
