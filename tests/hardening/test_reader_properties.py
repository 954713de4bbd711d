"""Property tests: every reader, fed random bytes or random structured garbage, never raises (other
than a one-line CurateError at planning) and turns every input into rows with a known reason."""

from __future__ import annotations

import io
import string
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.errors import CurateError
from curate.manifest import OK, QUARANTINED, reason_code
from curate.readers.base import ReadOptions
from tests.conftest import encode_image, read_source

CODES = {"empty-file", "not-an-image", "truncated-image", "corrupt-image", "decompression-bomb",
         "unsupported-mode", "unsupported-file-type", "undecodable-text", "empty-text", "text-too-long",
         "invalid-record", "missing-field", "invalid-embedding", "duplicate-id", "unsafe-path",
         "symlink-outside-root", "broken-symlink", "no-payload", "corrupt-shard", "read-error"}
OPTS = ReadOptions(workers=1)
SETTINGS = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
IMAGE = encode_image(size=(8, 8))


def check(rows: list[dict]) -> list[dict]:
    for row in rows:
        assert isinstance(row["id"], str) and row["id"]
        assert row["status"] in (OK, QUARANTINED)
        if row["status"] == QUARANTINED:
            assert reason_code(row["reason"]) in CODES, row["reason"]
            assert "\n" not in row["reason"]
        else:
            assert row.get("reason") is None
    return rows


def read(reader: str, name: str, data: bytes) -> list[dict] | None:
    """Rows of one file holding ``data``; None when planning refused it with a CurateError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return check(read_source(reader, path, OPTS))
        except CurateError as exc:
            assert "\n" not in str(exc)
            return None


garbage = st.binary(max_size=2048)
# bytes that look almost right: a valid payload with a random cut, flips and appended junk
mangled_image = st.tuples(st.integers(0, len(IMAGE)), st.binary(max_size=64), st.integers(0, len(IMAGE) - 1),
                          st.integers(0, 255)).map(
    lambda t: bytes(bytearray(IMAGE[: t[0]]) + t[1]) if t[0] < len(IMAGE) else
    IMAGE[: t[2]] + bytes([t[3]]) + IMAGE[t[2] + 1:])


@SETTINGS
@given(st.dictionaries(st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12),
                       st.one_of(garbage, mangled_image), max_size=6))
def test_image_folder_random_files(files):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "imgs"
        root.mkdir()
        names = [n for n in files if n not in (".", "..")]
        for name in names:
            (root / name).write_bytes(files[name])
        rows = check(read_source("imagefolder", root, OPTS))
    assert sorted(r["id"] for r in rows) == sorted(f"imgs/{n}" for n in names)


@SETTINGS
@given(st.one_of(garbage, mangled_image))
def test_webdataset_random_bytes(data):
    read("webdataset", "s.tar", data)


member_names = st.one_of(
    st.text(string.ascii_letters + "./_-", min_size=1, max_size=16),
    st.sampled_from(["../x.png", "/abs.png", "a/../../b.png", "x.png", "x.cls", "x.json", "x.txt", ".hidden"]))


def sample_key(name: str) -> str:
    """WebDataset key: the path up to the first dot of the file name; a file name starting with a
    dot has none, so the whole name stands for it."""
    folder, _, base = name.rpartition("/")
    stem = base.partition(".")[0]
    return name if not stem else (f"{folder}/{stem}" if folder else stem)


@SETTINGS
@given(st.lists(st.tuples(member_names, st.one_of(garbage, st.just(IMAGE)),
                          st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
                                           tarfile.FIFOTYPE])), max_size=8), st.integers(0, 4096))
def test_webdataset_random_members_and_cuts(members, cut):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "target" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    data = buf.getvalue()
    rows = read("webdataset", "s.tar", data[: len(data) - cut] if cut else data)
    assert rows is not None
    if not cut:  # an intact shard: one row per distinct consecutive key of the non-folder members
        keys = [sample_key(n) for n, _, kind in members if kind != tarfile.DIRTYPE]
        distinct = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
        assert [r["id"] for r in rows] == distinct


@SETTINGS
@given(garbage)
def test_parquet_random_bytes(data):
    rows = read("parquet", "p.parquet", data)
    assert rows is None or all(reason_code(r["reason"]) == "corrupt-shard" for r in rows)


cells = st.one_of(st.none(), st.text(max_size=20), st.binary(max_size=40), st.just(IMAGE), st.integers(-2**62, 2**62),
                  st.floats(allow_nan=True))


@SETTINGS
@given(st.sampled_from(["image", "text"]), st.lists(cells, min_size=1, max_size=6),
       st.lists(st.one_of(st.none(), st.lists(st.floats(width=32), max_size=4)), min_size=6, max_size=6))
def test_parquet_random_columns(role, values, vectors):
    column = pa.array(values) if len({type(v) for v in values if v is not None}) <= 1 else \
        pa.array([None if v is None else str(v) for v in values])
    table = pa.table({role: column, "id": pa.array([str(i % 3) for i in range(len(values))]),
                      "emb": pa.array(vectors[: len(values)], pa.list_(pa.float32()))})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    for opts in (OPTS, ReadOptions(workers=1, fields=ReadOptions().fields.__class__(embedding="emb"))):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "t.parquet"
            path.write_bytes(buf.getvalue())
            try:
                rows = check(read_source("parquet", path, opts))
            except CurateError as exc:
                assert "\n" not in str(exc)
                continue
        assert len(rows) == len(values)


@SETTINGS
@given(st.lists(st.one_of(garbage.filter(lambda b: b"\n" not in b and b"\r" not in b),
                          st.dictionaries(st.sampled_from(["id", "text", "label", "split", "x"]), cells.map(
                              lambda v: v.decode("latin-1") if isinstance(v, bytes) else v), max_size=4)),
                max_size=8))
def test_jsonl_random_lines(lines):
    import json

    raw = [line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines]
    rows = read("jsonl", "r.jsonl", b"\n".join(raw))
    assert rows is not None
    assert len(rows) == sum(1 for line in raw if line.strip())


@SETTINGS
@given(garbage, st.sampled_from(["c.csv", "t.tsv"]))
def test_csv_random_bytes(data, name):
    rows = read("csv", name, b"text,id\n" + data if name.endswith(".csv") else b"text\tid\n" + data)
    assert rows is not None
    assert len(rows) <= data.count(b"\n") + data.count(b"\r") + 1


@SETTINGS
@given(st.lists(st.lists(st.text(string.printable, max_size=8), max_size=4), max_size=8))
def test_csv_random_structured_rows(records):
    data = "\n".join(",".join(fields) for fields in [["id", "text"], *records]).encode()
    rows = read("csv", "s.csv", data)
    assert rows is not None
    for row in rows:
        assert row["status"] == OK or reason_code(row["reason"]) in CODES
