"""Semantic dedup on hand-made vector sets (precomputed embeddings), so every expected
decision can be worked out by hand."""


import numpy as np
import pyarrow.parquet as pq
import pytest

from curate.dedup.knn import KnnConfig, KnnDedup
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.errors import CurateError
from curate.runner import run_stage
from tests.conftest import vector_workspace


def unit(*v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def angle(deg, d=3):
    v = np.zeros(d)
    v[0], v[1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v


def workspace(tmp_path, name, vectors, texts=None, splits=None):
    """A text workspace whose embeddings are exactly ``vectors`` (rows in manifest order)."""
    return vector_workspace(tmp_path, name, vectors, texts, split=splits)


def decisions(result):
    return {r["id"]: r for r in result.run.table.to_pylist()}


def test_chaining_rule_explicit(tmp_path):
    # a~b and b~c at cos 20deg = 0.94 > 0.9, but a vs c at cos 40deg = 0.77. Longest text
    # first: a, then b, then c.
    ws = workspace(tmp_path, "w", [angle(0), angle(20), angle(40)], texts=["aaaaaa", "bbbb", "cc"])
    common = dict(threshold=(0.9,), clusters=1, keep="column:bytes:desc")
    chained = decisions(semantic_dedup(ws, SemanticConfig(chain=True, **common)))
    assert [chained[f"w{i}"]["kept"] for i in range(3)] == [True, False, False]
    assert chained["w2"]["duplicate_of"] == "w1"  # removed by an item that is itself removed
    unchained = decisions(semantic_dedup(ws, SemanticConfig(chain=False, **common)))
    assert [unchained[f"w{i}"]["kept"] for i in range(3)] == [True, False, True]
    assert unchained["w1"]["duplicate_of"] == "w0" and unchained["w1"]["reason"] == "semantic-duplicate"
    assert unchained["w0"]["group"] == unchained["w1"]["group"] == 0 and unchained["w2"]["group"] is None
    np.testing.assert_allclose(unchained["w2"]["max_sim"], np.cos(np.radians(20)), atol=1e-3)
    assert unchained["w0"]["max_sim"] is None  # nothing outranks the first item


@pytest.mark.parametrize("policy", ["hard", "easy", "column:bytes:desc", "column:bytes:asc", "random"])
def test_keep_policies_pick_the_expected_copy(tmp_path, policy):
    # one cluster; p and q are near-duplicates (cos 0.995); r and s are unrelated
    vectors = [angle(30), angle(35.7), angle(100), unit(0, 0, 1)]
    ws = workspace(tmp_path, "w", vectors, texts=["p" * 5, "q" * 9, "r", "s"])
    got = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1, keep=policy, seed=3)))
    centroid = np.mean(np.asarray(vectors), axis=0)
    centroid /= np.linalg.norm(centroid)
    sim = {name: float(np.asarray(v) @ centroid) for name, v in zip("pq", vectors)}
    expected_kept = {
        "hard": min(sim, key=sim.get),  # farthest from the centroid survives
        "easy": max(sim, key=sim.get),
        "column:bytes:desc": "q",  # longer text
        "column:bytes:asc": "p",
    }.get(policy)
    kept = {name for name, i in zip("pq", (0, 1)) if got[f"w{i}"]["kept"]}
    assert len(kept) == 1
    if expected_kept:
        assert kept == {expected_kept}
    assert got["w2"]["kept"] and got["w3"]["kept"]


def test_duplicate_pair_across_a_cluster_boundary_is_found(tmp_path):
    rng = np.random.default_rng(0)
    group_a = [unit(*(np.array([1.0, 0, 0, 0]) + 0.05 * rng.normal(size=4))) for _ in range(30)]
    group_b = [unit(*(np.array([0, 1.0, 0, 0]) + 0.05 * rng.normal(size=4))) for _ in range(30)]
    p = unit(1.0, 0.96, 0.3, 0)  # just on A's side of the bisector
    q = unit(0.96, 1.0, 0.3, 0)  # just on B's side; cos(p, q) ~ 0.999
    ws = workspace(tmp_path, "w", [*group_a, *group_b, p, q])
    fixed = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=2)))
    assert fixed["w60"]["cluster"] != fixed["w61"]["cluster"], "the pair must straddle the boundary"
    assert [fixed["w60"]["kept"], fixed["w61"]["kept"]].count(False) == 1
    reference = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=2, margin=0.0)))
    assert reference["w60"]["kept"] and reference["w61"]["kept"], "plain SemDeDup misses it"


