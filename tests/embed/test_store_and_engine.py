"""Embedding stage on precomputed vectors (hand-computed expectations), payload fetching,
the store layout, resume and misuse."""

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.embed.payloads import PayloadFetcher
from curate.embed.stage import EmbedConfig, embed
from curate.embed.store import open_store
from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.workspace import Workspace
from tests.conftest import encode_image, write

INGEST = IngestConfig()


def text_workspace(tmp_path, texts):
    lines = b"".join(json.dumps({"id": f"t{i}", "text": t}).encode() + b"\n" for i, t in enumerate(texts))
    src = write(tmp_path / "t.jsonl", lines)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], INGEST)
    return ws


def config(model, **kw):
    return EmbedConfig(model=model, workers=0, **kw)


def test_precomputed_npy_is_normalised_and_aligned_with_ok_rows(tmp_path):
    ws = text_workspace(tmp_path, ["a", "", "c", "d"])  # t1 is quarantined (empty text)
    vectors = np.array([[3, 4, 0], [9, 9, 9], [0, 0, 2], [1, 2, 2]], dtype=np.float32)
    np.save(tmp_path / "v.npy", vectors)
    result = embed(ws, config(f"precomputed:{tmp_path / 'v.npy'}"))
    assert (result.meta["count"], result.meta["embedded"], result.meta["failed"]) == (3, 3, 0)
    store = open_store(ws, result.meta["slug"])
    assert store.ids == ["t0", "t2", "t3"]
    assert store.manifest_rows.tolist() == [0, 2, 3]
    expected = np.array([[0.6, 0.8, 0], [0, 0, 1], [1 / 3, 2 / 3, 2 / 3]])
    np.testing.assert_allclose(store.vectors.astype(np.float64), expected, atol=1e-3)
    assert store.vectors.dtype == np.float16 and isinstance(store.vectors, np.memmap)
    status = pq.read_table(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "status.parquet").to_pylist()
    assert [(s["id"], s["embedded"], s["row"], s["reason"]) for s in status] == [
        ("t0", True, 0, None), ("t1", False, None, "quarantined"), ("t2", True, 1, None), ("t3", True, 2, None)]


def test_bad_vectors_fail_per_sample_with_reason(tmp_path):
    ws = text_workspace(tmp_path, ["a", "b", "c"])
    np.save(tmp_path / "v.npy", np.array([[1, 0], [np.nan, 1], [0, 1]], dtype=np.float32))
    result = embed(ws, config(f"precomputed:{tmp_path / 'v.npy'}"))
    assert (result.meta["embedded"], result.meta["failed"]) == (2, 1)
    store = open_store(ws, result.meta["slug"])
    assert store.valid.tolist() == [True, False, True]
    assert not store.vectors[1].any()
    status = pq.read_table(tmp_path / "ws" / "embeddings" / result.meta["slug"] / "status.parquet")
    assert status.column("reason").to_pylist()[1] == "invalid-embedding: contains NaN or Inf"


def test_wrong_row_count_is_a_clear_error(tmp_path):
    ws = text_workspace(tmp_path, ["a", "b"])
    np.save(tmp_path / "v.npy", np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(CurateError, match=r"shape \(3, 4\); expected \(2, dim\)"):
        embed(ws, config(f"precomputed:{tmp_path / 'v.npy'}"))


def test_unknown_model_and_missing_workspace(tmp_path):
    ws = text_workspace(tmp_path, ["a"])
    with pytest.raises(CurateError, match="unknown model"):
        embed(ws, config("nope"))
    with pytest.raises(CurateError, match="no manifest|does not exist"):
        embed(Workspace(str(tmp_path / "empty")), config("perceptual"))


def test_precomputed_parquet_column(tmp_path):
    table = pa.table({"id": ["x", "y", "z"], "text": ["a", "b", "c"],
                      "emb": [[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]})
    pq.write_table(table, tmp_path / "p.parquet", row_group_size=2)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "p.parquet")], INGEST)
    result = embed(ws, config("precomputed:emb"))
    store = open_store(ws, result.meta["slug"])
    np.testing.assert_allclose(store.vectors.astype(float), [[1, 0], [0, 1], [0.6, 0.8]], atol=1e-3)


def test_rerun_reuses_finished_store_and_resumes_unfinished_shards(tmp_path):
    texts = [f"text {i}" for i in range(10)]
    ws = text_workspace(tmp_path, texts)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(10, 8)).astype(np.float32))
    cfg = config(f"precomputed:{tmp_path / 'v.npy'}", batch_size=2, shard_size=4)
    first = embed(ws, cfg)
    assert (first.meta["shards_done"], first.meta["shards_skipped"]) == (3, 0)
    folder = tmp_path / "ws" / "embeddings" / first.meta["slug"]
    reference = (folder / "vectors.npy").read_bytes()
    again = embed(ws, cfg)
    assert again.reused and again.run_id == first.run_id and again.meta["count"] == 10
    # simulate a crash after shard 0: drop the store's meta and the later shard markers
    (folder / "meta.json").unlink()
    state = tmp_path / "ws" / "state" / "embed" / first.meta["slug"]
    (state / "shard-00001.json").unlink()
    (state / "shard-00002.json").unlink()
    resumed = embed(ws, cfg)
    assert (resumed.meta["shards_done"], resumed.meta["shards_skipped"]) == (2, 1)
    assert (folder / "vectors.npy").read_bytes() == reference


def test_payload_fetcher_reads_tar_members_by_recorded_byte_range(tmp_path):
    images = [encode_image((8 + i, 8), fmt="PNG", seed=i) for i in range(3)]
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for i, data in enumerate(images):
            for name, blob in ((f"k{i}.png", data), (f"k{i}.cls", str(i).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "s.tar")], INGEST)
    fetcher = PayloadFetcher()
    rows = ws.read_manifest().to_pylist()
    assert [fetcher.fetch(r) for r in rows] == images
    assert [r["label"] for r in rows] == ["0", "1", "2"]


def test_nothing_to_embed_is_an_error_naming_why_before_any_model_loads(tmp_path, capsys):
    from curate.cli import main

    src = write(tmp_path / "e.jsonl", '{"id": "a", "text": "\u200b\u200b"}\n{"id": "b", "text": " \u2060 "}\n'
                                      '{"id": "c", "text": 7}\n'.encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    with pytest.raises(CurateError, match=r"^no items to embed: all 3 items are quarantined \(empty-text 2, "
                                          r"invalid-record 1; e\.g\. empty-text: no visible characters"):
        # a model file that does not exist: the check comes before anything is loaded
        embed(ws, EmbedConfig(model=f"precomputed:{tmp_path / 'missing.npy'}", workers=0), progress=False)
    assert not (tmp_path / "ws" / "embeddings").exists()
    with pytest.raises(SystemExit) as exited:
        main(["embed", "-w", ws.root.path, "--model", "minilm", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and err[0].startswith("error: no items to embed: all 3 items")
    empty = Workspace(str(tmp_path / "empty"))
    ingest(empty, [str(write(tmp_path / "none.jsonl", b""))], IngestConfig())
    with pytest.raises(CurateError, match="no items to embed: the manifest has no samples"):
        embed(empty, EmbedConfig(model="perceptual", workers=0), progress=False)
