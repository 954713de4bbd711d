"""JSON Lines reader: one record per line, each bad line quarantined on its own."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from curate.ingest import IngestConfig, ingest
from curate.io.hashing import content_hash
from curate.probe.text import TextCheck
from curate.readers.base import Fields, ReadOptions
from curate.workspace import Workspace
from tests.conftest import code, read_source, write

OPTS = ReadOptions(workers=2)


def read_all(path: Path, opts: ReadOptions = OPTS) -> list[dict]:
    return read_source("jsonl", path, opts)




def test_id_label_split_fields_and_fallback_ids(tmp_path):
    path = write(tmp_path / "docs.jsonl", b"\n".join([
        b'{"id": "doc-a", "text": "alpha", "label": "pos", "split": "Validation"}',
        b'{"text": "beta", "label": 2}',
        b'{"id": 17, "text": "gamma"}',
        b'{"id": "", "text": "delta", "split": "train"}',
        b'{"id": null, "text": "epsilon"}',
    ]) + b"\n")
    rows = read_all(path)
    assert [r["id"] for r in rows] == ["doc-a", "docs:2", "17", "docs:4", "docs:5"]
    assert all(r["status"] == "ok" and r["kind"] == "text" for r in rows)
    assert [r["text"] for r in rows] == ["alpha", "beta", "gamma", "delta", "epsilon"]
    assert [r.get("label") for r in rows] == ["pos", "2", None, None, None]
    assert [r.get("split") for r in rows] == ["val", None, None, "train", None]
    assert rows[0]["bytes"] == 5 and rows[0]["content_hash"] == content_hash(b"alpha")
    assert rows[1]["source"] == f"{path}#line=2"
    assert rows[0]["source_kind"] == "jsonl"


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = write(tmp_path / "b.jsonl", b'{"text": "one"}\n\n   \n{"text": "two"}\r\n\n')
    rows = read_all(path)
    assert [(r["id"], r["text"]) for r in rows] == [("b:1", "one"), ("b:4", "two")]


def test_each_bad_line_is_quarantined_and_the_rest_is_read(tmp_path):
    path = write(tmp_path / "mixed.jsonl", b"\n".join([
        b'{"id": "ok1", "text": "fine"}',
        b'{"id": "broken", "text": ',                    # invalid JSON
        b'{"id": "latin", "text": "caf\xe9"}',           # not UTF-8
        b'["a", "list"]',                                 # not an object
        b'"just a string"',                               # not an object
        b'{"id": "notext", "body": "x"}',                # no text field
        b'{"id": "nulltext", "text": null}',             # null text
        b'{"id": "number", "text": 42}',                 # text not a string
        b'{"id": "blank", "text": " \\t\\n "}',          # empty text
        b'{"id": "ok2", "text": "also fine"}',
    ]) + b"\n")
    rows = read_all(path)
    got = [(r["id"], r["status"], code(r)) for r in rows]
    assert got == [
        ("ok1", "ok", None),
        ("mixed:2", "quarantined", "invalid-record"),
        ("mixed:3", "quarantined", "undecodable-text"),
        ("mixed:4", "quarantined", "invalid-record"),
        ("mixed:5", "quarantined", "invalid-record"),
        ("notext", "quarantined", "missing-field"),
        ("nulltext", "quarantined", "missing-field"),
        ("number", "quarantined", "invalid-record"),
        ("blank", "quarantined", "empty-text"),
        ("ok2", "ok", None),
    ]
    assert "line 3" in rows[2]["reason"] and "byte" in rows[2]["reason"]
    assert "list" in rows[3]["reason"]
    assert all(r["kind"] == "text" for r in rows)


def test_text_size_cap_counts_utf8_bytes(tmp_path):
    opts = ReadOptions(text=TextCheck(max_bytes=10), workers=2)
    path = write(tmp_path / "cap.jsonl", "\n".join([
        '{"text": "0123456789"}',     # 10 bytes: at the cap
        '{"text": "0123456789a"}',    # 11 bytes
        '{"text": "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}',  # 6 characters, 12 bytes
    ]).encode())
    rows = read_all(path, opts)
    assert [(r["status"], code(r)) for r in rows] == [
        ("ok", None), ("quarantined", "text-too-long"), ("quarantined", "text-too-long")]
    assert "11 bytes" in rows[1]["reason"]


def test_custom_fields(tmp_path):
    path = write(tmp_path / "c.jsonl", b'{"uid": "u", "body": "b", "y": "yes"}\n')
    opts = ReadOptions(fields=Fields(id="uid", text="body", label="y"), workers=1)
    (row,) = read_all(path, opts)
    assert (row["id"], row["text"], row["label"], row["status"]) == ("u", "b", "yes", "ok")


def test_gzip_compressed_jsonl(tmp_path):
    path = write(tmp_path / "z.jsonl.gz", gzip.compress(
        b'{"id": "g1", "text": "zipped"}\n\n{"text": "second"}\n'))
    rows = read_all(path)
    assert [(r["id"], r["status"], r["text"]) for r in rows] == [
        ("g1", "ok", "zipped"), ("z:3", "ok", "second")]


def test_truncated_gzip_keeps_earlier_lines_and_adds_corrupt_shard_row(tmp_path):
    body = b"".join(b'{"text": "line %d %s"}\n' % (i, bytes(range(97, 123)) * (i % 7))
                    for i in range(2000))
    packed = gzip.compress(body)
    path = write(tmp_path / "t.ndjson.gz", packed[: len(packed) // 2])
    rows = read_all(path)
    assert rows[-1]["id"] == "t#unreadable-rest"
    assert code(rows[-1]) == "corrupt-shard"
    assert len(rows) > 2
    assert all(r["status"] == "ok" for r in rows[:-1])
    assert [r["id"] for r in rows[:-1]] == [f"t:{i}" for i in range(1, len(rows))]


def test_byte_order_mark_does_not_break_the_first_line(tmp_path):
    data = b'\xef\xbb\xbf{"id": "a", "text": "first"}\n{"text": "b"}\n'
    path = write(tmp_path / "bom.jsonl", data)
    rows = read_all(path)
    assert [(r["id"], r["status"]) for r in rows] == [("a", "ok"), ("bom:2", "ok")]


def test_deeply_nested_line_is_quarantined_not_a_crash(tmp_path):
    data = b'{"text": "x"}\n' + b"[" * 100_000 + b'\n{"text": "y"}\n'
    path = write(tmp_path / "deep.jsonl", data)
    rows = read_all(path)
    assert [(r["id"], r["status"], code(r)) for r in rows] == [
        ("deep:1", "ok", None), ("deep:2", "quarantined", "invalid-record"), ("deep:3", "ok", None)]


def test_folder_plans_jsonl_files_in_sorted_order(tmp_path):
    write(tmp_path / "src" / "b.jsonl", b'{"text": "b"}\n')
    write(tmp_path / "src" / "a.ndjson", b'{"text": "a"}\n')
    write(tmp_path / "src" / "sub" / "c.jsonl.gz", gzip.compress(b'{"text": "c"}\n'))
    write(tmp_path / "src" / "readme.txt", b"ignored")
    rows = read_all(tmp_path / "src")
    assert [r["text"] for r in rows] == ["a", "b", "c"]


@pytest.mark.parametrize("where", ["text", "id", "label"])
def test_lone_surrogate_escape_is_quarantined_through_ingest(tmp_path, where):
    record = {"id": '"s1"', "text": '"fine"', "label": '"x"'}
    record[where] = '"bad \\ud800 value"'
    line = "{" + ", ".join(f'"{k}": {v}' for k, v in record.items()) + "}"
    src = write(tmp_path / "sur.jsonl", (line + '\n{"id": "s2", "text": "ok"}\n').encode())
    ws = Workspace(str(tmp_path / "ws"))
    result = ingest(ws, [str(src)], IngestConfig())
    rows = ws.read_manifest().to_pylist()
    assert [r["status"] for r in rows] == ["quarantined", "ok"]
    assert code(rows[0]) == "undecodable-text"
    assert rows[1]["id"] == "s2"
    assert (result.meta["samples"], result.meta["quarantined"]) == (2, 1)
    if where == "id":
        assert rows[0]["id"] == "bad \\ud800 value"  # escaped so the row stays addressable


def test_ingest_of_parts_with_dotted_names_keeps_fallback_ids_distinct(tmp_path):
    write(tmp_path / "src" / "shard.00000-of-00002.jsonl", b'{"text": "a"}\n')
    write(tmp_path / "src" / "shard.00001-of-00002.jsonl", b'{"text": "b"}\n')
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "src")], IngestConfig())
    rows = ws.read_manifest(columns=["id", "status"]).to_pylist()
    assert rows == [
        {"id": "src/shard.00000-of-00002:1", "status": "ok"},
        {"id": "src/shard.00001-of-00002:1", "status": "ok"},
    ]


def test_same_file_names_in_sub_folders_get_distinct_fallback_ids(tmp_path):
    write(tmp_path / "corpus" / "a" / "data.jsonl", b'{"text": "a"}\n')
    write(tmp_path / "corpus" / "b" / "data.jsonl.gz", gzip.compress(b'{"text": "b"}\n'))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "corpus")], IngestConfig())
    rows = ws.read_manifest(columns=["id", "status"]).to_pylist()
    assert rows == [{"id": "corpus/a/data:1", "status": "ok"}, {"id": "corpus/b/data:1", "status": "ok"}]


def test_missing_text_field_names_the_fields_seen_and_the_option_to_pass(tmp_path):
    path = write(tmp_path / "c.jsonl", b'{"id": "a", "content": "hello"}\n{"id": "b", "content": "x", "text": null}\n'
                                        b'{"n": 1}\n{"id": "d", "label": "pos", "blob": "some words", "k": "v"}\n')
    rows = read_all(path)
    assert [r["reason"] for r in rows] == [  # the same hint CSV gives for its header, here per record
        "missing-field: line 1 has no field 'text'; the record has: id, content; pass --text-field content",
        "missing-field: line 2 field 'text' is null",
        "missing-field: line 3 has no field 'text'; the record has: n; no field holds a string; pass --text-field NAME",
        "missing-field: line 4 has no field 'text'; the record has: id, label, blob, k; pass --text-field blob",
    ]
    fixed = read_all(path, ReadOptions(fields=Fields(text="content"), workers=1))
    assert [(r["id"], r["status"]) for r in fixed[:2]] == [("a", "ok"), ("b", "ok")]  # the hinted option reads them