def test_several_thresholds_in_one_pass(tmp_path):
    ws = workspace(tmp_path, "w", [angle(0), angle(10), angle(25), angle(60)], texts=["aaaa", "bbb", "cc", "d"])
    run = semantic_dedup(ws, SemanticConfig(threshold=(0.95, 0.8), clusters=1, keep="column:bytes:desc")).run
    table = run.table.to_pydict()
    # cos10 = 0.985, cos15 = 0.966, cos25 = 0.906, cos35 = 0.82
    assert table["kept@0.95"] == [True, False, True, True]
    assert table["kept@0.8"] == [True, False, False, True]
    assert table["kept"] == table["kept@0.95"]


def test_incremental_against_another_workspace(tmp_path):
    old = workspace(tmp_path, "old", [angle(0), angle(90)])
    new = workspace(tmp_path, "new", [angle(1), angle(45), angle(135)])
    got = decisions(semantic_dedup(new, SemanticConfig(threshold=(0.99,), clusters=1, against=old.root.path)))
    assert not got["new0"]["kept"] and got["new0"]["duplicate_of"] == f"{old.root.path}::old0"
    assert got["new1"]["kept"] and got["new2"]["kept"]


def test_leakage_between_train_and_test(tmp_path):
    vectors = [angle(0), angle(50), angle(0.5), angle(100)]
    ws = workspace(tmp_path, "w", vectors, splits=["train", "train", "test", "test"])
    result = semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1))
    assert result.meta["leakage"] == 1
    leak = pq.read_table(tmp_path / "w" / "decisions" / "dedup" / f"{result.run.run_id}-leakage.parquet")
    assert leak.to_pylist() == [{"id": "w2", "split": "test", "train_id": "w0",
                                 "similarity": pytest.approx(np.cos(np.radians(0.5)), abs=1e-3)}]


def test_rows_without_embeddings_are_accounted_for_and_runs_are_reused(tmp_path):
    ws = workspace(tmp_path, "w", [angle(0), angle(0.1), angle(90)], texts=["a", "", "c"])
    first = semantic_dedup(ws, SemanticConfig(clusters=1))
    table = first.run.table
    assert table.num_rows == 3 and table.column("reason").to_pylist()[1] == "quarantined"
    again = semantic_dedup(ws, SemanticConfig(clusters=1))
    assert again.run.reused and again.run.run_id == first.run.run_id


def test_bad_config_is_a_clear_error(tmp_path):
    ws = workspace(tmp_path, "w", [angle(0), angle(90)])
    with pytest.raises(CurateError, match="keep policy"):
        semantic_dedup(ws, SemanticConfig(keep="biggest"))
    with pytest.raises(CurateError, match="no embeddings"):
        semantic_dedup(ws, SemanticConfig(model="nope"))


def test_knn_method_groups_connected_components(tmp_path):
    # a~b (cos 0.994) and b~c (cos 0.994) but a vs c = cos 13deg = 0.974 < 0.99: one component
    vectors = [angle(0), angle(6.5), angle(13), angle(90)]
    ws = workspace(tmp_path, "w", vectors, texts=["aaaa", "bbb", "cc", "d"])
    got = decisions(run_stage(ws, KnnDedup(), KnnConfig(threshold=(0.99,), keep="column:bytes:desc")))
    assert [got[f"w{i}"]["kept"] for i in range(4)] == [True, False, False, True]
    assert got["w1"]["duplicate_of"] == got["w2"]["duplicate_of"] == "w0"  # transitive grouping
    assert got["w0"]["group"] == got["w2"]["group"] is not None and got["w3"]["group"] is None
    np.testing.assert_allclose(got["w0"]["max_sim"], np.cos(np.radians(6.5)), atol=1e-3)


def test_incremental_against_uses_the_saved_faiss_index(tmp_path, monkeypatch):
    old = workspace(tmp_path, "old", [angle(0), angle(90), unit(0, 0, 1)])
    semantic_dedup(old, SemanticConfig(threshold=(0.99,), clusters=1, save_index=True))  # saves index/<slug>/
    folder = tmp_path / "old" / "index" / "precomputed-vectors"
    assert (folder / "index.json").exists() and (folder / "faiss.index").exists()
    import curate.kernels.dispatch as dispatch

    def no_exact_scan(*args, **kwargs):
        raise AssertionError("the saved index should answer --against")

    monkeypatch.setattr(dispatch, "topk_cosine", no_exact_scan)
    new = workspace(tmp_path, "new", [angle(89.5), angle(45)])
    got = decisions(semantic_dedup(new, SemanticConfig(threshold=(0.99,), clusters=1, against=old.root.path)))
    assert not got["new0"]["kept"] and got["new0"]["duplicate_of"] == f"{old.root.path}::old1"
    assert got["new1"]["kept"]


