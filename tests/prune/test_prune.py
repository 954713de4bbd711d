"""curate prune on hand-made vector sets (precomputed embeddings): k-center, dedup-awareness,
labeled centers, run reuse, one row per manifest id."""


import numpy as np
import pyarrow.parquet as pq
import pytest

from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.errors import CurateError
from curate.prune.stage import PruneConfig, prune
from curate.select.kcenter import kcenter_greedy
from tests.conftest import vector_workspace


def angle(deg, d=3):
    v = np.zeros(d)
    v[0], v[1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v


def workspace(tmp_path, vectors, labels=None, texts=None, name="w"):
    """A text workspace whose embeddings are exactly ``vectors``; an empty text is quarantined."""
    return vector_workspace(tmp_path, name, vectors, texts, label=labels)


def by_id(result):
    return {r["id"]: r for r in result.run.table.to_pylist()}


def kept_ids(result):
    return {r["id"] for r in result.run.table.to_pylist() if r["kept"]}


def test_kcenter_keeps_the_greedy_picks_with_scores_and_ranks(tmp_path):
    # eight directions on a circle: 0, 10, 20, 90, 100, 180, 185, 270 degrees
    degrees = [0, 10, 20, 90, 100, 180, 185, 270]
    vectors = np.array([angle(a) for a in degrees])
    ws = workspace(tmp_path, vectors)
    result = prune(ws, PruneConfig(count=4, strategy="kcenter", device="cpu"))
    table = result.run.table
    assert table.column("id").to_pylist() == [f"w{i}" for i in range(8)]
    ref = kcenter_greedy(vectors.astype(np.float32), 4, device="cpu")
    got = by_id(result)
    order = sorted((r["rank"], r["id"]) for r in got.values() if r["kept"])
    assert [i for _, i in order] == [f"w{p}" for p in ref.picks]
    for rank, p in enumerate(ref.picks):
        row = got[f"w{p}"]
        assert row["kept"] and row["reason"] is None and row["rank"] == rank
        assert row["score"] == pytest.approx(ref.distances[rank], abs=1e-3) or np.isinf(ref.distances[rank])
    # a pruned item's score is its cosine distance to the nearest kept item
    picked = vectors[ref.picks]
    for i in set(range(8)) - set(ref.picks.tolist()):
        row = got[f"w{i}"]
        assert not row["kept"] and row["reason"] == "pruned" and row["rank"] is None
        assert row["score"] == pytest.approx(1 - np.max(picked @ vectors[i]), abs=1e-3)
    assert result.meta["radius"] == pytest.approx(ref.radius, abs=1e-3)
    assert result.meta["counts"] == {"kept": 4, "pruned": 4}


def test_dedup_removed_and_quarantined_items_are_never_kept_and_keep_their_reason(tmp_path):
    # w1 copies w0 (cos 0.9999), w4 has empty text (quarantined at ingest)
    vectors = [angle(0), angle(0.5), angle(60), angle(120), angle(170), angle(240)]
    ws = workspace(tmp_path, vectors, texts=["aaaa", "b", "c", "d", "", "f"])
    dedup = semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1, keep="column:bytes:desc"))
    assert not by_id(dedup)["w1"]["kept"]
    result = prune(ws, PruneConfig(fraction=1.0, device="cpu"))
    got = by_id(result)
    assert len(got) == 6 and result.run.table.column("id").to_pylist() == [f"w{i}" for i in range(6)]
    assert not got["w1"]["kept"] and got["w1"]["reason"] == "dedup: semantic-duplicate"
    assert got["w1"]["score"] is None and got["w1"]["rank"] is None
    assert not got["w4"]["kept"] and got["w4"]["reason"].startswith("quarantined: empty-text")
    assert kept_ids(result) == {"w0", "w2", "w3", "w5"}  # fraction 1.0 keeps every candidate
    assert result.meta["upstream_runs"] == {"dedup": dedup.run.run_id}
    half = prune(ws, PruneConfig(fraction=0.5, device="cpu"))
    assert len(kept_ids(half)) == 2 and kept_ids(half) <= {"w0", "w2", "w3", "w5"}


