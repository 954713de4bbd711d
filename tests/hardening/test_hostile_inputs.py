"""Hostile inputs: every file, member and row becomes exactly one manifest row with the expected
reason, the whole CLI flow (ingest -> embed perceptual -> dedup -> export) runs without a
traceback, every input id is accounted for in the export, and nothing is written outside
the workspace."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.embed.stage import EmbedConfig, embed
from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.manifest import reason_code
from curate.readers.base import Fields, ReadOptions
from curate.workspace import Workspace
from tests.hardening import corpus
from tests.hardening.faults import cli

# what each hostile input must become (None: accepted)
EXPECTED = {
    "hostile/broken/truncated.jpg": "truncated-image", "hostile/broken/truncated.png": "truncated-image",
    "hostile/broken/truncated.webp": "corrupt-image", "hostile/broken/corrupt.png": "corrupt-image",
    "hostile/broken/garbage.jpg": "not-an-image", "hostile/broken/empty.png": "empty-file",
    "hostile/broken/text-named.jpg": "not-an-image", "hostile/broken/header-only.jpg": "not-an-image",
    "hostile/poly/png-then-zip.png": None, "hostile/poly/jpeg-then-html.jpg": None,  # decodable: kept as is
    "hostile/poly/gif-js.gif": "not-an-image", "hostile/poly/pdf-named.png": "not-an-image",
    "hostile/bomb/claims-10-gigapixels.png": "decompression-bomb", "hostile/bomb/zeros.png": "decompression-bomb",
    "hostile/odd/one-by-one.png": None, "hostile/odd/one-by-one.jpg": None, "hostile/odd/wide-30000x1.png": None,
    "hostile/odd/tall-1x30000.png": None, "hostile/odd/cmyk.jpg": None, "hostile/odd/16bit.png": "unsupported-mode",
    "hostile/odd/palette.png": None, "hostile/odd/palette-transparent.gif": None, "hostile/odd/alpha.png": None,
    "hostile/odd/la.png": None, "hostile/odd/exif-rotated.jpg": None, "hostile/odd/animated.gif": None,
    "hostile/odd/float.tiff": "unsupported-mode", "hostile/odd/unicode-名前 ünï.png": None,
    "hostile/odd/no-extension": "unsupported-file-type", "hostile/ok/plain.png": None,
    "hostile/ok/plain-copy.png": None, "hostile/links/outside.png": "symlink-outside-root",
    "hostile/links/broken.png": "broken-symlink", "hostile/links/folder.png": "unsafe-path",
    "hostile/links/inside.png": None, "hostile/links/fifo.png": "unsafe-path",
    "t1": None, "rows:2": "undecodable-text", "t3": "text-too-long", "rows:4": "invalid-record",
    "t1~dup1": "duplicate-id", "t5": "invalid-record", "t6": "undecodable-text", "t9": "empty-text",
    "t10": "invalid-record", "t11": None, "rows:13": "invalid-record", "t13": None,
    "../../../etc/passwd": None, "t15": None,
    "c1": None, "c2": None, "c3": "undecodable-text", "h:5": "invalid-record", "h:6": "invalid-record",
    "h:7": None, "h:8": "invalid-record", "c8": None,
    "w0": None, "../escaped": "unsafe-path", "/abs/evil": "unsafe-path", "sym": "unsafe-path",
    "hard": "unsafe-path", "dev": "unsafe-path", "fifo": "unsafe-path", "a/../../up": "unsafe-path",
    "w1": None, "w2": "no-payload", "w3": "invalid-record", "w4": "not-an-image",
    "cut0": None, "cut1": "corrupt-shard", "cut.tar#unreadable-rest": "corrupt-shard",
}


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    ids = corpus.hostile_images(root / "hostile")
    ids += corpus.hostile_jsonl(root / "rows.json.gz")
    ids += corpus.hostile_csv(root / "h.csv")
    ids += corpus.hostile_tar(root / "shard" / "evil.tar")
    ids += corpus.truncated_tar(root / "cut.tar")
    empties = corpus.empty_sources(root / "empty")
    sources = [str(root / "hostile"), str(root / "rows.json.gz"), str(root / "h.csv"),
               str(root / "shard" / "evil.tar"), str(root / "cut.tar"), *map(str, empties)]
    return tmp_path, sources, ids


def tree(root: Path, skip: Path) -> dict[str, tuple]:
    """Every path under ``root`` outside ``skip``: files with size and mtime, folders by name."""
    out = {}
    for p in root.rglob("*"):
        if skip in p.parents or p == skip or p.name.startswith(".run-"):
            continue
        st = p.lstat()
        out[str(p)] = ("dir",) if p.is_dir() and not p.is_symlink() else (st.st_size, st.st_mtime_ns)
    return out


def test_hostile_corpus_rows_and_reasons(hostile):
    tmp_path, sources, ids = hostile
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, sources, IngestConfig(read=ReadOptions(workers=2)))
    rows = ws.read_manifest().to_pylist()
    assert [r["id"] for r in rows] == ids  # one row per input, in ingest order
    assert sorted(EXPECTED) == sorted(ids)
    got = {r["id"]: reason_code(r["reason"]) for r in rows}
    assert got == EXPECTED
    for r in rows:
        assert (r["status"] == "ok") == (r["reason"] is None)
        assert r["reason"] is None or "\n" not in r["reason"]


def test_hostile_corpus_through_the_whole_cli_flow(hostile):
    tmp_path, sources, ids = hostile
    before = tree(tmp_path.parent, tmp_path / "ws")
    ws = str(tmp_path / "ws")
    for args in (["ingest", *sources, "-w", ws, "--no-progress"],
                 ["embed", "-w", ws, "--model", "perceptual", "--workers", "0", "--no-progress"],
                 ["dedup", "-w", ws, "--method", "semantic"],
                 ["export", "-w", ws, "--name", "h", "--format", "webdataset", "--no-progress"]):
        result = cli(args, tmp_path)
        assert result.returncode == 0, (args[0], result.stderr[-3000:])
        assert "Traceback" not in result.stderr
    after = tree(tmp_path.parent, tmp_path / "ws")
    assert after == before  # nothing written (or touched) outside the workspace
    root = tmp_path.parent
    assert not list(root.rglob("escaped.png")) and not list(root.rglob("up.png"))
    assert not Path("/abs/evil.png").exists()

    status = pq.read_table(Path(ws) / "embeddings" / "perceptual-v2" / "status.parquet").to_pylist()
    assert [s["id"] for s in status] == ids
    by_id = {s["id"]: s for s in status}
    ok_images = [i for i, c in EXPECTED.items() if c is None and by_id[i]["reason"] != "unsupported-kind: "
                 "this model does not embed text samples"]
    assert all(by_id[i]["embedded"] for i in ok_images), [by_id[i] for i in ok_images if not by_id[i]["embedded"]]

    latest = json.loads((Path(ws) / "exports" / "h" / "latest.json").read_text())
    folder = Path(latest["path"])
    samples = pq.read_table(folder / "samples.parquet").to_pylist()
    assert [s["id"] for s in samples] == ids  # every input id accounted for
    exported = {s["id"] for s in samples if s["exported"]}
    assert exported and exported <= {i for i, c in EXPECTED.items() if c is None}
    assert "hostile/ok/plain-copy.png" not in exported  # exact copy of plain.png
    lineage = json.loads((folder / "lineage.json").read_text())
    assert lineage["counts"]["accounted"] is True
    names = []
    for shard in folder.glob("*.tar"):
        with tarfile.open(shard) as tar:
            names += tar.getnames()
    assert names and not [n for n in names if n.startswith("/") or ".." in n.split("/")]


def precomputed_source(path: Path) -> list:
    vectors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [float("nan"), 0.0, 1.0], [float("inf"), 1.0, 0.0],
               None, [], [1.0, 1.0], [0.0, 0.0, 1.0], [0.99, 0.01, 0.0], [0.0, 0.0, 0.0]]
    ids = ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e0", "e8", "e9"]
    pq.write_table(pa.table({"id": ids, "text": [f"text {i}" for i in range(len(ids))],
                             "emb": pa.array(vectors, pa.list_(pa.float32()))}), path)
    return vectors


def test_nan_inf_wrong_dimension_and_duplicate_precomputed_embeddings(tmp_path):
    precomputed_source(tmp_path / "emb.parquet")
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "emb.parquet")],
           IngestConfig(read=ReadOptions(fields=Fields(embedding="emb"), workers=1)))
    rows = ws.read_manifest(["id", "reason"]).to_pylist()
    assert [(r["id"], reason_code(r["reason"])) for r in rows] == [
        ("e0", None), ("e1", None), ("e2", "invalid-embedding"), ("e3", "invalid-embedding"),
        ("e4", "invalid-embedding"), ("e5", "invalid-embedding"), ("e6", "invalid-embedding"),
        ("e0~dup1", "duplicate-id"), ("e8", None), ("e9", "invalid-embedding")]
    assert rows[-1]["reason"] == "invalid-embedding: all zeros (a zero vector has no direction)"
    result = embed(ws, EmbedConfig(model="precomputed:emb", workers=0), progress=False)
    assert (result.meta["count"], result.meta["embedded"], result.meta["failed"]) == (3, 3, 0)
    vectors = np.load(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "vectors.npy")
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=1e-3)


def test_npy_embeddings_of_the_wrong_shape_or_with_nan_rows(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(4)))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    np.save(tmp_path / "short.npy", np.ones((3, 4), np.float32))
    with pytest.raises(CurateError, match=r"has shape \(3, 4\); expected \(4, dim\)"):
        embed(ws, EmbedConfig(model=f"precomputed:{tmp_path / 'short.npy'}", workers=0), progress=False)
    bad = np.eye(4, dtype=np.float32)
    bad[1, 2] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    result = embed(ws, EmbedConfig(model=f"precomputed:{tmp_path / 'bad.npy'}", workers=0), progress=False)
    status = pq.read_table(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "status.parquet").to_pylist()
    assert [s["embedded"] for s in status] == [True, False, True, True]
    assert status[1]["reason"] == "invalid-embedding: contains NaN or Inf"
    vectors = np.load(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "vectors.npy")
    np.testing.assert_array_equal(vectors[[0, 2, 3]], np.eye(4, dtype=np.float16)[[0, 2, 3]])


def test_zero_or_overflowing_npy_vectors_are_not_stored_as_zeros(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(3)))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    array = np.array([[1, 0, 0], [0, 0, 0], [1e30, 1e30, 0]], dtype=np.float32)
    np.save(tmp_path / "v.npy", array)
    result = embed(ws, EmbedConfig(model=f"precomputed:{tmp_path / 'v.npy'}", workers=0), progress=False)
    status = pq.read_table(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "status.parquet").to_pylist()
    vectors = np.load(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "vectors.npy").astype(np.float32)
    assert not status[1]["embedded"]  # no direction: embed-failed
    np.testing.assert_allclose(vectors[2], [0.7071, 0.7071, 0], atol=1e-3)  # the direction of [1e30, 1e30, 0]
