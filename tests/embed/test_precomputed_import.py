"""The vectorised import of precomputed vectors: every row checked (finite, non-zero, one
dimension) with a reason, normalised like a float64 reference, across Parquet files and row
groups, without ingest's own check (a column ingested without --embedding-field)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.embed.precomputed import normalise_block
from curate.embed.stage import EmbedConfig, embed
from curate.embed.store import open_store
from curate.ingest import IngestConfig, ingest
from curate.workspace import Workspace


def reference(vectors):
    """Float64 normalisation, then fp16: what the import must store."""
    wide = np.asarray(vectors, dtype=np.float64)
    return (wide / np.linalg.norm(wide, axis=1, keepdims=True)).astype(np.float16)


def test_normalise_block_reasons_and_overflow():
    block = np.array([[3, 4, 0], [np.nan, 1, 0], [0, 0, 0], [1e30, 1e30, 0], [1e-30, 0, 0], [np.inf, 0, 0]],
                     dtype=np.float32)
    out, problems = normalise_block(block.copy())
    assert problems == {1: "invalid-embedding: contains NaN or Inf",
                        2: "invalid-embedding: all zeros (a zero vector has no direction)",
                        5: "invalid-embedding: contains NaN or Inf"}
    np.testing.assert_array_equal(out[[0, 3, 4]], reference(block[[0, 3, 4]]))  # overflow/underflow keep direction
    assert not out[[1, 2, 5]].any()


def test_parquet_column_import_over_files_and_row_groups(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    src.mkdir()
    expected, bad = {}, {}
    for f in range(2):
        vectors = rng.normal(size=(7, 5)).astype(np.float32)
        cells = [list(map(float, v)) for v in vectors]
        if f == 1:
            cells[2] = [float("nan")] + cells[2][1:]
            cells[4] = [0.0] * 5
            cells[5] = cells[5][:4]  # ragged
            cells[6] = None
            bad = {"f1-2": "NaN or Inf", "f1-4": "all zeros", "f1-5": "dimension 5", "f1-6": "missing"}
        ids = [f"f{f}-{i}" for i in range(7)]
        expected.update({i: v for i, v in zip(ids, vectors)})
        table = pa.table({"id": ids, "text": [f"t {i}" for i in ids], "emb": pa.array(cells, pa.list_(pa.float32()))})
        pq.write_table(table, src / f"part-{f}.parquet", row_group_size=3)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())  # no --embedding-field: the import must check every row itself
    result = embed(ws, EmbedConfig(model="precomputed:emb", workers=0, batch_size=2, shard_size=4), progress=False)
    status = {r["id"]: r for r in result.table.to_pylist()}
    assert len(status) == 14  # every id accounted for
    for ident, part in bad.items():
        assert not status[ident]["kept"] and status[ident]["reason"].startswith("invalid-embedding")
        assert part in status[ident]["reason"], (ident, status[ident]["reason"])
    store = open_store(ws, result.meta["slug"])
    rows = {r["id"]: r["manifest_row"] for r in pq.read_table(
        tmp_path / "ws" / "embeddings" / result.meta["slug"] / "ids.parquet").to_pylist()}
    good = [i for i in expected if i not in bad]
    assert all(status[i]["kept"] for i in good)
    store_rows = {ident: k for k, ident in enumerate(rows)}
    got = np.asarray(store.vectors)[[store_rows[i] for i in good]]
    np.testing.assert_array_equal(got, reference([expected[i] for i in good]))
    assert json.loads((tmp_path / "ws" / "embeddings" / result.meta["slug"] / "meta.json").read_text())[
        "valid"] == len(good)
