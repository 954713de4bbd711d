"""`curate audit` on texts with exact vectors: label signal from predictions and from kNN, label conflicts,
bad predictions, select --label-issues, a pipeline file with [audit], review overrides."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.audit.labels import label_quality
from curate.audit.stage import AuditConfig, audit
from curate.decisions import latest_run
from curate.dedup.exact import exact_dedup
from curate.errors import CurateError
from tests.conftest import run_cli, vector_workspace

N, CLASSES = 30, ("c0", "c1", "c2")
FLIPPED = (4, 17)  # given the next class's label


def _texts(n: int) -> list[str]:
    words = ["river", "engine", "garden", "violin", "harbour", "pepper", "glacier", "lantern", "meadow", "quartz"]
    return [f"note {words[i % 10]} {words[(i * 3 + 1) % 10]} {words[(i * 7 + 2) % 10]} seen on day {i} by "
            f"{words[(i + 5) % 10]}" for i in range(n)]


def _world(tmp_path, name="a", duplicate=False):
    """30 items in 3 tight clusters; items 4 and 17 carry the next cluster's label. ``duplicate``: item 29
    repeats item 0's text with another label (an exact-duplicate group with two labels)."""
    rng = np.random.default_rng(0)
    truth = np.arange(N) % 3
    vectors = np.eye(3, 8)[truth] * 4 + 0.3 * rng.normal(size=(N, 8))
    labels = [CLASSES[c] for c in truth]
    for i in FLIPPED:
        labels[i] = CLASSES[(truth[i] + 1) % 3]
    texts = _texts(N)
    if duplicate:
        texts[29] = texts[0]
        labels[29] = "c1"  # item 0 is c0
    return vector_workspace(tmp_path, name, vectors, texts=texts, label=labels), truth, labels


def _predictions(tmp_path, ids, truth, name="preds.parquet"):
    probs = np.full((len(ids), 3), 0.05)
    probs[np.arange(len(ids)), truth] = 0.9
    probs[7] = 0.25
    probs[7, truth[7]] = 0.5  # an unsure but right prediction
    path = tmp_path / name
    pq.write_table(pa.table({"id": ids, "probs": probs.tolist()}), path)
    return str(path), probs


def test_planted_flips_from_predictions_match_label_quality(tmp_path):
    ws, truth, labels = _world(tmp_path)
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    path, probs = _predictions(tmp_path, ids, truth)
    result = audit(ws, AuditConfig(predictions=path), progress=False)
    table = result.table
    assert table.column("id").to_pylist() == ids
    expected = label_quality(probs.astype(np.float32), np.array([CLASSES.index(lab) for lab in labels]))
    np.testing.assert_allclose(table.column("label_score").to_numpy(), expected.label_score, rtol=1e-6)
    assert table.column("label_issue").to_pylist() == expected.label_issue.tolist()
    assert sorted(np.flatnonzero(expected.label_issue)) == list(FLIPPED)
    assert table.column("suggested_label").to_pylist() == [CLASSES[c] for c in truth]
    assert result.meta["label_source"] == "predictions" and result.meta["label_issues"] == 2
    assert all(table.column("kept").to_pylist())  # label issues are never dropped by default
    assert audit(ws, AuditConfig(predictions=path), progress=False).reused


def test_knn_label_signal_without_predictions(tmp_path):
    ws, truth, labels = _world(tmp_path)
    table = audit(ws, AuditConfig(k=5, checks=("too-short", "outlier")), progress=False).table
    assert table.column_names == ["id", "kept", "reason", "label_score", "label_issue", "suggested_label",
                                  "issues", "too-short", "outlier"]
    flagged = np.flatnonzero(table.column("label_issue").to_numpy(zero_copy_only=False))
    assert sorted(flagged) == list(FLIPPED)
    assert [table.column("suggested_label")[i].as_py() for i in FLIPPED] == [CLASSES[truth[i]] for i in FLIPPED]
    scores = table.column("label_score").to_numpy()
    assert np.isfinite(scores).all() and scores[list(FLIPPED)].max() < np.delete(scores, FLIPPED).min()


def test_probe_label_signal_is_cross_validated(tmp_path):
    ws, truth, _ = _world(tmp_path)
    result = audit(ws, AuditConfig(probe=True, folds=3, checks=("too-short",)), progress=False)
    table = result.table
    assert result.meta["label_source"] == "probe"
    assert set(FLIPPED) <= set(np.flatnonzero(table.column("label_issue").to_numpy(zero_copy_only=False)))
    scores = table.column("label_score").to_numpy()
    assert sorted(np.argsort(scores)[:2]) == list(FLIPPED)  # each scored by a probe that never saw it
    assert [table.column("suggested_label")[i].as_py() for i in FLIPPED] == [CLASSES[truth[i]] for i in FLIPPED]


def test_label_conflict_from_a_dedup_group(tmp_path):
    ws, _, _ = _world(tmp_path, duplicate=True)
    exact_dedup(ws, progress=False)
    table = audit(ws, AuditConfig(checks=("label-conflict",)), progress=False).table
    conflict = table.column("label-conflict").to_pylist()
    assert conflict[0] == conflict[29] == 1.0 and sum(conflict) == 2.0
    issues = table.column("issues").to_pylist()
    assert issues[0] == issues[29] == ["label-conflict"] and not any(issues[1:29])


