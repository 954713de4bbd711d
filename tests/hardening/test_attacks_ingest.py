"""Ingest and reader defects found by a hostile tester, one regression test (or two) each.

Letters are the issue's: b literal paths and opt-in globs, c repeated WebDataset payloads,
d pipes/devices and endless lines, e very deep folders, j duplicate-id renames, k forced
re-hash, l option validation, m nested Parquet/JSONL columns, n workspace inside a source,
o same-named sources. Everything is built in tmp_path; nothing touches the network.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import threading
import time
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.cli import main
from curate.embed.payloads import REHASH_HINT, PayloadFetcher, changed_since_ingest
from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.io.fs import locate
from curate.probe.image import ImageCheck
from curate.probe.text import TextCheck
from curate.readers.base import ReadOptions
from curate.workspace import Workspace
from tests.conftest import code, encode_image, read_source, write

CONFIG = IngestConfig(read=ReadOptions(workers=1))


def jsonl(path: Path, *records: dict) -> Path:
    return write(path, b"".join(json.dumps(r).encode() + b"\n" for r in records))


def manifest(ws: Workspace, *columns: str) -> list[tuple]:
    table = ws.read_manifest(list(columns))
    return list(zip(*(table.column(c).to_pylist() for c in columns)))


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """``curate ARGS`` in-process: (exit status, stderr)."""
    try:
        main(list(args))
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


# b: `::` and glob characters are literal; --glob expands patterns ------------------------

def test_double_colon_in_a_path_or_key_is_not_url_chaining(tmp_path):
    src = jsonl(tmp_path / "in" / "a::b.jsonl", {"id": "right", "text": "the named file"})
    jsonl(tmp_path / "in" / "b.jsonl", {"id": "wrong", "text": "another file"})
    loc = locate(str(src))
    assert loc.is_local and loc.path == str(src)
    remote = locate("memory://bucket/k::x/y.jsonl")  # an object key with `::` stays one key
    assert type(remote.fs).__name__ == "MemoryFileSystem" and remote.path.endswith("bucket/k::x/y.jsonl")
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], CONFIG)
    assert manifest(ws, "id", "text", "source") == [("right", "the named file", f"{src}#line=1")]


def test_glob_characters_are_literal_unless_glob_is_asked(tmp_path, capsys):
    jsonl(tmp_path / "set1.jsonl", {"id": "plain", "text": "set1"})
    bracket = jsonl(tmp_path / "set[1].jsonl", {"id": "bracket", "text": "set[1]"})
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(bracket)], CONFIG)
    assert manifest(ws, "id") == [("bracket",)]
    with pytest.raises(CurateError, match=r"source not found: .*set\*\.jsonl.*--glob"):
        ingest(ws, [str(tmp_path / "set*.jsonl")], CONFIG)
    ingest(ws, [str(tmp_path / "set*.jsonl")], IngestConfig(glob=True))
    assert manifest(ws, "id") == [("plain",), ("bracket",)]  # sorted matches: "set1" < "set["
    status, err = run_cli(capsys, "ingest", str(tmp_path / "set?.jsonl"), "-w", str(tmp_path / "ws2"),
                          "--glob", "--no-progress")
    assert status == 0, err
    assert manifest(Workspace(str(tmp_path / "ws2")), "id") == [("plain",)]


# c: every WebDataset member gets a row ----------------------------------------------------

def make_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return write(path, buf.getvalue())


def test_webdataset_second_image_of_a_key_is_its_own_quarantined_row(tmp_path):
    png, jpg = encode_image(seed=1), encode_image(fmt="JPEG", seed=2)
    shard = make_tar(tmp_path / "s.tar", [("k1.png", png), ("k1.jpg", jpg), ("k1.cls", b"3"),
                                          ("k2.txt", b"a text"), ("k2.caption", b"another text"),
                                          ("k3.jpg", jpg), ("k3.seg.png", png)])
    rows = read_source("webdataset", shard, ReadOptions(workers=1))
    assert [(r["id"], r["status"], code(r)) for r in rows] == [
        ("k1", "ok", None), ("k1.jpg", "quarantined", "invalid-record"),
        ("k2", "ok", None), ("k2.caption", "quarantined", "invalid-record"),
        ("k3", "ok", None)]  # a .seg.png mask is a field of its sample, as before
    assert rows[0]["source"].endswith("#k1.png") and rows[0]["label"] == "3"
    assert rows[1]["reason"] == ("invalid-record: tar member 'k1.jpg' is a second payload of sample 'k1', "
                                 "which already has 'k1.png'")
    assert rows[1]["source"].endswith("#k1.jpg") and rows[1]["length"] == len(jpg)
    assert shard.read_bytes()[rows[1]["offset"]:rows[1]["offset"] + rows[1]["length"]] == jpg
    assert (rows[2]["text"], rows[3]["kind"]) == ("a text", "text")


# d: pipes and devices are refused; endless lines are bounded ------------------------------

def _unblock_later(fifo: Path, seconds: float) -> threading.Timer:
    """If a regression blocks on opening the FIFO, a writer opens and closes it (EOF)."""
    def unblock() -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    timer = threading.Timer(seconds, unblock)
    timer.daemon = True
    timer.start()
    return timer


def test_fifo_and_device_sources_are_refused_with_one_line(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    ws = Workspace(str(tmp_path / "ws"))
    timer = _unblock_later(fifo, 5)
    try:
        with pytest.raises(CurateError, match=r"is a named pipe \(FIFO\), not a regular file"):
            ingest(ws, [str(fifo)], IngestConfig(kind="jsonl"))
        with pytest.raises(CurateError, match=r"is a named pipe"):
            ingest(ws, [str(fifo)], CONFIG)
    finally:
        timer.cancel()
    if os.path.exists("/dev/zero"):
        with pytest.raises(CurateError, match=r"/dev/zero is a device"):
            ingest(ws, ["/dev/zero"], IngestConfig(kind="jsonl"))
    assert not (tmp_path / "ws").exists()


def test_fifo_inside_a_shard_folder_is_a_row_and_never_opened(tmp_path):
    jsonl(tmp_path / "texts" / "a.jsonl", {"text": "hello"})
    fifo = tmp_path / "texts" / "b.jsonl"
    os.mkfifo(fifo)
    ws = Workspace(str(tmp_path / "ws"))
    timer = _unblock_later(fifo, 5)
    try:
        ingest(ws, [str(tmp_path / "texts")], CONFIG)
    finally:
        timer.cancel()
    assert [(i, s, r.split(":")[0] if r else None) for i, s, r in manifest(ws, "id", "status", "reason")] == [
        ("texts/a:1", "ok", None), ("texts/b", "quarantined", "unsafe-path")]


@pytest.mark.parametrize("kind,line", [
    ("jsonl", lambda n: b'{"text": "' + b"x" * n + b'"}\n'),
    ("csv", lambda n: b'"' + b"x" * n + b'"\n'),
])
def test_overlong_line_is_one_text_too_long_row_read_in_bounded_memory(tmp_path, kind, line):
    opts = ReadOptions(workers=1, text=TextCheck(max_bytes=100))  # line cap 66,136 bytes
    head = b"text\n" if kind == "csv" else b""
    good = b'{"text": "after"}\n' if kind == "jsonl" else b"after\n"
    path = write(tmp_path / f"big.{kind}", head + line(8_000_000) + good)
    tracemalloc.start()
    try:
        rows = read_source(kind, path, opts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak:,} bytes: the 8 MB line was held in memory"
    first = 2 if kind == "csv" else 1
    assert [(r["id"], code(r)) for r in rows] == [(f"big:{first}", "text-too-long"), (f"big:{first + 1}", None)]
    assert rows[0]["reason"].startswith(f"text-too-long: line {first} has more than 66,136 bytes")
    assert rows[1]["text"] == "after"


# e: very deep folders ----------------------------------------------------------------------

def deep_folder(root: Path, depth: int) -> Path:
    path = root
    path.mkdir()
    for _ in range(depth):  # os.makedirs itself recurses
        path = path / "d"
        path.mkdir()
    return path


def remove_deep(bottom: Path, top: Path) -> None:
    """Delete a deep chain bottom-up (shutil.rmtree, and pytest's tmp cleanup, recurse)."""
    for entry in bottom.iterdir():
        entry.unlink()
    while bottom != top.parent:
        bottom.rmdir()
        bottom = bottom.parent


def test_1200_deep_folders_are_walked_without_recursion_error(tmp_path):
    images = deep_folder(tmp_path / "imgs", 1200)
    write(images / "x.png", encode_image())
    texts = deep_folder(tmp_path / "texts", 1200)
    jsonl(texts / "t.jsonl", {"id": "deep", "text": "found"})
    try:
        ws = Workspace(str(tmp_path / "ws"))
        ingest(ws, [str(tmp_path / "imgs"), str(tmp_path / "texts")], CONFIG)
        rows = manifest(ws, "id", "status", "source_kind")
        assert rows == [("imgs/" + "d/" * 1200 + "x.png", "ok", "imagefolder"), ("deep", "ok", "jsonl")]
    finally:
        remove_deep(images, tmp_path / "imgs")
        remove_deep(texts, tmp_path / "texts")


# j: renamed duplicates never take a genuine id ------------------------------------------------

def test_renamed_duplicate_does_not_steal_a_later_genuine_id(tmp_path):
    src = jsonl(tmp_path / "t.jsonl", {"id": "a", "text": "1"}, {"id": "a", "text": "2"},
                {"id": "a~dup1", "text": "3"}, {"id": "a", "text": "4"})
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], CONFIG)
    rows = [(i, s, r.split(":")[0] if r else None) for i, s, r in manifest(ws, "id", "status", "reason")]
    assert rows == [("a", "ok", None), ("a~dup2", "quarantined", "duplicate-id"), ("a~dup1", "ok", None),
                    ("a~dup3", "quarantined", "duplicate-id")]


