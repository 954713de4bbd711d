"""Exports of the labeling batch: Label Studio import JSON (checked against its documented
task shape), CSV and Parquet (read back with pyarrow)."""

import json
import numbers

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from curate.errors import CurateError
from curate.select.exports import ExportOptions, guess_format, labelstudio_tasks, reference, write_export

TASK_KEYS = {"id", "data", "meta", "predictions", "annotations"}


def validate_labelstudio(tasks):
    """Label Studio's import format (docs: "Import pre-annotated data"): a list of tasks; each task a
    dict with a non-empty `data` dict; optional `meta` dict; optional `predictions`: a list of dicts,
    each with a `result` list of region dicts (`from_name`, `to_name`, `type`, `value`) and optional
    `model_version` (string) and `score` (number)."""
    assert isinstance(tasks, list)
    for task in tasks:
        assert isinstance(task, dict) and set(task) <= TASK_KEYS, task
        assert isinstance(task.get("data"), dict) and task["data"]
        assert all(isinstance(k, str) and isinstance(v, (str, numbers.Number)) for k, v in task["data"].items())
        assert isinstance(task.get("meta", {}), dict)
        for pred in task.get("predictions", []):
            assert isinstance(pred, dict) and isinstance(pred.get("result"), list)
            assert set(pred) <= {"result", "model_version", "score"}
            assert isinstance(pred.get("model_version", ""), str)
            assert isinstance(pred.get("score", 0.0), numbers.Number)
            for region in pred["result"]:
                assert {"from_name", "to_name", "type", "value"} <= set(region)
                assert region["to_name"] in task["data"]  # the control points at a data key
                if region["type"] == "choices":
                    assert isinstance(region["value"]["choices"], list)


def batch(kind="image", sources=("/data/imgs/a/1.png", "/data/imgs/b c/2.png"), with_pred=True):
    n = len(sources)
    cols = {
        "id": pa.array([f"i{k}" for k in range(n)]), "source": pa.array(list(sources)),
        "score": pa.array([0.9, None][:n] + [0.1] * max(0, n - 2), pa.float64()),
        "rank": pa.array(np.arange(1, n + 1), pa.int64()), "strategy": pa.array(["hybrid"] * n),
        "round": pa.array([2] * n, pa.int64()), "kind": pa.array([kind] * n),
        "text": pa.array([f"text {k}" if kind == "text" else None for k in range(n)], pa.string()),
    }
    if with_pred:
        cols["prediction"] = pa.array(["cat", "dog"][:n])
        cols["confidence"] = pa.array([0.6, 0.55][:n], pa.float64())
    return pa.table(cols)


def test_labelstudio_image_tasks_validate_and_carry_meta(tmp_path):
    out = write_export(batch(), str(tmp_path / "tasks.json"))
    tasks = json.loads(out.fs.open(out.path).read())
    validate_labelstudio(tasks)
    assert [t["data"]["image"] for t in tasks] == ["/data/imgs/a/1.png", "/data/imgs/b c/2.png"]
    assert tasks[0]["meta"] == {"id": "i0", "score": 0.9, "rank": 1, "strategy": "hybrid", "round": 2}
    assert tasks[1]["meta"]["score"] is None  # unscored stays null (valid JSON, no NaN)
    pred = tasks[0]["predictions"][0]
    assert pred["score"] == 0.6 and pred["result"][0]["value"] == {"choices": ["cat"]}
    assert pred["result"][0]["to_name"] == "image"


def test_labelstudio_local_files_under_the_document_root():
    tasks = labelstudio_tasks(batch(), ExportOptions(document_root="/data/imgs"))
    validate_labelstudio(tasks)
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=a/1.png"
    assert tasks[1]["data"]["image"] == "/data/local-files/?d=b%20c/2.png"
    assert reference("s3://bucket/x.png", "/data") == "s3://bucket/x.png"  # remote URIs stay as they are
    with pytest.raises(CurateError, match="not under --document-root"):
        reference("/elsewhere/x.png", "/data/imgs")


