"""The labeling hand-off: labeling-config.xml (parsed as XML, checked against the export's keys and
predictions) and LABELING.md (counts and scores computed by hand); optionally a real Label Studio."""

import html as html_module
import json
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import CurateError
from curate.select.handoff import label_set, labeling_config, labeling_notes
from curate.select.stage import select, select_config
from tests.select.test_mining import unit, workspace


def test_label_set_counts_examples_and_extra_names():
    ids = [f"i{k}" for k in range(7)]
    labels = ["b", "a", None, "b", "b", "a", "b"]
    ls = label_set(ids, labels, extra=["c", "a"], examples=2)
    assert ls.names == ["a", "b", "c"]
    assert ls.counts == {"a": 2, "b": 4, "c": 0}
    assert ls.examples == {"a": ["i1", "i5"], "b": ["i0", "i3"], "c": []}


@pytest.mark.parametrize("kind,tag", [("image", "Image"), ("text", "Text")])
def test_labeling_config_is_valid_xml_with_escaped_choices(kind, tag):
    names = ['cat & dog', '<odd>', 'say "hi"', "plain"]
    root = ET.fromstring(labeling_config(names, "img" if kind == "image" else "text", kind))
    assert root.tag == "View"
    obj, choices = list(root)
    key = "img" if kind == "image" else "text"
    assert obj.tag == tag and obj.attrib == {"name": key, "value": f"${key}"}
    assert choices.tag == "Choices" and choices.attrib["name"] == "label" and choices.attrib["toName"] == key
    assert choices.attrib["choice"] == "single"
    assert [c.attrib["value"] for c in choices] == names  # escaped in the file, the same names once parsed


def test_labeling_config_without_labels_asks_for_text():
    root = ET.fromstring(labeling_config([], "image", "image"))
    assert [c.tag for c in root] == ["Image", "TextArea"] and root[1].attrib["toName"] == "image"


def test_labeling_notes_scores_queries_and_labels():
    batch = pa.table({"id": ["p1", "p2", "p3", "p4"], "score": [0.9, 0.5, 0.7, 0.8], "rank": [1, 2, 3, 4],
                      "strategy": ["similar"] * 4, "round": [2] * 4, "kind": ["image"] * 4,
                      "query": ["q1", "q2", "q1", "q1"], "similarity": [0.9, 0.5, 0.7, 0.8]})
    text = labeling_notes(batch, label_set(["a1", "b1", "a2"], ["a", "b", "a"]), "batch.json", "image", "image")
    assert "**4 items**, images, strategy `similar`, round 2" in text
    assert "min 0.5000, median 0.7500, max 0.9000" in text
    assert "| q1 | 3 | 0.8000 | 0.9000 |" in text and "| q2 | 1 | 0.5000 | 0.5000 |" in text
    assert "| a | 2 | `a1`, `a2` |" in text and "| b | 1 | `b1` |" in text
    assert "Import `batch.json`" in text


def labeled_workspace(tmp_path):
    rng = np.random.default_rng(3)
    vectors = unit(np.eye(6)[rng.integers(0, 3, 24)] + 0.2 * rng.normal(size=(24, 6)))
    labels = [["left", "right", "up & down"][i % 3] for i in range(24)]
    return workspace(tmp_path, vectors, labels=labels)


def test_select_writes_handoff_matching_the_export(tmp_path):
    ws = labeled_workspace(tmp_path)
    (tmp_path / "labeled.txt").write_text("".join(f"w{i}\n" for i in range(12)))
    out = tmp_path / "round1" / "tasks.json"
    result = select(ws, select_config(budget=5, strategy="margin", probe=True, labeled=str(tmp_path / "labeled.txt"),
                                     out=str(out)))
    assert result.meta["handoff"] is not None
    root = ET.fromstring((tmp_path / "round1" / "labeling-config.xml").read_text())
    obj, choices = list(root)
    names = [c.attrib["value"] for c in choices]
    assert names == ["left", "right", "up & down"]
    tasks = json.loads(out.read_text())
    assert len(tasks) == 5
    for task in tasks:  # every prediction points at controls that exist in the config, with a valid choice
        assert obj.attrib["name"] in task["data"]
        region = task["predictions"][0]["result"][0]
        assert region["from_name"] == choices.attrib["name"] and region["to_name"] == obj.attrib["name"]
        assert region["value"]["choices"][0] in names
    notes = (tmp_path / "round1" / "LABELING.md").read_text()
    # only the 12 items of the --labeled file count as labeled (w2, w5, w8, w11), not every manifest label
    assert "| up &amp; down | 4 | `w2`, `w5`, `w8` |" in notes and "strategy `margin`" in notes
    # CSV / Parquet exports get no Label Studio files
    csv = select(ws, select_config(budget=5, strategy="random", out=str(tmp_path / "csv" / "b.csv")))
    assert csv.meta["handoff"] is None and not (tmp_path / "csv" / "labeling-config.xml").exists()


