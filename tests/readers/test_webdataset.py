"""WebDataset ``.tar`` reader: grouping by key, payload roles, unsafe members, broken shards."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from curate.ingest import IngestConfig, ingest
from curate.io.fs import locate
from curate.io.hashing import content_hash
from curate.readers import READERS
from curate.readers.base import ReadOptions
from curate.readers.webdataset import split_key
from curate.workspace import Workspace
from tests.conftest import code, read_source

OPTS = ReadOptions(workers=2)


def png(size: tuple[int, int] = (4, 3), colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def noisy_png(side: int = 64) -> bytes:
    """A PNG whose pixel data does not compress away, so cutting it really truncates it."""
    pixels = bytes((i * 7919 + i // 3) % 251 for i in range(side * side * 3))
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buf, "PNG")
    return buf.getvalue()


def member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    return name, data, kind, link


def make_tar(path: Path, members: list) -> Path:
    """Write ``members`` (name, data[, type, linkname]) in order, exactly as given."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for item in members:
            name, data, kind, link = item if len(item) == 4 else (*item, tarfile.REGTYPE, "")
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = link
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def read_all(path: Path, opts: ReadOptions = OPTS) -> list[dict]:
    return read_source("webdataset", path, opts)



def by_id(rows: list[dict]) -> dict[str, dict]:
    assert len({r["id"] for r in rows}) == len(rows), "ids must be unique within a shard"
    return {r["id"]: r for r in rows}


# -- keys and grouping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dir/sample.seg.png", ("dir/sample", "seg.png")),
        ("sample.jpg", ("sample", "jpg")),
        ("a/b/c.cls.txt", ("a/b/c", "cls.txt")),
        ("x.JPEG", ("x", "jpeg")),
        ("dir.v2/s.png", ("dir.v2/s", "png")),
    ],
)
def test_split_key(name, expected):
    assert split_key(name) == expected


def test_members_sharing_a_key_form_one_sample_with_key_as_id(tmp_path):
    img = png()
    shard = make_tar(tmp_path / "s.tar", [
        ("dir/sample.png", img),
        ("dir/sample.seg.png", png(colour=(0, 0, 255))),
        ("dir/sample.cls", b"7\n"),
        ("dir/other.png", png((2, 5))),
    ])
    rows = read_all(shard)
    assert [r["id"] for r in rows] == ["dir/sample", "dir/other"]
    first, second = rows
    assert first.get("reason") is None
    assert first == {**first, "kind": "image", "source_kind": "webdataset", "label": "7",
                     "format": "PNG", "mode": "RGB", "width": 4, "height": 3,
                     "bytes": len(img), "content_hash": content_hash(img), "status": "ok"}
    # The payload is the plain .png, not the .seg.png mask; the source names that member.
    assert first["source"] == f"{shard}#dir/sample.png"
    assert (second["width"], second["height"], second["label"]) == (2, 5, None)


def test_json_sidecar_gives_label_and_normalised_split(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [
        ("a.png", png()), ("a.json", json.dumps({"label": "dog", "split": "validation"}).encode()),
        ("b.png", png()), ("b.json", json.dumps({"label": 3, "split": "train"}).encode()),
        ("c.png", png()), ("c.json", b"{not json"),
        ("d.png", png()), ("d.json", b"[" * 100_000),
    ])
    rows = by_id(read_all(shard))
    assert (rows["a"]["label"], rows["a"]["split"]) == ("dog", "val")
    assert (rows["b"]["label"], rows["b"]["split"]) == ("3", "train")
    # A broken sidecar loses its metadata, not the image.
    assert (rows["c"]["status"], rows["c"]["label"], rows["c"]["split"]) == ("ok", None, None)
    assert (rows["d"]["status"], rows["d"]["label"]) == ("ok", None)  # too deep: no crash


def test_cls_member_wins_over_json_label(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [
        ("a.jpg", png()), ("a.cls", b" 12 "), ("a.json", b'{"label": "from-json"}'),
    ])
    (row,) = read_all(shard)
    assert row["label"] == "12"


def test_image_with_caption_keeps_caption_as_text(tmp_path):
    img = png((8, 6))
    shard = make_tar(tmp_path / "s.tar", [("cap.png", img), ("cap.txt", b"a red square\n")])
    (row,) = read_all(shard)
    assert row["status"] == "ok"
    assert (row["kind"], row["text"]) == ("image", "a red square")
    assert (row["width"], row["height"]) == (8, 6)
    # Image rows hash the image bytes, not the caption.
    assert row["content_hash"] == content_hash(img)
    assert row["bytes"] == len(img)


def test_text_only_sample_is_a_text_row(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [("t1.txt", b"hello world"), ("t1.cls", b"pos")])
    (row,) = read_all(shard)
    assert row["status"] == "ok"
    assert (row["kind"], row["text"], row["label"]) == ("text", "hello world", "pos")
    assert (row["bytes"], row["content_hash"]) == (11, content_hash(b"hello world"))
    assert row["source"] == f"{shard}#t1.txt"


