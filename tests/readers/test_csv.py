"""CSV / TSV reader: header row, per-row quarantine, dialect by suffix."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.io.fs import locate
from curate.io.hashing import content_hash
from curate.readers import READERS
from curate.readers.base import Fields, ReadOptions
from curate.workspace import Workspace
from tests.conftest import code, read_source, write

OPTS = ReadOptions(workers=2)


def read_all(path: Path, opts: ReadOptions = OPTS) -> list[dict]:
    return read_source("csv", path, opts)




def test_header_with_text_id_label_split(tmp_path):
    path = write(tmp_path / "rev.csv", (
        b"id,text,label,split\r\n"
        b"r1,great film,pos,train\r\n"
        b",\"awful, just awful\",neg,Validation\r\n"
        b"r3,meh,,\r\n"
    ))
    rows = read_all(path)
    assert [r["id"] for r in rows] == ["r1", "rev:3", "r3"]
    assert [r["text"] for r in rows] == ["great film", "awful, just awful", "meh"]
    assert [r["label"] for r in rows] == ["pos", "neg", None]
    assert [r["split"] for r in rows] == ["train", "val", None]
    assert all(r["status"] == "ok" and r["kind"] == "text" and r["source_kind"] == "csv"
               for r in rows)
    assert rows[0]["content_hash"] == content_hash(b"great film")
    assert rows[0]["bytes"] == 10
    assert rows[1]["source"] == f"{path}#line=3"


def test_wrong_field_count_rows_are_invalid_records(tmp_path):
    path = write(tmp_path / "w.csv", b"id,text\na,one\nb,two,extra\nc\nd,four\ne,\n")
    rows = read_all(path)
    assert [(r["id"], r["status"], code(r)) for r in rows] == [
        ("a", "ok", None),
        ("w:3", "quarantined", "invalid-record"),
        ("w:4", "quarantined", "invalid-record"),
        ("d", "ok", None),
        ("e", "quarantined", "empty-text"),
    ]
    assert "3 fields, the header has 2" in rows[1]["reason"]
    assert "1 fields, the header has 2" in rows[2]["reason"]


def test_non_utf8_row_is_undecodable_and_later_rows_are_read(tmp_path):
    path = write(tmp_path / "enc.csv", b"id,text\n1,ok\n2,caf\xe9 cr\xe8me\n3,still ok\n")
    rows = read_all(path)
    assert [(r["id"], r["status"], code(r)) for r in rows] == [
        ("1", "ok", None), ("2", "quarantined", "undecodable-text"), ("3", "ok", None)]
    assert rows[2]["text"] == "still ok"


def test_non_utf8_id_is_quarantined_through_ingest(tmp_path):
    src = write(tmp_path / "src.csv", b"id,text\nbad\xff,hello\ngood,world\n")
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    rows = ws.read_manifest(columns=["id", "status", "reason"]).to_pylist()
    assert [r["status"] for r in rows] == ["quarantined", "ok"]
    assert code(rows[0]) == "undecodable-text"
    assert rows[0]["id"] == "bad\\udcff"
    assert rows[1]["id"] == "good"


def test_tsv_uses_tabs(tmp_path):
    path = write(tmp_path / "t.tsv", b"text\tlabel\nhello, world\tA\nsecond\tB\n")
    rows = read_all(path)
    assert [(r["id"], r["text"], r["label"], r["status"]) for r in rows] == [
        ("t:2", "hello, world", "A", "ok"), ("t:3", "second", "B", "ok")]


def test_dialect_comes_from_the_file_suffix_not_the_folder(tmp_path):
    path = write(tmp_path / "exports.tsv.d" / "x.csv", b"text,label\nhello,A\n")
    (row,) = read_all(path)
    assert (row["text"], row["label"], row["status"]) == ("hello", "A", "ok")


def test_gzip_compressed_csv(tmp_path):
    path = write(tmp_path / "z.csv.gz", gzip.compress(b"text\nzipped\n"))
    (row,) = read_all(path)
    assert (row["id"], row["text"], row["status"]) == ("z:2", "zipped", "ok")


def test_missing_text_column_is_a_plan_error(tmp_path):
    path = write(tmp_path / "nt.csv", b"id,body,label\n1,hi,a\n")
    with pytest.raises(CurateError) as info:
        READERS["csv"].plan(locate(str(path)), OPTS)
    message = str(info.value)
    assert "\n" not in message
    assert "no text column 'text'" in message
    assert "columns: id, body, label" in message


def test_custom_text_field_is_accepted(tmp_path):
    path = write(tmp_path / "c.csv", b"id,body\n1,hi\n")
    opts = ReadOptions(fields=Fields(text="body"), workers=1)
    (row,) = read_all(path, opts)
    assert (row["id"], row["text"], row["status"]) == ("1", "hi", "ok")


def test_quoted_multiline_field_is_one_row(tmp_path):
    path = write(tmp_path / "ml.csv", b'id,text\nm,"line one\nline two, with comma"\n,after\n')
    rows = read_all(path)
    assert len(rows) == 2
    assert (rows[0]["id"], rows[0]["text"], rows[0]["status"]) == (
        "m", "line one\nline two, with comma", "ok")
    # The next record starts on physical line 4.
    assert (rows[1]["id"], rows[1]["text"]) == ("ml:4", "after")


def test_blank_lines_are_not_records(tmp_path):
    path = write(tmp_path / "b.csv", b"text\none\n\n\ntwo\n")
    rows = read_all(path)
    assert [(r["id"], r["text"]) for r in rows] == [("b:2", "one"), ("b:5", "two")]


def test_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path / "excel.csv", b"\xef\xbb\xbftext,id\nhello,1\n")
    (row,) = read_all(path)
    assert (row["id"], row["text"], row["status"]) == ("1", "hello", "ok")


def test_header_only_and_empty_files_have_no_rows(tmp_path):
    assert read_all(write(tmp_path / "h.csv", b"id,text\n")) == []
    assert read_all(write(tmp_path / "e.csv", b"")) == []


def test_ingest_folder_of_csv_and_tsv(tmp_path):
    write(tmp_path / "src" / "b.tsv", b"text\tid\nbee\tk\n")
    write(tmp_path / "src" / "a.csv", b"text,id\nay,k\n")
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "src")], IngestConfig())
    rows = ws.read_manifest(columns=["id", "text", "status", "reason"]).to_pylist()
    assert [(r["id"], r["text"], r["status"]) for r in rows] == [
        ("k", "ay", "ok"), ("k~dup1", "bee", "quarantined")]
    assert rows[1]["reason"].startswith("duplicate-id:")
