"""Reader bugs found by the hardening work, each pinned by a test."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq

from curate.readers import reader_for_file, resolve
from curate.readers.base import ReadOptions
from tests.conftest import code, encode_image, read_source, write

OPTS = ReadOptions(workers=1)


def rows_of(reader, path):
    return [(r["id"], r["status"], code(r), r.get("text")) for r in read_source(reader, path, OPTS)]


def test_csv_unclosed_quote_at_eof_quarantines_one_row_and_reads_the_rest(tmp_path):
    path = write(tmp_path / "q.csv", b'id,text\n1,hello\n2,"never closed\n3,three\n4,four\n')
    assert rows_of("csv", path) == [("1", "ok", None, "hello"), ("q:3", "quarantined", "invalid-record", None),
                                    ("3", "ok", None, "three"), ("4", "ok", None, "four")]
    reason = read_source("csv", path, OPTS)[1]["reason"]
    assert reason == "invalid-record: line 3 opens a quote that is never closed"


def test_csv_unclosed_quote_on_the_last_line_and_closed_multiline_quotes_still_work(tmp_path):
    path = write(tmp_path / "l.csv", b'text\nfirst\n"cut')
    assert rows_of("csv", path) == [("l:2", "ok", None, "first"), ("l:3", "quarantined", "invalid-record", None)]
    path = write(tmp_path / "m.csv", b'text\n"two\nlines"\nlast')  # a closed quote spanning lines is one row
    assert rows_of("csv", path) == [("m:3", "ok", None, "two\nlines"), ("m:4", "ok", None, "last")]


def test_csv_duplicate_header_name_says_so(tmp_path):
    path = write(tmp_path / "d.csv", b"id,text,text\n1,a,b\n")
    (row,) = read_source("csv", path, OPTS)
    assert row["reason"] == "invalid-record: the header names column 'text' 2 times (which one to use is ambiguous)"
    path = write(tmp_path / "o.csv", b"id,text,x,x\n1,a,b,c\n")  # a repeated column nobody reads is harmless
    assert rows_of("csv", path) == [("1", "ok", None, "a")]


def test_plain_tsv_fields_may_start_with_a_quote(tmp_path):
    path = write(tmp_path / "t.tsv", b'id\ttext\n1\t"quoted" word\n2\t"open\n3\tthree\n')
    assert rows_of("csv", path) == [("1", "ok", None, '"quoted" word'), ("2", "ok", None, '"open'),
                                    ("3", "ok", None, "three")]


def test_parquet_relative_paths_are_confined_to_the_file_folder(tmp_path):
    (tmp_path / "secret.png").write_bytes(encode_image())
    (tmp_path / "set" / "img").mkdir(parents=True)
    (tmp_path / "set" / "img" / "a.png").write_bytes(encode_image(seed=1))
    os.symlink(tmp_path / "secret.png", tmp_path / "set" / "img" / "link.png")
    path = tmp_path / "set" / "index.parquet"
    pq.write_table(pa.table({"image": ["img/a.png", "../secret.png", "img/../../secret.png", "img/link.png",
                                       str(tmp_path / "secret.png")]}), path)
    rows = read_source("parquet", path, OPTS)
    assert [code(r) for r in rows] == [None, "unsafe-path", "unsafe-path", "unsafe-path", None]
    assert "'../secret.png' leaves the folder of the Parquet file" in rows[1]["reason"]
    assert rows[4]["status"] == "ok"  # an absolute path is explicit: allowed, as documented


def test_webdataset_member_repeated_in_one_sample_is_not_silently_replaced(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("a.jpg", encode_image(fmt="JPEG")), ("a.jpg", encode_image(fmt="JPEG", seed=2)),
                           ("b.png", encode_image())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = write(tmp_path / "s.tar", buf.getvalue())
    rows = read_source("webdataset", path, OPTS)
    assert [(r["id"], code(r)) for r in rows] == [("a", "invalid-record"), ("b", None)]
    assert rows[0]["reason"] == "invalid-record: tar member 'a.jpg' appears twice in sample 'a'"


def test_json_gz_is_read_as_json_lines(tmp_path):
    path = write(tmp_path / "dump.json.gz", gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    assert reader_for_file(str(path)) == "jsonl" and reader_for_file("x.json") is None
    [(reader, _)] = resolve(str(path))
    assert reader.name == "jsonl"
    assert rows_of("jsonl", path) == [("dump:1", "ok", None, "one"), ("dump:2", "ok", None, "two")]


def test_webdataset_member_without_a_key_gets_its_name_as_id_not_an_empty_one(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in (".hidden", "d/.png", "ok.png"):
            data = encode_image()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    rows = read_source("webdataset", write(tmp_path / "k.tar", buf.getvalue()), OPTS)
    assert [(r["id"], code(r)) for r in rows] == [(".hidden", "invalid-record"), ("d/.png", "invalid-record"),
                                                  ("ok", None)]
    assert rows[0]["reason"] == "invalid-record: tar member '.hidden' has no sample key (its name starts with a dot)"


def test_parquet_path_with_a_nul_character_is_one_unsafe_path_row(tmp_path):
    """Found by the property test: os.path.realpath raised ValueError ("embedded null byte")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import code, read_source

    pq.write_table(pa.table({"image": ["a\x00b.png", "missing.png"]}), tmp_path / "p.parquet")
    rows = read_source("parquet", tmp_path / "p.parquet")
    assert [code(r) for r in rows] == ["unsafe-path", "read-error"]