def test_bad_text_only_samples_are_quarantined(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [
        ("blank.txt", b" \n\t "),
        ("latin1.txt", "caf\u00e9".encode("latin-1")),
    ])
    rows = by_id(read_all(shard))
    assert code(rows["blank"]) == "empty-text"
    assert code(rows["latin1"]) == "undecodable-text"
    assert all(r["status"] == "quarantined" and r["kind"] == "text" for r in rows.values())


def test_sample_with_only_json_has_no_payload(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [("meta.json", b'{"label": "x"}'), ("ok.png", png())])
    rows = by_id(read_all(shard))
    assert rows["meta"]["status"] == "quarantined"
    assert code(rows["meta"]) == "no-payload"
    assert "json" in rows["meta"]["reason"]
    assert rows["meta"]["label"] == "x"
    assert rows["ok"]["status"] == "ok"


def test_uppercase_extension_is_an_image(tmp_path):
    shard = make_tar(tmp_path / "s.tar", [("UP.PNG", png())])
    (row,) = read_all(shard)
    assert (row["status"], row["format"]) == ("ok", "PNG")


# -- unsafe members ---------------------------------------------------------------------------


def test_unsafe_members_each_quarantine_their_sample(tmp_path):
    img = png()
    shard = make_tar(tmp_path / "s.tar", [
        ("good1.png", img),
        ("/etc/abs.png", img),
        ("../escape.png", img),
        ("a/../../deep.png", img),
        member("sym.png", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        member("hard.png", kind=tarfile.LNKTYPE, link="good1.png"),
        member("chr.png", kind=tarfile.CHRTYPE),
        member("fifo.png", kind=tarfile.FIFOTYPE),
        ("mixed.png", img),
        member("mixed.cls", kind=tarfile.SYMTYPE, link="../../label"),
        ("good2.png", img),
    ])
    rows = read_all(shard)
    assert [r["id"] for r in rows] == [
        "good1", "/etc/abs", "../escape", "a/../../deep", "sym", "hard", "chr", "fifo",
        "mixed", "good2",
    ]
    status = {r["id"]: (r["status"], code(r)) for r in rows}
    for key in ("good1", "good2"):
        assert status[key] == ("ok", None)
    for key in ("/etc/abs", "../escape", "a/../../deep", "sym", "hard", "chr", "fifo", "mixed"):
        assert status[key] == ("quarantined", "unsafe-path"), key
    reasons = {r["id"]: r.get("reason") for r in rows}
    assert "absolute path" in reasons["/etc/abs"]
    assert "'..'" in reasons["../escape"]
    assert "/etc/passwd" in reasons["sym"]
    assert "link" in reasons["hard"]
    assert "not a regular file" in reasons["chr"]
    assert "not a regular file" in reasons["fifo"]


def test_directory_members_are_not_samples(tmp_path):
    shard = make_tar(tmp_path / "s.tar",
                     [member("dir", kind=tarfile.DIRTYPE), ("dir/x.png", png())])
    assert [r["id"] for r in read_all(shard)] == ["dir/x"]


# -- broken shards and payloads ---------------------------------------------------------------


def three_samples(tmp_path: Path) -> tuple[bytes, list[tarfile.TarInfo]]:
    path = make_tar(tmp_path / "full.tar", [
        ("a.png", png()), ("a.cls", b"1"),
        ("b.png", png()), ("b.cls", b"2"),
        ("c.png", png()), ("c.cls", b"3"),
    ])
    with tarfile.open(path) as tar:
        infos = tar.getmembers()
    return path.read_bytes(), infos


def cut_points(infos: list[tarfile.TarInfo]) -> dict[str, tuple[int, list[str]]]:
    """Where to cut the 3-sample tar, and which samples must still be ok after the cut."""
    c_png, c_cls = infos[4], infos[5]
    return {
        "inside member data": (c_png.offset_data + 10, ["a", "b"]),
        "at a member header": (c_png.offset, ["a"]),
        "inside a member header": (c_png.offset + 100, ["a"]),
        "before the end-of-archive block": (c_cls.offset_data + 512, ["a", "b"]),
    }


@pytest.mark.parametrize("where", ["inside member data", "at a member header",
                                   "inside a member header", "before the end-of-archive block"])
def test_truncated_shard_keeps_earlier_samples_and_adds_a_corrupt_shard_row(tmp_path, where):
    data, infos = three_samples(tmp_path)
    offset, ok_ids = cut_points(infos)[where]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:offset])
    rows = read_all(cut)
    ok = [r["id"] for r in rows if r["status"] == "ok"]
    bad = [r for r in rows if r["status"] == "quarantined"]
    assert ok == ok_ids
    # The sample being read when the stream broke may be incomplete: it is quarantined,
    # and one more row stands for the unreadable rest of the shard.
    assert [code(r) for r in bad] == ["corrupt-shard", "corrupt-shard"]
    assert bad[-1]["id"] == "cut.tar#unreadable-rest"
    assert [r["id"] for r in rows] == [*ok_ids, bad[0]["id"], "cut.tar#unreadable-rest"]