def choices_of(folder):
    root = ET.fromstring((folder / "labeling-config.xml").read_text())
    return [c.attrib["value"] for c in root[1]]


def test_notes_count_only_items_of_the_labeled_file(tmp_path):
    ws = labeled_workspace(tmp_path)  # every item has a manifest label
    (tmp_path / "labeled.csv").write_text("id,label\nw0,right\nw3,\nw4,right\n")  # w3: its manifest label (left)
    select(ws, select_config(budget=3, strategy="random", labeled=str(tmp_path / "labeled.csv"),
                            out=str(tmp_path / "a" / "tasks.json")))
    notes = (tmp_path / "a" / "LABELING.md").read_text()
    assert "| left | 1 | `w3` |" in notes and "| right | 2 | `w0`, `w4` |" in notes
    assert "| up &amp; down | 0 | - |" in notes  # a known name (a choice), but nothing labeled with it
    assert choices_of(tmp_path / "a") == ["left", "right", "up & down"]
    select(ws, select_config(budget=3, strategy="random", out=str(tmp_path / "b" / "tasks.json")))  # no --labeled
    notes = (tmp_path / "b" / "LABELING.md").read_text()
    assert "| left | 0 | - |" in notes and "| right | 0 | - |" in notes


def test_choices_list_every_predicted_class_not_just_the_batch_argmax(tmp_path):
    ws = labeled_workspace(tmp_path)
    probs = np.tile(np.array([[0.1, 0.5, 0.4]], np.float32), (24, 1))  # class 0 is never anyone's argmax
    np.save(tmp_path / "p.npy", probs)
    out = tmp_path / "r" / "tasks.json"
    select(ws, select_config(budget=4, strategy="margin", predictions=str(tmp_path / "p.npy"), out=str(out)))
    assert {t["predictions"][0]["result"][0]["value"]["choices"][0] for t in json.loads(out.read_text())} == {"1"}
    assert choices_of(tmp_path / "r") == ["0", "1", "2", "left", "right", "up & down"]


def test_a_second_run_does_not_overwrite_another_runs_handoff(tmp_path):
    ws = labeled_workspace(tmp_path)
    out = tmp_path / "r" / "tasks.json"
    first = select(ws, select_config(budget=3, strategy="random", out=str(out)))
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with pytest.raises(CurateError, match="tasks.json was written by select run .*pick another --out"):
        select(ws, select_config(budget=4, strategy="random", out=str(out)))
    with pytest.raises(CurateError, match="labeling-config.xml was written by select run"):  # same folder
        select(ws, select_config(budget=4, strategy="random", out=str(tmp_path / "r" / "other.json")))
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before  # nothing written
    out.unlink()  # the same run rewrites its own files
    again = select(ws, select_config(budget=3, strategy="random", out=str(out)))
    assert again.run.run_id == first.run.run_id and out.exists()
    assert f"select run `{first.run.run_id}`" in (tmp_path / "r" / "LABELING.md").read_text()
    other = select(ws, select_config(budget=4, strategy="random", out=str(tmp_path / "s" / "tasks.json")))
    assert other.run.run_id != first.run.run_id and (tmp_path / "s" / "LABELING.md").exists()


@pytest.mark.skipif(not os.environ.get("CURATE_LABEL_STUDIO"), reason="set CURATE_LABEL_STUDIO to a label-studio "
                    "executable (installed in its own venv) to import into a real Label Studio")