@pytest.mark.parametrize("flag, saved", [([], False), (["--save-index"], True)])
def test_cli_reports_phases_and_saves_the_index_only_when_asked(tmp_path, flag, saved):
    from click.testing import CliRunner

    from curate.cli import cli

    ws = workspace(tmp_path, "w", [angle(0), angle(5), angle(90)])
    result = CliRunner().invoke(cli, ["dedup", "-w", ws.root.path, "--method", "semantic", "--clusters", "1",
                                      *flag])
    assert result.exit_code == 0, result.output
    assert "kept 2" in result.output and "seconds  kmeans" in result.output
    folder = tmp_path / "w" / "index" / "precomputed-vectors"
    assert (folder / "centroids.npy").exists() and (folder / "index.json").exists() == saved


def test_against_a_large_workspace_without_a_saved_index_builds_one(tmp_path, monkeypatch):
    import curate.dedup.semantic as semantic
    import curate.kernels.dispatch as dispatch

    rng = np.random.default_rng(3)
    base = rng.normal(size=(300, 8))
    old = workspace(tmp_path, "old", base)
    semantic_dedup(old, SemanticConfig(threshold=(0.999,), clusters=4))
    assert not (tmp_path / "old" / "index" / "precomputed-vectors" / "index.json").exists()

    def no_exact_scan(*args, **kwargs):
        raise AssertionError("a large --against workspace is searched through an index")

    monkeypatch.setattr(dispatch, "topk_cosine", no_exact_scan)
    monkeypatch.setattr(semantic, "AGAINST_INDEX_ROWS", 100)
    copies = base[[7, 123]] + 1e-4 * rng.normal(size=(2, 8))  # cosine > 0.9999 to old7, old123
    new = workspace(tmp_path, "new", np.vstack([copies, rng.normal(size=(1, 8))]))
    got = decisions(semantic_dedup(new, SemanticConfig(threshold=(0.999,), clusters=1, against=old.root.path)))
    assert [got[f"new{i}"]["duplicate_of"] for i in range(3)] == [f"{old.root.path}::old7",
                                                                  f"{old.root.path}::old123", None]
    assert [got[f"new{i}"]["reason"] for i in range(3)] == ["semantic-duplicate"] * 2 + [None]


def _dedup_cli_error(capsys, *args: str) -> str:
    """Run ``curate dedup ARGS`` in-process; its exit status must be 2 and stderr one ``error:`` line."""
    from curate.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["dedup", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_against_the_workspace_itself_is_refused_before_any_work(tmp_path, capsys):
    from curate.decisions import latest_run

    ws = workspace(tmp_path, "w", [angle(0), angle(90)])
    kept = semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1))
    (tmp_path / "link").symlink_to(tmp_path / "w")
    for same in (ws.root.path, ws.root.path + "/", str(tmp_path / "link"), str(tmp_path / "x" / ".." / "w")):
        with pytest.raises(CurateError, match="is this workspace"):
            semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1, against=same))
    line = _dedup_cli_error(capsys, "-w", ws.root.path, "--against", str(tmp_path / "link"), "--no-progress")
    assert "is this workspace" in line and "every item would be removed" in line
    # nothing ran: the good run is still the latest dedup run that prune and export apply
    assert latest_run(ws, "dedup").run_id == kept.run.run_id
    assert len(list((tmp_path / "w" / "decisions" / "dedup").glob("*.json"))) == 1


def test_against_a_copy_with_the_same_manifest_is_refused(tmp_path, capsys):
    import shutil

    ws = workspace(tmp_path, "w", [angle(0), angle(90)])
    shutil.copytree(tmp_path / "w", tmp_path / "copy")
    line = _dedup_cli_error(capsys, "-w", ws.root.path, "--against", str(tmp_path / "copy"), "--no-progress")
    assert "has the same manifest as this workspace" in line
    assert not (tmp_path / "w" / "decisions" / "dedup").exists()
    missing = _dedup_cli_error(capsys, "-w", ws.root.path, "--against", str(tmp_path / "nowhere"))
    assert "does not exist" in missing and not (tmp_path / "w" / "decisions" / "dedup").exists()
