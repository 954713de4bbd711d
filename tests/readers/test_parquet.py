"""Parquet reader: image bytes / HF struct / path columns, text, ids, embeddings, bad files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.io.fs import locate
from curate.io.hashing import content_hash
from curate.probe.text import TextCheck
from curate.readers import READERS
from curate.readers.base import Fields, ReadOptions
from curate.workspace import Workspace
from tests.conftest import code, read_source

OPTS = ReadOptions(workers=2)
EMB = ReadOptions(fields=Fields(embedding="emb"), workers=2)


def png(size: tuple[int, int] = (4, 3), colour: tuple[int, int, int] = (0, 128, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def write(path: Path, columns: dict, schema: pa.Schema | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


def read_all(path: Path, opts: ReadOptions = OPTS) -> list[dict]:
    return read_source("parquet", path, opts)



# -- image payloads -------------------------------------------------------------------------


def test_image_bytes_column_with_id_label_split(tmp_path):
    a, b = png((4, 3)), png((2, 7), (9, 9, 9))
    path = write(tmp_path / "imgs.parquet", {
        "image": [a, b, b"not an image"],
        "id": ["x", "y", "z"],
        "label": ["cat", None, "dog"],
        "split": ["validation", "TEST", None],
    })
    rows = read_all(path)
    assert [r["id"] for r in rows] == ["x", "y", "z"]
    x, y, z = rows
    assert x == {**x, "status": "ok", "kind": "image", "source_kind": "parquet", "format": "PNG",
                 "mode": "RGB", "width": 4, "height": 3, "bytes": len(a),
                 "content_hash": content_hash(a), "label": "cat", "split": "val",
                 "source": f"{path}#row=0"}
    assert (y["width"], y["height"], y["label"], y["split"]) == (2, 7, None, "test")
    assert (z["status"], code(z), z["label"]) == ("quarantined", "not-an-image", "dog")
    assert z["source"] == f"{path}#row=2"


def test_hugging_face_struct_uses_bytes_then_relative_path(tmp_path):
    inline, on_disk = png((3, 3)), png((6, 2))
    (tmp_path / "data" / "pics").mkdir(parents=True)
    (tmp_path / "data" / "pics" / "p.png").write_bytes(on_disk)
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    path = write(tmp_path / "data" / "hf.parquet", {
        "image": pa.array([
            {"bytes": inline, "path": "ignored.png"},
            {"bytes": None, "path": "pics/p.png"},
            {"bytes": None, "path": None},
            None,
        ], struct),
    })
    rows = read_all(path)
    assert [r["id"] for r in rows] == ["hf:0", "hf:1", "hf:2", "hf:3"]
    assert (rows[0]["status"], rows[0]["width"], rows[0]["content_hash"]) == (
        "ok", 3, content_hash(inline))
    assert rows[0]["source"] == f"{path}#row=0"
    assert (rows[1]["status"], rows[1]["width"], rows[1]["height"]) == ("ok", 6, 2)
    assert rows[1]["source"] == str(tmp_path / "data" / "pics" / "p.png")
    assert rows[1]["content_hash"] == content_hash(on_disk)
    assert [code(r) for r in rows[2:]] == ["missing-field", "missing-field"]


def test_path_column_is_relative_to_the_parquet_file(tmp_path):
    img = png((5, 4))
    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "images" / "a.png").write_bytes(img)
    (tmp_path / "elsewhere.png").write_bytes(png((1, 1)))
    path = write(tmp_path / "set" / "index.parquet", {
        "image": ["images/a.png", "images/missing.png", str(tmp_path / "elsewhere.png"),
                  "nosuchproto://bucket/a.png", None, "images/a.png"],
    })
    rows = read_all(path)
    assert len(rows) == 6, "every row must be accounted for, however bad its path"
    ok, missing, absolute, bad_proto, null, again = rows
    assert (ok["status"], ok["width"], ok["height"]) == ("ok", 5, 4)
    assert ok["source"] == str(tmp_path / "set" / "images" / "a.png")
    assert ok["content_hash"] == content_hash(img)
    assert (missing["status"], code(missing)) == ("quarantined", "read-error")
    assert missing["source"] == str(tmp_path / "set" / "images" / "missing.png")
    assert (absolute["status"], absolute["width"]) == ("ok", 1)
    assert (bad_proto["status"], code(bad_proto)) == ("quarantined", "read-error")
    assert code(null) == "missing-field"
    assert again["status"] == "ok"
    assert [r["id"] for r in rows] == [f"index:{i}" for i in range(6)]


def test_image_column_of_the_wrong_type_is_a_plan_error(tmp_path):
    path = write(tmp_path / "bad.parquet", {"image": [1, 2]})
    with pytest.raises(CurateError, match="image column 'image' has type int64"):
        READERS["parquet"].plan(locate(str(path)), OPTS)


# -- text payloads, ids ---------------------------------------------------------------------


def test_text_column_rows(tmp_path):
    path = write(tmp_path / "t.parquet", {
        "text": ["hello", "  ", None, "x" * 20, "caf\u00e9"],
        "id": [10, 11, 12, 13, 14],
        "label": [0, 1, None, 1, 0],
    })
    opts = ReadOptions(text=TextCheck(max_bytes=10), workers=2)
    rows = read_all(path, opts)
    assert [r["id"] for r in rows] == ["10", "11", "12", "13", "14"]
    assert [r["kind"] for r in rows] == ["text"] * 5
    hello, blank, null, long, cafe = rows
    assert (hello["status"], hello["text"], hello["label"]) == ("ok", "hello", "0")
    assert (hello["bytes"], hello["content_hash"]) == (5, content_hash(b"hello"))
    assert code(blank) == "empty-text"
    assert code(null) == "missing-field"
    assert code(long) == "text-too-long"
    assert (cafe["status"], cafe["bytes"]) == ("ok", 5)  # bytes are UTF-8 bytes, not characters


def test_null_or_empty_id_falls_back_to_stem_and_row(tmp_path):
    path = write(tmp_path / "corpus.v1.parquet", {
        "text": ["a", "b", "c", "d"],
        "id": ["first", None, "", "last"],
    })
    rows = read_all(path)
    assert [r["id"] for r in rows] == ["first", "corpus.v1:1", "corpus.v1:2", "last"]
    assert all(r["status"] == "ok" for r in rows)


def test_fallback_ids_run_across_batches(tmp_path):
    n = 2500  # more than one reader batch
    path = write(tmp_path / "big.parquet", {"text": [f"t{i}" for i in range(n)]})
    rows = read_all(path)
    assert [r["id"] for r in rows] == [f"big:{i}" for i in range(n)]
    assert rows[-1]["text"] == f"t{n - 1}"
    assert rows[1234]["source"] == f"{path}#row=1234"


def test_image_column_preferred_over_text_column(tmp_path):
    path = write(tmp_path / "both.parquet", {"image": [png()], "text": ["a caption"]})
    (row,) = read_all(path)
    assert (row["kind"], row["status"]) == ("image", "ok")


def test_custom_field_names(tmp_path):
    path = write(tmp_path / "c.parquet",
                 {"body": ["hi"], "uid": ["u1"], "y": ["pos"], "part": ["valid"]})
    opts = ReadOptions(fields=Fields(id="uid", text="body", label="y", split="part"), workers=1)
    (row,) = read_all(path, opts)
    assert (row["id"], row["text"], row["label"], row["split"], row["status"]) == (
        "u1", "hi", "pos", "val", "ok")


# -- embeddings -----------------------------------------------------------------------------


def test_embedding_vectors_are_checked(tmp_path):
    path = write(tmp_path / "e.parquet", {
        "text": ["ok", "nan", "inf", "short", "null", "empty", "ok2", "null-item"],
        "emb": pa.array([
            [0.1, 0.2, 0.3], [math.nan, 0.0, 0.0], [math.inf, 0.0, 0.0], [1.0, 2.0], None, [],
            [1.0, 0.0, 0.0], [1.0, None, 0.0],
        ], pa.list_(pa.float32())),
    })
    rows = read_all(path, EMB)
    assert [r["status"] for r in rows] == ["ok", "quarantined", "quarantined", "quarantined",
                                           "quarantined", "quarantined", "ok", "quarantined"]
    assert all(code(r) == "invalid-embedding" for r in rows if r["status"] != "ok")
    assert "expected 3" in rows[3]["reason"]
    # Quarantined rows keep their identity.
    assert [r["id"] for r in rows] == [f"e:{i}" for i in range(8)]


def test_embedding_dimension_comes_from_first_valid_vector(tmp_path):
    path = write(tmp_path / "e.parquet", {
        "text": ["a", "b", "c"],
        "emb": pa.array([[math.nan, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0]],
                        pa.list_(pa.float64())),
    })
    rows = read_all(path, EMB)
    assert [(r["status"], code(r)) for r in rows] == [
        ("quarantined", "invalid-embedding"), ("ok", None), ("quarantined", "invalid-embedding")]
    assert "dimension 2, expected 4" in rows[2]["reason"]


def test_fixed_size_list_embeddings(tmp_path):
    path = write(tmp_path / "f.parquet", {
        "text": ["a", "b"],
        "emb": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float16(), 2)),
    })
    assert [r["status"] for r in read_all(path, EMB)] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"text": ["a"]}, "no embedding column 'emb'"),
        ({"text": ["a"], "emb": ["0.1,0.2"]}, "embedding column 'emb' has type string"),
        ({"emb": pa.array([[1.0]], pa.list_(pa.float32()))}, "needs a payload column"),
    ],
)
def test_embedding_column_misuse_is_a_plan_error(tmp_path, columns, message):
    path = write(tmp_path / "m.parquet", columns)
    with pytest.raises(CurateError, match=message):
        READERS["parquet"].plan(locate(str(path)), EMB)


# -- misuse and broken files ----------------------------------------------------------------


def test_schema_without_payload_column_is_a_one_line_plan_error(tmp_path):
    path = write(tmp_path / "meta.parquet", {"id": ["a"], "caption": ["x"], "url": ["http://x"]})
    with pytest.raises(CurateError) as info:
        READERS["parquet"].plan(locate(str(path)), OPTS)
    message = str(info.value)
    assert "\n" not in message
    assert "'image'" in message and "'text'" in message
    assert "columns: id, caption, url" in message


def test_plan_checks_every_file_in_a_folder(tmp_path):
    write(tmp_path / "src" / "a.parquet", {"text": ["ok"]})
    write(tmp_path / "src" / "b.parquet", {"caption": ["no text column"]})
    with pytest.raises(CurateError, match="b.parquet"):
        READERS["parquet"].plan(locate(str(tmp_path / "src")), OPTS)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_parquet_is_a_corrupt_shard_row_not_a_crash(tmp_path, damage):
    good = write(tmp_path / "good.parquet", {"text": [f"row {i}" for i in range(50)]}).read_bytes()
    data = {"garbage": b"PAR1 but not really" * 10, "truncated": good[: len(good) // 2],
            "empty": b""}[damage]
    path = tmp_path / "broken.parquet"
    path.write_bytes(data)
    reader = READERS["parquet"]
    units = reader.plan(locate(str(path)), OPTS)  # unreadable files are not a plan error
    rows = [row for u in units for row in reader.read(u, OPTS)]
    assert len(rows) == 1
    (row,) = rows
    assert (row["id"], row["status"], code(row)) == ("broken#unreadable-rest", "quarantined",
                                                      "corrupt-shard")
    assert row["source"] == str(path)


def test_ingest_folder_of_parts_without_ids_gives_distinct_ids(tmp_path):
    # part.0 / part.1 must not both fall back to "part:<row>" (which would make every row
    # of the second file a duplicate id).
    write(tmp_path / "src" / "part.0.parquet", {"text": ["a", "b"]})
    write(tmp_path / "src" / "part.1.parquet", {"text": ["c", "d"]})
    ws = Workspace(str(tmp_path / "ws"))
    result = ingest(ws, [str(tmp_path / "src")], IngestConfig())
    rows = ws.read_manifest(columns=["id", "status", "text"]).to_pylist()
    assert [(r["id"], r["status"], r["text"]) for r in rows] == [
        ("src/part.0:0", "ok", "a"), ("src/part.0:1", "ok", "b"),
        ("src/part.1:0", "ok", "c"), ("src/part.1:1", "ok", "d"),
    ]
    assert result.meta["quarantined"] == 0


def test_ingest_duplicate_ids_across_files(tmp_path):
    write(tmp_path / "src" / "a.parquet", {"text": ["one", "two"], "id": ["k", "m"]})
    write(tmp_path / "src" / "b.parquet", {"text": ["three"], "id": ["k"]})
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "src")], IngestConfig())
    rows = ws.read_manifest(columns=["id", "status", "reason", "text"]).to_pylist()
    assert [r["id"] for r in rows] == ["k", "m", "k~dup1"]
    assert rows[2]["status"] == "quarantined"
    assert rows[2]["reason"].startswith("duplicate-id:")
    assert rows[2]["text"] == "three"


def test_embedding_problems_one_pass_matches_rules_per_row():
    from curate.readers.parquet import embedding_problems

    nan = float("nan")
    col = pa.array([[0.0, 0.0], [1.0, 2.0], None, [], [nan, 1.0], [1.0, None], [1.0, 2.0, 3.0], [3.0, 4.0]],
                   pa.list_(pa.float32()))
    dim: list[int] = []
    got = embedding_problems(col.slice(1), dim)  # a slice: offsets must be read relative to it
    assert dim == [2]
    assert [g and g.split(": ", 1)[1] for g in got] == [
        None, "missing", "missing", "contains NaN, Inf or null", "contains NaN, Inf or null",
        "dimension 3, expected 2", None]
    assert embedding_problems(col.slice(0, 1), [])[0].endswith("all zeros (a zero vector has no direction)")
    fixed = pa.array([[1, 2], [0, 0], None], pa.list_(pa.int64(), 2))
    assert [g and g.split(": ", 1)[1][:5] for g in embedding_problems(fixed, [])] == [None, "all z", "missi"]


def test_path_column_naming_a_device_fifo_or_folder_is_quarantined_not_read(tmp_path):
    # /dev/zero grew memory until OOM and a FIFO hung the run: every path read from a table must be a
    # regular file under a size cap. Through the CLI in a child killed past 120 s or 1.5 GB resident.
    import os

    from tests.bounded import run_curate

    data = tmp_path / "data"
    (data / "pics").mkdir(parents=True)
    (data / "pics" / "ok.png").write_bytes(png())
    os.mkfifo(data / "pics" / "pipe.png")
    table = write(data / "t.parquet", {"id": ["zero", "pipe", "dir", "ok"],
                                       "image": ["/dev/zero", "pics/pipe.png", "pics", "pics/ok.png"]})
    done = run_curate("ingest", str(table), "-w", str(tmp_path / "ws"), "--no-progress", "--workers", "2",
                      max_rss_mb=1500)
    assert done.returncode == 0, done.stderr
    rows = Workspace(str(tmp_path / "ws")).read_manifest(["id", "status", "reason", "source"]).to_pylist()
    assert [(r["id"], r["status"], r["reason"]) for r in rows] == [
        ("zero", "quarantined", "unsafe-path: a device, not a regular file; not read"),
        ("pipe", "quarantined", "unsafe-path: a named pipe (FIFO), not a regular file; not read"),
        ("dir", "quarantined", "unsafe-path: a folder, not a regular file; not read"),
        ("ok", "ok", None)]
    assert rows[0]["source"] == "/dev/zero" and rows[1]["source"] == str(data / "pics" / "pipe.png")


def test_path_column_file_over_the_size_cap_is_quarantined(tmp_path, monkeypatch):
    import curate.readers.parquet as parquet_reader

    (tmp_path / "big.png").write_bytes(png((64, 64)))
    (tmp_path / "small.png").write_bytes(b"x" * 10)
    monkeypatch.setattr(parquet_reader, "CAP_PAYLOAD", 100)
    rows = read_all(write(tmp_path / "t.parquet", {"image": ["big.png", "small.png"]}))
    assert code(rows[0]) == "file-too-large" and "over the cap of 100 bytes" in rows[0]["reason"]
    assert code(rows[1]) == "not-an-image"  # under the cap: read, then judged as an image