# k: forced re-hash -------------------------------------------------------------------------

def test_rehash_rereads_a_file_replaced_by_one_of_equal_size_and_mtime(tmp_path, capsys):
    image = write(tmp_path / "imgs" / "x.bmp", encode_image(fmt="BMP", seed=1))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "imgs")], CONFIG)
    before = manifest(ws, "content_hash")
    st = image.stat()
    replacement = encode_image(fmt="BMP", seed=2)
    assert len(replacement) == st.st_size and replacement != image.read_bytes()
    image.write_bytes(replacement)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = ingest(ws, [str(tmp_path / "imgs")], IngestConfig(rehash=True))
    assert (result.meta["units_read"], result.meta["units_skipped"]) == (1, 0)
    after = manifest(ws, "content_hash")
    assert after != before
    # --rehash reads again even when nothing changed; the CLI has the flag
    status, err = run_cli(capsys, "ingest", str(tmp_path / "imgs"), "-w", str(tmp_path / "ws"), "--rehash",
                          "--no-progress")
    assert status == 0, err
    assert manifest(ws, "content_hash") == after
    assert "--rehash" in changed_since_ingest("x.bmp") and "changed since ingest" in changed_since_ingest("x")


def test_replaced_file_with_same_size_and_mtime_is_seen_by_its_ctime(tmp_path):
    image = write(tmp_path / "imgs" / "x.bmp", encode_image(fmt="BMP", seed=1))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "imgs")], CONFIG)
    st = image.stat()
    time.sleep(0.05)  # coarse filesystem clocks
    image.write_bytes(encode_image(fmt="BMP", seed=2))
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = ingest(ws, [str(tmp_path / "imgs")], CONFIG)
    assert result.meta["units_read"] == 1