def test_labelstudio_text_tasks_and_custom_data_key():
    tasks = labelstudio_tasks(batch("text", ("f.jsonl#line=1", "f.jsonl#line=2"), with_pred=False))
    validate_labelstudio(tasks)
    assert tasks[0]["data"] == {"text": "text 0", "id": "i0"} and "predictions" not in tasks[0]
    tasks = labelstudio_tasks(batch(), ExportOptions(data_key="img"))
    validate_labelstudio(tasks)
    assert "img" in tasks[0]["data"] and tasks[0]["predictions"][0]["result"][0]["to_name"] == "img"


def test_labelstudio_data_carries_the_sample_id(tmp_path):
    out = write_export(batch(), str(tmp_path / "tasks.json"))
    tasks = json.loads(out.fs.open(out.path).read())
    validate_labelstudio(tasks)
    assert [t["data"]["id"] for t in tasks] == ["i0", "i1"] == [t["meta"]["id"] for t in tasks]
    assert tasks[0]["data"]["image"] == "/data/imgs/a/1.png"
    tasks = labelstudio_tasks(batch(), ExportOptions(data_key="id"))  # the data key wins; the id moves aside
    validate_labelstudio(tasks)
    assert tasks[0]["data"] == {"id": "/data/imgs/a/1.png", "sample_id": "i0"}


def test_validator_rejects_malformed_tasks():
    with pytest.raises(AssertionError):
        validate_labelstudio([{"meta": {}}])  # no data
    with pytest.raises(AssertionError):
        validate_labelstudio([{"data": {"image": "x"}, "predictions": [{"model_version": "m"}]}])  # no result


@pytest.mark.parametrize("fmt,reader", [("csv", lambda p: pacsv.read_csv(p)), ("parquet", pq.read_table)])
def test_csv_and_parquet_list_id_source_score_rank(tmp_path, fmt, reader):
    path = tmp_path / f"batch.{fmt}"
    write_export(batch(), str(path), ExportOptions(format=guess_format(str(path), None)))
    table = reader(str(path))
    assert {"id", "source", "score", "rank"} <= set(table.column_names)
    assert table.column("id").to_pylist() == ["i0", "i1"]
    assert table.column("rank").to_pylist() == [1, 2]
    assert table.column("score").to_pylist() == [0.9, None]
    assert table.column("prediction").to_pylist() == ["cat", "dog"]
    assert not list(tmp_path.glob(".tmp-*"))  # atomic: no leftovers


def test_guess_format():
    assert guess_format("x.json", None) == "labelstudio" and guess_format("x.CSV", None) == "csv"
    assert guess_format("x.parquet", None) == "parquet" and guess_format("x.json", "csv") == "csv"
    with pytest.raises(CurateError, match="unknown export format"):
        guess_format("x.json", "xml")


@pytest.mark.parametrize("out", ["picks.txt", "picks", "picks.jsonl", "dir.v2/picks"])
def test_an_unknown_suffix_is_an_error_naming_the_accepted_ones(out):
    with pytest.raises(CurateError, match=r"unknown export suffix .*\.json \(Label Studio\), \.csv or \.parquet"):
        guess_format(out, None)
    assert guess_format(out, "csv") == "csv"  # an explicit --format names the format whatever the suffix


def test_select_out_txt_is_refused_before_any_work(tmp_path, capsys):
    from curate.cli import main
    from tests.select.test_mining import unit, workspace

    ws = workspace(tmp_path, unit(np.random.default_rng(0).normal(size=(8, 4))))
    with pytest.raises(SystemExit) as exited:
        main(["select", "-w", ws.root.path, "-n", "3", "-s", "random", "--out", str(tmp_path / "picks.txt"),
              "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and err[0].startswith("error: --out ")
    assert "'.txt'" in err[0] and ".json (Label Studio), .csv or .parquet" in err[0]
    assert not (tmp_path / "picks.txt").exists() and not (tmp_path / "ws" / "decisions" / "select").exists()
    main(["select", "-w", ws.root.path, "-n", "3", "-s", "random", "--out", str(tmp_path / "picks.txt"),
          "--format", "csv", "--no-progress"])  # the format named explicitly: CSV, as asked
    assert pacsv.read_csv(tmp_path / "picks.txt").column("rank").to_pylist() == [1, 2, 3]
