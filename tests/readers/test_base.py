"""Rules every reader shares (``readers/base.py``, ``probe/text.py``): one "empty text" rule for every
text reader, labels and splits that are missing numbers are no label, label bytes that are not UTF-8
are quarantined the same way whichever reader meets them."""

from __future__ import annotations

import io
import json
import math
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.probe.text import is_blank
from curate.readers.base import as_label, normalise_split
from tests.conftest import code, encode_image, read_source, write

# zero-width space / non-joiner / joiner, word joiner, BOM, soft hyphen, LRM/RLM, Hangul filler,
# braille blank, a variation selector, NUL, and ordinary whitespace
INVISIBLE = ["\u200b", "\u200b\u200c\u200d", "\u2060\ufeff", "\u00ad", "\u200e\u200f", "\u3164", "\u2800",
             "\ufe0f", "\x00\x01", " \u200b\t\u3000\u200b "]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_only_text_is_blank(text):
    assert is_blank(text)
    assert not is_blank(text + "a") and not is_blank("a" + text)  # one visible character is content


def texts_by_reader(tmp_path, texts: list[str]) -> dict[str, list[dict]]:
    """The same texts through JSONL, CSV, Parquet and WebDataset (.txt members)."""
    jsonl = write(tmp_path / "t.jsonl", "".join(json.dumps({"id": f"r{i}", "text": t}) + "\n"
                                                 for i, t in enumerate(texts)).encode())
    csv_rows = "id,text\n" + "".join(f'r{i},"{t}"\n' for i, t in enumerate(texts))
    csv = write(tmp_path / "t.csv", csv_rows.encode())
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts}), parquet)
    tar = tmp_path / "t.tar"
    with tarfile.open(tar, "w") as out:
        for i, t in enumerate(texts):
            data = t.encode()
            info = tarfile.TarInfo(f"r{i}.txt")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return {name: read_source(name, path) for name, path in
            (("jsonl", jsonl), ("csv", csv), ("parquet", parquet), ("webdataset", tar))}


def test_every_text_reader_quarantines_invisible_text_alike(tmp_path):
    texts = [*INVISIBLE, "\u200bvisible\u200b", "plain"]
    for reader, rows in texts_by_reader(tmp_path, texts).items():
        got = [(r["id"], code(r)) for r in rows]
        want = [(f"r{i}", "empty-text") for i in range(len(INVISIBLE))] + [(f"r{len(INVISIBLE)}", None),
                                                                          (f"r{len(INVISIBLE) + 1}", None)]
        assert got == want, reader
        assert len({r.get("reason") for r in rows if r.get("reason")}) == 1, reader  # one rule, one wording
        assert rows[-2]["text"] == "\u200bvisible\u200b"  # accepted text is stored as it was


@pytest.mark.parametrize("value,label", [
    (float("nan"), None), (float("inf"), None), (None, None), ("", None), ("\u200b", None),
    (1.0, "1.0"), (0, "0"), (" cat ", "cat"), ("NaN", "NaN"),  # a string is a name, even "NaN"
])
def test_missing_numbers_are_no_label(value, label):
    assert as_label(value) == label
    assert normalise_split(value) == (None if label is None else label)


def test_nan_label_in_jsonl_and_parquet_is_null_not_the_class_nan(tmp_path):
    jsonl = write(tmp_path / "n.jsonl", b'{"text": "a", "label": NaN, "split": NaN}\n{"text": "b", "label": 2}\n')
    rows = read_source("jsonl", jsonl)
    assert [(r["status"], r.get("label"), r.get("split")) for r in rows] == [("ok", None, None), ("ok", "2", None)]
    parquet = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [math.nan, 3.0, None]}), parquet)
    assert [r["label"] for r in read_source("parquet", parquet)] == [None, "3.0", None]


def tar_of(path, members):
    with tarfile.open(path, "w") as out:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path


def test_label_bytes_that_are_not_utf8_are_quarantined_like_jsonl_does(tmp_path):
    bad = b"\xff\xfe"
    jsonl = write(tmp_path / "l.jsonl", b'{"id": "j", "text": "x", "label": "' + bad + b'"}\n')
    [jrow] = read_source("jsonl", jsonl)
    shard = tar_of(tmp_path / "l.tar", [("t.txt", b"x"), ("t.cls", bad), ("i.png", encode_image()), ("i.cls", bad),
                                        ("c.png", encode_image()), ("c.txt", b"cap " + bad),
                                        ("ok.png", encode_image()), ("ok.cls", b"\xef\xbb\xbfcat\n")])
    rows = {r["id"]: r for r in read_source("webdataset", shard)}
    assert code(jrow) == code(rows["t"]) == code(rows["i"]) == code(rows["c"]) == "undecodable-text"
    assert rows["t"]["reason"] == "undecodable-text: tar member 't.cls' is not valid UTF-8 at byte 0"
    assert rows["c"]["reason"] == "undecodable-text: tar member 'c.txt' is not valid UTF-8 at byte 4"
    assert not any("\ufffd" in (r.get("label") or "") + (r.get("text") or "") for r in rows.values())
    assert rows["ok"]["status"] == "ok" and rows["ok"]["label"] == "cat"  # a byte-order mark is not part of it
