import os

import pytest

from curate.io.fs import locate
from curate.readers import READERS, resolve
from curate.readers.base import ReadOptions
from curate.readers.imagefolder import split_and_label
from tests.conftest import encode_image, write

READER = READERS["imagefolder"]


def read_all(root, **opts):
    options = ReadOptions(workers=2, **opts)
    units = READER.plan(locate(str(root)), options)
    return units, [row for u in units for row in READER.read(u, options)]


@pytest.mark.parametrize("rel,expected", [
    ("train/cat/x.jpg", ("train", "cat")),
    ("validation/dog/a/b.png", ("val", "dog")),
    ("cat/x.jpg", (None, "cat")),
    ("test/x.jpg", ("test", None)),
    ("x.jpg", (None, None)),
])
def test_split_and_label_from_folders(rel, expected):
    assert split_and_label(rel) == expected


def test_rows_in_sorted_order_with_ids_labels_and_splits(tmp_path):
    root = tmp_path / "pets"
    write(root / "train" / "dog" / "b.png", encode_image(seed=1))
    write(root / "train" / "cat" / "a.jpg", encode_image((10, 20), fmt="JPEG", seed=2))
    write(root / "test" / "cat" / "c.png", encode_image(seed=3))
    _, rows = read_all(root)
    assert [r["id"] for r in rows] == ["pets/test/cat/c.png", "pets/train/cat/a.jpg", "pets/train/dog/b.png"]
    assert [(r["split"], r["label"]) for r in rows] == [("test", "cat"), ("train", "cat"), ("train", "dog")]
    assert all(r["status"] == "ok" and r["kind"] == "image" for r in rows)
    jpg = rows[1]
    assert (jpg["width"], jpg["height"], jpg["format"]) == (10, 20, "JPEG")
    assert jpg["source"] == str(root / "train" / "cat" / "a.jpg")
    assert jpg["bytes"] == (root / "train" / "cat" / "a.jpg").stat().st_size


def test_every_file_is_a_row_and_bad_ones_have_reasons(tmp_path):
    root = tmp_path / "src"
    good = encode_image(fmt="JPEG")
    write(root / "a" / "ok.jpg", good)
    write(root / "a" / "empty.jpg", b"")
    write(root / "a" / "cut.jpg", good[: len(good) // 2])
    write(root / "a" / "fake.png", b"not really a png")
    write(root / "a" / "notes.txt", b"hello")
    _, rows = read_all(root)
    by_name = {r["id"].rsplit("/", 1)[1]: r for r in rows}
    assert len(rows) == 5
    assert by_name["ok.jpg"]["status"] == "ok"
    expected = {"empty.jpg": "empty-file", "cut.jpg": "truncated-image",
                "fake.png": "not-an-image", "notes.txt": "unsupported-file-type"}
    for name, code in expected.items():
        assert by_name[name]["status"] == "quarantined"
        assert by_name[name]["reason"].startswith(code + ": ")


def test_symlinks_leaving_the_root_are_quarantined(tmp_path):
    root = tmp_path / "src"
    outside = write(tmp_path / "secret.png", encode_image())
    inside = write(root / "real.png", encode_image(seed=5))
    os.symlink(outside, root / "escape.png")
    os.symlink(inside, root / "alias.png")
    os.symlink(tmp_path / "missing.png", root / "broken.png")
    os.mkdir(root / "sub")
    os.symlink(root / "sub", root / "loop")
    _, rows = read_all(root)
    by_name = {r["id"].split("/", 1)[1]: r for r in rows}
    assert set(by_name) == {"alias.png", "broken.png", "escape.png", "loop", "real.png"}
    assert by_name["escape.png"]["reason"].startswith("symlink-outside-root: ")
    assert by_name["broken.png"]["reason"].startswith("symlink-outside-root: ") or \
        by_name["broken.png"]["reason"].startswith("broken-symlink: ")
    assert by_name["loop"]["reason"].startswith("unsafe-path: ")
    assert by_name["alias.png"]["status"] == "ok"
    assert by_name["alias.png"]["content_hash"] == by_name["real.png"]["content_hash"]


def test_broken_symlink_inside_root(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    os.symlink(root / "gone.png", root / "dangling.png")
    _, [row] = read_all(root)
    assert row["reason"].startswith("broken-symlink: ")


def test_listing_is_chunked_into_units(tmp_path):
    root = tmp_path / "src"
    for i in range(7):
        write(root / f"{i}.png", encode_image(seed=i))
    units, rows = read_all(root, files_per_unit=3)
    assert [len(u.items) for u in units] == [3, 3, 1]
    assert len({u.key for u in units}) == 3
    assert [r["id"] for r in rows] == [f"src/{i}.png" for i in range(7)]


def test_folder_of_images_resolves_to_imagefolder(tmp_path):
    write(tmp_path / "imgs" / "a.png", encode_image())
    [(reader, loc)] = resolve(str(tmp_path / "imgs"))
    assert reader.name == "imagefolder" and loc.path == str(tmp_path / "imgs")


@pytest.mark.parametrize(("files", "expected"), [
    (["part-0.parquet", "part-1.parquet", "_SUCCESS", "dataset_info.json", "README.md"], "parquet"),
    (["a.jsonl", "notes.txt"], "jsonl"),
    (["a.parquet", "b.jsonl"], "imagefolder"),  # two shard kinds: not one table source
    (["a.parquet", "cat.png"], "imagefolder"),  # any image makes it an image folder
    (["a.png", "labels.csv"], "imagefolder"),
])
def test_folder_kind_ignores_metadata_files_beside_shards(tmp_path, files, expected):
    for name in files:
        write(tmp_path / "src" / name, encode_image() if name.endswith(".png") else b"x")
    [(reader, _)] = resolve(str(tmp_path / "src"))
    assert reader.name == expected


def _unblock_later(fifo, seconds):
    """If a regression opens the FIFO, a writer opens and closes it after ``seconds`` (EOF, no hang)."""
    import contextlib
    import threading

    def unblock():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    timer = threading.Timer(seconds, unblock)
    timer.daemon = True
    timer.start()
    return timer


def test_a_symlink_to_a_fifo_in_the_folder_is_quarantined_and_never_opened(tmp_path):
    import time

    root = tmp_path / "pets"
    write(root / "cat" / "a.png", encode_image())
    fifo = root / "cat" / "pipe.png"
    os.mkfifo(fifo)
    os.symlink("pipe.png", root / "cat" / "link.png")  # inside the root: the FIFO check must apply to the target
    timer = _unblock_later(fifo, 5)
    began = time.monotonic()
    try:
        _, rows = read_all(root)
    finally:
        timer.cancel()
    assert time.monotonic() - began < 5
    assert [(r["id"], r["status"], r.get("reason")) for r in rows] == [
        ("pets/cat/a.png", "ok", None),
        ("pets/cat/link.png", "quarantined",
         "unsafe-path: symlink to a named pipe (FIFO), not a regular file; not read"),
        ("pets/cat/pipe.png", "quarantined", "unsafe-path: not a regular file (device, socket or fifo)")]


def test_an_image_over_the_size_cap_is_quarantined(tmp_path, monkeypatch):
    import curate.readers.imagefolder as imagefolder

    write(tmp_path / "pets" / "big.png", encode_image(size=(64, 64)))
    monkeypatch.setattr(imagefolder, "CAP_PAYLOAD", 100)
    _, rows = read_all(tmp_path / "pets")
    assert rows[0]["status"] == "quarantined" and rows[0]["reason"].startswith("file-too-large: ")
