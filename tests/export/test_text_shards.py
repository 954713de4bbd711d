"""Text Parquet shards written column-wise are the same bytes as row by row (labels, nulls,
several row groups, an empty shard)."""

import pyarrow as pa

from curate.embed.payloads import PayloadFetcher
from curate.export.shards import write_parquet, write_text_parquet
from curate.io.fs import locate
from curate.manifest import SCHEMA


def test_column_wise_text_shard_equals_row_wise(tmp_path):
    rows = [dict(id=f"t{i}", source="x.jsonl", source_kind="jsonl", kind="text", text=f"hello {i} é",
                 label=["a", "b", None][i % 3], split=None if i % 2 else "train", content_hash=f"h{i}", status="ok")
            for i in range(600)]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    labels = ["a", "b"]
    for name, part in (("full", table), ("empty", table.slice(0, 0))):
        by_row = write_parquet(locate(str(tmp_path / f"{name}-rows.parquet")), "all", part.to_pylist(),
                               PayloadFetcher(), {"a": 0, "b": 1}, "text", labels)
        by_column = write_text_parquet(locate(str(tmp_path / f"{name}-cols.parquet")), "all", part, labels)
        assert (by_row.samples, by_row.bytes, by_row.sha256) == (by_column.samples, by_column.bytes,
                                                                   by_column.sha256), name
    assert by_row.samples == 0