def test_lone_zero_block_still_ends_the_archive_cleanly(tmp_path):
    data, infos = three_samples(tmp_path)
    end = infos[5].offset_data + 512  # the first of the two zero blocks
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: end + 512])
    rows = read_all(cut)
    assert [(r["id"], r["status"]) for r in rows] == [("a", "ok"), ("b", "ok"), ("c", "ok")]


def test_garbled_header_mid_shard_is_corrupt_not_a_silent_end(tmp_path):
    data, infos = three_samples(tmp_path)
    at = infos[4].offset
    bad = tmp_path / "bad.tar"
    bad.write_bytes(data[:at] + b"\xff" * 512 + data[at + 512:])
    rows = read_all(bad)
    assert [r["id"] for r in rows if r["status"] == "ok"] == ["a"]
    assert rows[-1]["id"] == "bad.tar#unreadable-rest"
    assert code(rows[-1]) == "corrupt-shard"


def test_not_a_tar_is_one_corrupt_shard_row(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 40)
    (row,) = read_all(junk)
    assert row["id"] == "junk.tar#unreadable-rest"
    assert row["status"] == "quarantined"
    assert code(row) == "corrupt-shard"
    assert "after 0 samples" in row["reason"]


def test_corrupt_image_member_is_quarantined_and_reading_goes_on(tmp_path):
    good = noisy_png()
    shard = make_tar(tmp_path / "s.tar", [
        ("cut.png", good[: len(good) // 2]),
        ("junk.png", b"\x00\x01 not an image at all"),
        ("empty.png", b""),
        ("fine.png", good),
    ])
    rows = by_id(read_all(shard))
    assert code(rows["cut"]) in {"truncated-image", "corrupt-image"}
    assert code(rows["junk"]) == "not-an-image"
    assert code(rows["empty"]) == "empty-file"
    # Quarantined image rows still carry their size and hash (for audit and exact dedup).
    assert rows["cut"]["bytes"] == len(good) // 2
    assert rows["cut"]["content_hash"] == content_hash(good[: len(good) // 2])
    assert (rows["fine"]["status"], rows["fine"]["width"]) == ("ok", 64)


# -- folders of shards and ingest -------------------------------------------------------------


def test_folder_of_shards_is_read_in_sorted_order(tmp_path):
    src = tmp_path / "shards"
    src.mkdir()
    for name, keys in (("b.tar", ["b1", "b2"]), ("a.tar", ["a1"]), ("c.tar", ["c1"])):
        make_tar(src / name, [(f"{k}.png", png()) for k in keys])
    make_tar(src / ".hidden.tar", [("h.png", png())])
    (src / "notes.md").write_text("not a shard")
    reader = READERS["webdataset"]
    units = reader.plan(locate(str(src)), OPTS)
    assert [Path(u.uri).name for u in units] == ["a.tar", "b.tar", "c.tar"]
    assert all(u.stamp for u in units)
    rows = [row for u in units for row in reader.read(u, OPTS)]
    assert [r["id"] for r in rows] == ["a1", "b1", "b2", "c1"]


def test_ingest_renames_and_quarantines_duplicate_ids_across_shards(tmp_path):
    src = tmp_path / "shards"
    src.mkdir()
    make_tar(src / "s0.tar", [("x.png", png()), ("y.png", png())])
    make_tar(src / "s1.tar", [("x.png", png((5, 5))), ("z.txt", b"words")])
    ws = Workspace(str(tmp_path / "ws"))
    result = ingest(ws, [str(src)], IngestConfig())
    table = ws.read_manifest().to_pylist()
    assert [r["id"] for r in table] == ["x", "y", "x~dup1", "z"]
    dup = table[2]
    assert dup["status"] == "quarantined"
    assert dup["reason"].startswith("duplicate-id:")
    assert dup["width"] == 5
    assert [r["status"] for r in table] == ["ok", "ok", "quarantined", "ok"]
    assert (result.meta["samples"], result.meta["quarantined"]) == (4, 1)


def test_ingest_of_truncated_shard_accounts_for_everything(tmp_path):
    data, infos = three_samples(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "cut.tar").write_bytes(data[: infos[4].offset_data + 10])
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    rows = ws.read_manifest(columns=["id", "status", "reason"]).to_pylist()
    assert [(r["id"], r["status"]) for r in rows] == [
        ("a", "ok"), ("b", "ok"), ("c", "quarantined"), ("cut.tar#unreadable-rest", "quarantined"),
    ]
    assert all(r["reason"].startswith("corrupt-shard:") for r in rows[2:])


def test_multi_part_image_extension_is_the_payload(tmp_path):
    shard = make_tar(tmp_path / "seg.tar", [member("s1.seg.png", png())])
    [row] = read_all(shard)
    assert row["status"] == "ok" and row["source"].endswith("#s1.seg.png")