def test_payload_errors_name_the_rehash_option(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [("a.png", encode_image())])
    fetcher = PayloadFetcher()
    with pytest.raises(OSError, match="--rehash"):
        fetcher.fetch({"kind": "image", "source_kind": "webdataset", "source": f"{shard}#a.png",
                       "offset": 512, "length": 10**6})
    fetcher.close()
    assert "curate ingest SOURCE... -w WS --rehash" in REHASH_HINT


# l: option validation before the workspace is touched ------------------------------------------

@pytest.mark.parametrize("option,value", [
    ("--max-pixels", "-1"), ("--max-pixels", "0"), ("--max-text-bytes", "0"), ("--workers", "0"),
    ("--workers", "-1"), ("--files-per-unit", "0"),
])
def test_unusable_numbers_are_one_line_errors_before_the_workspace_is_touched(tmp_path, capsys, option, value):
    jsonl(tmp_path / "t.jsonl", {"text": "x"})
    status, err = run_cli(capsys, "ingest", str(tmp_path / "t.jsonl"), "-w", str(tmp_path / "ws"),
                          option, value, "--no-progress")
    assert status == 2
    assert err.strip().splitlines() == [f"error: {option} must be a positive integer, got {value}"]
    assert not (tmp_path / "ws").exists()


def test_config_validation_also_guards_the_python_api(tmp_path):
    with pytest.raises(CurateError, match="--max-pixels must be a positive integer"):
        IngestConfig(read=ReadOptions(image=ImageCheck(max_pixels=-1)))
    with pytest.raises(CurateError, match="--kind: unknown source kind"):
        IngestConfig(kind="zip")