def test_labeled_items_are_initial_centers_and_always_kept(tmp_path):
    degrees = [0, 15, 45, 90, 135, 180, 200, 310]
    vectors = np.array([angle(a) for a in degrees])
    ws = workspace(tmp_path, vectors)
    (tmp_path / "labeled.txt").write_text("w5\nw6\nnot-an-id\n")
    result = prune(ws, PruneConfig(count=4, labeled=str(tmp_path / "labeled.txt"), device="cpu"))
    got = by_id(result)
    candidates = np.ones(8, dtype=bool)
    candidates[[5, 6]] = False
    ref = kcenter_greedy(vectors, 2, candidates=candidates, initial=np.array([5, 6]), device="cpu")
    assert kept_ids(result) == {"w5", "w6"} | {f"w{p}" for p in ref.picks}
    assert got["w5"]["labeled"] and got["w5"]["rank"] == 0 and got["w6"]["rank"] == 1
    assert [got[f"w{p}"]["rank"] for p in ref.picks] == [2, 3]
    # by hand: farthest from the labeled 180/200 degrees is 15 degrees (165 away), then 90 (75 from 15)
    assert ref.picks.tolist() == [1, 3]
    assert got["w1"]["score"] == pytest.approx(1 - np.cos(np.radians(165)), abs=1e-3)
    assert got["w3"]["score"] == pytest.approx(1 - np.cos(np.radians(75)), abs=1e-3)
    assert any("1 labeled ids are not in the manifest" in m for m in result.meta["messages"])


def test_run_is_reused_and_a_changed_input_makes_a_new_run(tmp_path):
    ws = workspace(tmp_path, [angle(a) for a in (0, 30, 60, 90, 120)])
    first = prune(ws, PruneConfig(count=2, device="cpu"))
    again = prune(ws, PruneConfig(count=2, device="cpu"))
    assert again.run.reused and again.run.run_id == first.run.run_id and not first.run.reused
    assert again.run.table.equals(first.run.table) and again.meta["counts"] == first.meta["counts"]
    assert first.run.run_id.startswith("kcenter-") and len(first.run.run_id) == len("kcenter-") + 12
    other = prune(ws, PruneConfig(count=3, device="cpu"))
    assert other.run.run_id != first.run.run_id
    labeled = tmp_path / "l.txt"
    labeled.write_text("w0\n")
    a = prune(ws, PruneConfig(count=2, labeled=str(labeled), device="cpu"))
    labeled.write_text("w1\n")  # same path, new content: a new run
    b = prune(ws, PruneConfig(count=2, labeled=str(labeled), device="cpu"))
    assert a.run.run_id != b.run.run_id and by_id(b)["w1"]["kept"]
    semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1))  # a new upstream run: a new prune run
    assert prune(ws, PruneConfig(count=2, device="cpu")).run.run_id != first.run.run_id
    on_disk = pq.read_table(tmp_path / "w" / "decisions" / "prune" / f"{first.run.run_id}.parquet")
    assert on_disk.column_names == ["id", "kept", "reason", "score", "rank", "cluster", "labeled"]
    assert str(on_disk.schema.field("score").type) == "float" and str(on_disk.schema.field("rank").type) == "int64"


def test_bad_configs_are_clear_errors(tmp_path):
    ws = workspace(tmp_path, [angle(0), angle(90)], labels=["a", "b"])
    for config, message in [
        (PruneConfig(), "exactly one of --fraction and --count"),
        (PruneConfig(fraction=0.5, count=1), "exactly one of --fraction and --count"),
        (PruneConfig(fraction=0.0), r"--fraction must be in \(0, 1\]"),
        (PruneConfig(fraction=1.5), r"--fraction must be in \(0, 1\]"),
        (PruneConfig(count=-1), "--count must be >= 0"),
        (PruneConfig(count=1, strategy="random"), "unknown strategy"),
        (PruneConfig(count=1, keep="medium"), "--keep must be one of"),
        (PruneConfig(count=1, balance_by="colour"), "unknown label column 'colour'"),
        (PruneConfig(count=1, target_distribution="a=x"), "is not a number"),
        (PruneConfig(count=1, target_distribution="a=-1,b=1"), "non-negative"),
        (PruneConfig(count=1, labeled=str(tmp_path / "missing.txt")), "not found"),
        (PruneConfig(count=1, model="nope"), "no embeddings"),
    ]:
        with pytest.raises(CurateError, match=message):
            prune(ws, config)


def test_count_above_the_pool_keeps_everything_with_a_note(tmp_path):
    ws = workspace(tmp_path, [angle(a) for a in (0, 45, 90)])
    result = prune(ws, PruneConfig(count=10, device="cpu"))
    assert kept_ids(result) == {"w0", "w1", "w2"} and result.meta["target"] == 3
    assert any("more than the 3 items available" in m for m in result.meta["messages"])