def test_real_label_studio_imports_export_and_config(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    ws = labeled_workspace(tmp_path)
    (tmp_path / "labeled.txt").write_text("".join(f"w{i}\n" for i in range(12)))
    out = tmp_path / "ls" / "tasks.json"
    select(ws, select_config(budget=6, strategy="margin", probe=True, labeled=str(tmp_path / "labeled.txt"),
                            out=str(out)))
    script = Path(__file__).resolve().parents[2] / "scripts" / "check_labelstudio.py"
    proc = subprocess.run([sys.executable, str(script), "--label-studio", os.environ["CURATE_LABEL_STUDIO"],
                           "--export", str(out), "--port", "8091"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tasks imported: 6" in proc.stdout and "predictions imported: 6" in proc.stdout


HOSTILE_LABELS = ["a\x01b", "$image", "cost $5 & <tag>", "[click](javascript:alert(1))", 'say "hi" | `x`',
                  "![pic](http://evil.example/p.png)", "<script>alert(1)</script>", "www.evil.example", "plain"]
# Label Studio's parseValue (editor src/utils/data.js) replaces every match of this in a Choice's value with task data
LS_VARIABLE = re.compile(r"\$[\w\[\].{}]+")


def test_labeling_config_stays_valid_xml_and_labels_round_trip():
    root = ET.fromstring(labeling_config(HOSTILE_LABELS, "image", "image"))  # \x01 made it invalid before
    obj, choices = list(root)
    assert obj.attrib["value"] == "$image"  # the one intended variable stays
    # what Label Studio records for a choice: its alias when it has one, else its value
    recorded = [c.attrib.get("alias", c.attrib["value"]) for c in choices]
    assert recorded == ["a\ufffdb", *HOSTILE_LABELS[1:]]  # exact, except the one character XML 1.0 cannot hold
    shown = [c.attrib["value"] for c in choices]
    assert not any(LS_VARIABLE.search(v) or v.startswith("$") for v in shown), shown
    assert shown[1] == "\uff04image" and choices[1].attrib["alias"] == "$image"
    assert "alias" not in choices[-1].attrib  # labels without $ are unchanged


def test_predictions_name_the_choice_the_config_declares():
    from curate.select.exports import labelstudio_tasks

    batch = pa.table({"id": ["i0", "i1"], "source": ["/a.png", "/b.png"], "score": [0.5, 0.4], "rank": [1, 2],
                      "strategy": ["margin"] * 2, "round": [1, 1], "kind": ["image"] * 2, "text": [None, None],
                      "prediction": ["a\x01b", "$image"], "confidence": [0.6, 0.7]})
    root = ET.fromstring(labeling_config(["a\x01b", "$image"], "image", "image"))
    recorded = {c.attrib.get("alias", c.attrib["value"]) for c in root[1]}
    for task in labelstudio_tasks(batch):
        assert task["predictions"][0]["result"][0]["value"]["choices"][0] in recorded


def test_labeling_notes_show_labels_as_text_never_as_markup():
    ids = ["id`1", "id|2", "x"]
    labels = label_set(ids + [f"n{k}" for k in range(len(HOSTILE_LABELS))], ["plain", "plain", "plain"]
                       + HOSTILE_LABELS)
    batch = pa.table({"id": ["x"], "score": [0.5], "rank": [1], "strategy": ["random"], "round": [1],
                      "kind": ["image"], "query": ["[q](javascript:x)"], "similarity": [0.5]})
    text = labeling_notes(batch, labels, "b`atch.json", "image", "image")
    assert "](" not in text.replace("\\](", "") and "javascript:" not in text and "http://" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| label")]
    for row in rows:  # escaped pipes never split a cell: 4 columns for queries, 3 for labels
        assert len(re.findall(r"(?<!\\)\|", row)) in (4, 5), row

    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<a " not in html and "<img" not in html and "<script" not in html
    cells = [html_module.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
    for label in HOSTILE_LABELS[1:]:  # each label shows as its own text in the first column of its row
        assert label in cells, (label, cells)
    assert "id`1" in cells[cells.index("plain") + 2] and "id|2" in cells[cells.index("plain") + 2]


def test_a_reviewed_keep_leads_the_batch_without_a_model_prediction(tmp_path):
    """A reviewer's keep is picked first, with no score and no prediction (the model did not pick it);
    the strategy's picks after it carry theirs, in every export format."""
    from curate.overrides import Override, add
    from curate.select.stage import picked
    from tests.select.test_select_stage import probs_with_margins, spread
    from tests.select.test_select_stage import workspace as text_workspace

    ws = text_workspace(tmp_path, spread(6))
    np.save(tmp_path / "p.npy", probs_with_margins([0.9, 0.1, 0.8, 0.2, 0.7, 0.6]))
    add(ws, [Override("select", "w0", "keep", "label this one")])
    for seed, name in enumerate(("batch.json", "batch.csv")):  # another seed: another run, which writes its export
        result = select(ws, select_config(budget=3, strategy="margin", predictions=str(tmp_path / "p.npy"),
                                          out=str(tmp_path / name), seed=seed), progress=False)
        assert picked(result) == ["w0", "w1", "w3"]
    tasks = json.loads((tmp_path / "batch.json").read_text())
    assert [t["data"]["id"] for t in tasks] == ["w0", "w1", "w3"]
    assert "predictions" not in tasks[0] and tasks[0]["meta"]["score"] is None
    assert [t["predictions"][0]["score"] for t in tasks[1:]] == pytest.approx([0.55, 0.6])
    rows = (tmp_path / "batch.csv").read_text().splitlines()
    assert rows[1].endswith(",,") and rows[2].split(",")[-2:] == ['"0"', "0.550000011920929"]
