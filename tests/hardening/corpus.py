"""A hostile-input corpus, generated (nothing committed): broken and odd images, polyglots, bombs,
odd modes, hostile text rows, hostile tar members, empty sources. Each builder returns the
sample ids the manifest must hold for what it wrote (the expected accounting)."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from tests.hardening.faults import encoded, picture


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` and whose pixel data is a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    img = picture(7, 32).resize((32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    return encoded(img, "JPEG", exif=exif)


def hostile_images(root: Path) -> list[str]:
    """An image folder ``root`` (id prefix ``root.name``) of hostile and odd files; returns ids."""
    jpeg, png, webp = (encoded(picture(i, 64), f) for i, f in ((1, "JPEG"), (2, "PNG"), (3, "WEBP")))
    corrupt_png = bytearray(png)
    corrupt_png[len(png) // 2: len(png) // 2 + 40] = b"\xff" * 40
    rgb16 = Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    files = {
        "broken/truncated.jpg": jpeg[: len(jpeg) // 2],
        "broken/truncated.png": png[: len(png) // 2],
        "broken/truncated.webp": webp[: len(webp) // 2],
        "broken/corrupt.png": bytes(corrupt_png),
        "broken/garbage.jpg": os.urandom(0) + bytes(range(256)) * 8,
        "broken/empty.png": b"",
        "broken/text-named.jpg": b"this is not an image\n",
        "broken/header-only.jpg": jpeg[:4],
        "poly/png-then-zip.png": png + b"PK\x03\x04" + b"\0" * 26 + b"payload",
        "poly/jpeg-then-html.jpg": jpeg + b"<html><script>alert(1)</script></html>",
        "poly/gif-js.gif": b"GIF89a=1;/*" + b"\0" * 20 + b"*/alert(1);",
        "poly/pdf-named.png": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
        "bomb/claims-10-gigapixels.png": png_header_only(100_000, 100_000),
        "bomb/zeros.png": encoded(Image.new("1", (12_000, 10_000)), "PNG"),  # 120 MP of zeros, ~15 kB
        "odd/one-by-one.png": encoded(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"),
        "odd/one-by-one.jpg": encoded(Image.new("L", (1, 1), 9), "JPEG"),
        "odd/wide-30000x1.png": encoded(Image.new("RGB", (30_000, 1), (0, 128, 0)), "PNG"),
        "odd/tall-1x30000.png": encoded(Image.new("L", (1, 30_000), 200), "PNG"),
        "odd/cmyk.jpg": encoded(picture(4, 32).convert("CMYK"), "JPEG"),
        "odd/16bit.png": encoded(rgb16, "PNG"),
        "odd/palette.png": encoded(picture(5, 32).convert("P"), "PNG"),
        "odd/palette-transparent.gif": encoded(picture(6, 32).convert("P"), "GIF", transparency=0),
        "odd/alpha.png": encoded(picture(8, 32).convert("RGBA"), "PNG"),
        "odd/la.png": encoded(picture(9, 32).convert("LA"), "PNG"),
        "odd/exif-rotated.jpg": exif_rotated_jpeg(),
        "odd/animated.gif": _animated_gif(),
        "odd/float.tiff": encoded(Image.fromarray(np.ones((4, 4), np.float32)), "TIFF"),
        "odd/unicode-名前 ünï.png": encoded(picture(10, 16), "PNG"),
        "odd/no-extension": encoded(picture(11, 16), "PNG"),
        "ok/plain.png": encoded(picture(12, 32), "PNG"),
        "ok/plain-copy.png": encoded(picture(12, 32), "PNG"),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    links = root / "links"
    links.mkdir()
    (root.parent / "outside.png").write_bytes(encoded(picture(13, 16), "PNG"))
    os.symlink(root.parent / "outside.png", links / "outside.png")
    os.symlink(root / "does-not-exist.png", links / "broken.png")
    os.symlink(root / "ok", links / "folder.png")
    os.symlink(root / "ok" / "plain.png", links / "inside.png")
    os.mkfifo(links / "fifo.png")
    rels = [*files, "links/outside.png", "links/broken.png", "links/folder.png", "links/inside.png",
            "links/fifo.png"]
    return [f"{root.name}/{rel}" for rel in sorted(rels, key=lambda r: r.split("/"))]  # the folder's walk order


def _animated_gif() -> bytes:
    frames = [picture(20 + i, 16).convert("P") for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def hostile_jsonl(path: Path) -> list[str]:
    """JSON Lines with bad encodings, a huge row, deep nesting, duplicate ids, odd values."""
    lines = [
        json.dumps({"id": "t1", "text": "a normal sentence"}).encode(),
        b'{"id": "t2", "text": "caf\xe9"}',  # Latin-1, not UTF-8
        json.dumps({"id": "t3", "text": "x" * 1_200_000}).encode(),  # over the 1 MB default cap
        b"[" * 100_000 + b"]" * 100_000,  # nesting bomb
        json.dumps({"id": "t1", "text": "same id again"}).encode(),
        b'{"id": "t5", "text": NaN}',
        b'{"id": "t6", "text": "\\ud800 lone surrogate"}',
        b"",
        b"   ",
        b'{"id": "t9", "text": "   "}',
        b'{"id": "t10", "text": 12345}',
        b'{"id": "t11", "text": "\\u0000nul inside"}',
        b'{"id": "t12"',
        json.dumps({"id": "t13", "text": "fine again", "label": {"nested": [1, 2]}}).encode(),
        json.dumps({"id": "../../../etc/passwd", "text": "an id that looks like a path"}).encode(),
        json.dumps({"id": "t15", "text": "emoji 🙂 and RTL \u202e text"}).encode(),
    ]
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    stem = path.name.split(".")[0]
    ids = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            given = json.loads(line).get("id") if line[:1] == b"{" else None
        except ValueError:
            given = None
        ids.append(given if isinstance(given, str) else f"{stem}:{n}")
    ids[ids.index("t1", 1)] = "t1~dup1"
    return ids


def hostile_csv(path: Path) -> list[str]:
    rows = [b"id,text,label", b"c1,plain,a", b"c2,\"quoted, with comma\",b", b"c3,caf\xe9,a", b"c4",
            b"c5,too,many,fields", b",no id,a", b"c7,\"never closed", b"c8,after the bad quote,a"]
    path.write_bytes(b"\n".join(rows) + b"\n")
    return ["c1", "c2", "c3", "h:5", "h:6", "h:7", "h:8", "c8"]


def hostile_tar(path: Path) -> list[str]:
    """A WebDataset shard with unsafe members between ordinary samples; returns sample keys."""
    good = encoded(picture(30, 16), "PNG")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("w0.png", good)
        add("w0.cls", b"1")
        add("../escaped.png", good)
        add("/abs/evil.png", good)
        add("sym.png", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add("hard.png", kind=tarfile.LNKTYPE, link="w0.png")
        add("dev.png", kind=tarfile.CHRTYPE)
        add("fifo.png", kind=tarfile.FIFOTYPE)
        add("a/../../up.png", good)
        add("w1.txt", b"a caption-only sample")
        add("w2.json", b'{"label": "x"}')
        add("w3.png", good)
        add("w3.png", good)
        add("w4.png", b"not really a png")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return ["w0", "../escaped", "/abs/evil", "sym", "hard", "dev", "fifo", "a/../../up", "w1", "w2", "w3", "w4"]


def truncated_tar(path: Path) -> list[str]:
    good = encoded(picture(31, 16), "PNG")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"cut{i}.png")
            info.size = len(good)
            tar.addfile(info, io.BytesIO(good))
    data = buf.getvalue()
    path.write_bytes(data[: 512 * 5 + 100])  # cut inside the third member
    return ["cut0", "cut1", f"{path.name}#unreadable-rest"]  # the cut member is in the rest


def empty_sources(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "header-only.csv").write_bytes(b"id,text\n")
    empty_tar = io.BytesIO()
    tarfile.open(fileobj=empty_tar, mode="w").close()
    (folder / "empty.tar").write_bytes(empty_tar.getvalue())
    return [folder / "empty.jsonl", folder / "header-only.csv", folder / "empty.tar"]