@pytest.mark.parametrize("case", ["rows", "unknown-id", "nan", "classes"])
def test_bad_predictions_are_one_line_errors_before_any_work(tmp_path, capsys, case):
    ws, truth, _ = _world(tmp_path)
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    probs = np.full((N, 3), 1 / 3)
    if case == "rows":
        path = tmp_path / "p.npy"
        np.save(path, probs[:-1])
    elif case == "unknown-id":
        path = tmp_path / "p.parquet"
        pq.write_table(pa.table({"id": ids[:-1] + ["zzz"], "probs": probs.tolist()}), path)
    elif case == "nan":
        probs[3, 1] = np.nan
        path = tmp_path / "p.npy"
        np.save(path, probs)
    else:  # four columns for three labels: which is which is not knowable
        path = tmp_path / "p.npy"
        np.save(path, np.full((N, 4), 0.25))
    code, out, err = run_cli(capsys, "audit", "-w", str(ws.root.path), "--predictions", str(path), "--no-progress")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert not ws.decisions("audit").exists()
    with pytest.raises(CurateError):
        audit(ws, AuditConfig(predictions=str(path)), progress=False)


def test_select_label_issues_exports_the_worst_first(tmp_path, capsys):
    ws, truth, labels = _world(tmp_path)
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    path, _ = _predictions(tmp_path, ids, truth)
    audit(ws, AuditConfig(predictions=path), progress=False)
    out = tmp_path / "review" / "batch.json"
    code, text, err = run_cli(capsys, "select", "-w", str(ws.root.path), "--label-issues", "-n", "5", "--out", str(out))
    assert code == 0, err
    tasks = json.loads(out.read_text())
    assert [t["data"]["id"] for t in tasks] == [ids[i] for i in FLIPPED]  # both score alike: manifest order
    first = tasks[0]
    assert first["annotations"][0]["result"][0]["value"]["choices"] == [labels[FLIPPED[0]]]
    assert first["predictions"][0]["result"][0]["value"]["choices"] == [CLASSES[truth[FLIPPED[0]]]]
    assert first["data"]["text"] == _texts(N)[FLIPPED[0]]
    assert (out.parent / "labeling-config.xml").exists() and (out.parent / "LABELING.md").exists()
    assert "2 of 2 label issues" in text
    code, _, err = run_cli(capsys, "select", "-w", str(ws.root.path), "--label-issues", "-n", "5", "--out", str(out))
    assert code == 2 and "already exists" in err  # never overwritten without --force
    code, _, err = run_cli(capsys, "select", "-w", str(ws.root.path), "--label-issues", "-n", "5", "--out",
                       str(tmp_path / "b.csv"), "--strategy", "random")
    assert code == 2 and "--strategy" in err


def test_pipeline_file_with_an_audit_table_and_prune_drop(tmp_path, capsys):
    ws, truth, _ = _world(tmp_path)
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    path, _ = _predictions(tmp_path, ids, truth)
    toml = tmp_path / "p.toml"
    toml.write_text(f'workspace = "{ws.root.path}"\n[dedup]\nmethod = "exact"\n'
                    f'[audit]\npredictions = "{path}"\nchecks = ["too-short"]\nthresholds = {{too-short = 0.4}}\n'
                    '[prune]\ncount = 100\ndrop = ["label-issue"]\n')
    code, out, err = run_cli(capsys, "run", str(toml), "--no-progress")
    assert code == 0, err
    assert "[audit  ]" in out and "2 label issues" in out, out
    table = latest_run(ws, "prune").table
    reasons = table.column("reason").to_pylist()
    assert [reasons[i] for i in FLIPPED] == ["audit: label-issue"] * 2
    assert sum(table.column("kept").to_pylist()) == N - 2


def test_review_override_keeps_an_item_the_audit_dropped(tmp_path, capsys):
    ws, truth, _ = _world(tmp_path)
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    path, _ = _predictions(tmp_path, ids, truth)
    first = audit(ws, AuditConfig(predictions=path, drop=("label-issue",)), progress=False)
    assert [first.table.column("reason")[i].as_py() for i in FLIPPED] == ["label-issue"] * 2
    code, _, err = run_cli(capsys, "override", "-w", str(ws.root.path), "--stage", "audit", "--keep", ids[FLIPPED[0]],
                       "--note", "checked")
    assert code == 0, err
    second = audit(ws, AuditConfig(predictions=path, drop=("label-issue",)), progress=False)
    assert second.run_id != first.run_id
    kept, reason = second.table.column("kept").to_pylist(), second.table.column("reason").to_pylist()
    assert kept[FLIPPED[0]] and reason[FLIPPED[0]] == "override: checked"
    assert not kept[FLIPPED[1]] and reason[FLIPPED[1]] == "label-issue"
    assert second.table.column("label_issue")[FLIPPED[0]].as_py()  # the finding stays; only kept changes


def test_cli_options_are_audit_config_fields_with_the_same_defaults():
    import dataclasses

    from curate.cli import cli as group

    command = group.get_command(None, "audit")
    options = {p.name: p.default for p in command.params if p.name not in ("workspace", "progress", "wait", "out",
                                                                            "help")}
    fields = {f.name: f.default for f in dataclasses.fields(AuditConfig)}
    assert set(options) == set(fields)
    for name, default in options.items():
        assert (tuple(default) if isinstance(default, (list, tuple)) else default) == fields[name] or (
            default is None and fields[name] == ()), name