# m: nested Parquet columns are refused, never stringified ------------------------------------

def test_parquet_list_text_column_gets_a_true_one_line_error(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": pa.array([["a", "b"], ["c"]], pa.list_(pa.string()))}), path)
    with pytest.raises(CurateError, match=r"text column 'text' has type list<.*string>; expected a string"):
        read_source("parquet", path, ReadOptions(workers=1))


@pytest.mark.parametrize("column,values,dtype", [
    ("id", [[1, 2], [3]], pa.list_(pa.int64())),
    ("label", [{"a": 1}, {"a": 2}], pa.struct([("a", pa.int64())])),
    ("split", [b"train", b"test"], pa.binary()),
])
def test_parquet_nested_id_label_split_columns_are_not_stringified(tmp_path, column, values, dtype):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["one", "two"], column: pa.array(values, dtype)}), path)
    with pytest.raises(CurateError, match=rf"{column} column '{column}' has type .*; expected a string or a number"):
        read_source("parquet", path, ReadOptions(workers=1))


def test_jsonl_list_or_object_ids_are_quarantined_not_stringified(tmp_path):
    src = jsonl(tmp_path / "t.jsonl", {"id": [1, 2], "text": "a"}, {"id": {"k": 1}, "text": "b"},
                {"id": 7, "text": "c", "label": 3})
    rows = read_source("jsonl", src, ReadOptions(workers=1))
    assert [(r["id"], code(r), r.get("label")) for r in rows] == [
        ("t:1", "invalid-record", None), ("t:2", "invalid-record", None), ("7", None, "3")]
    assert rows[0]["reason"] == "invalid-record: line 1 field 'id' (id) is a list, expected a string or a number"


# n: the workspace is never a source ----------------------------------------------------------

def test_workspace_equal_to_a_source_is_refused(tmp_path):
    write(tmp_path / "data" / "x.png", encode_image())
    with pytest.raises(CurateError, match="is also a source"):
        ingest(Workspace(str(tmp_path / "data")), [str(tmp_path / "data")], CONFIG)
    assert sorted(os.listdir(tmp_path / "data")) == ["x.png"]


@pytest.mark.parametrize("kind", ["images", "texts"])
def test_workspace_inside_a_source_folder_is_left_out(tmp_path, kind, capsys):
    data = tmp_path / "data"
    if kind == "images":
        write(data / "cat" / "x.png", encode_image())
        expected = [("data/cat/x.png", "ok")]
    else:
        jsonl(data / "a.jsonl", {"id": "a", "text": "hello"})
        expected = [("a", "ok")]
    ws = Workspace(str(data / "ws"))
    for _ in range(2):  # the second run finds the workspace's parquet/json files in the folder
        result = ingest(ws, [str(data)], CONFIG)
        assert manifest(ws, "id", "status") == expected
    assert result.meta["skipped"] and "the workspace, inside source" in result.meta["skipped"][0]
    status, out = run_cli(capsys, "ingest", str(data), "-w", str(data / "ws"), "--no-progress")
    assert status == 0
    assert manifest(ws, "id", "status") == expected


# o: same-named sources get distinct ids --------------------------------------------------------

def test_same_named_source_folders_and_files_get_distinct_ids(tmp_path):
    for batch in ("batch1", "batch2"):
        write(tmp_path / batch / "images" / "cat" / "x.png", encode_image(seed=len(batch)))
        jsonl(tmp_path / batch / "data.jsonl", {"text": batch})
    sources = [str(tmp_path / b / s) for s in ("images", "data.jsonl") for b in ("batch1", "batch2")]
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, sources, CONFIG)
    assert manifest(ws, "id", "status", "label") == [
        ("images/cat/x.png", "ok", "cat"), ("batch2/images/cat/x.png", "ok", "cat"),
        ("data:1", "ok", None), ("batch2/data:1", "ok", None)]
    ingest(ws, [str(tmp_path / "batch2" / "images")], CONFIG)  # alone: today's ids
    assert manifest(ws, "id") == [("images/cat/x.png",)]
