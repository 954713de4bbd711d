import os

import pyarrow as pa
import pytest

from curate.io import atomic
from curate.io.fs import locate


class Boom(RuntimeError):
    pass


def test_write_then_read_back(tmp_path):
    loc = locate(str(tmp_path / "sub" / "x.json"))
    atomic.write_json(loc, {"a": 1})
    assert atomic.read_json(loc) == {"a": 1}
    assert os.listdir(tmp_path / "sub") == ["x.json"]


def test_failure_mid_write_leaves_no_file_and_no_temporary(tmp_path):
    loc = locate(str(tmp_path / "out.bin"))
    with pytest.raises(Boom), atomic.atomic_open(loc) as fh:
        fh.write(b"half of it")
        raise Boom
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_keeps_previous_version_intact(tmp_path):
    loc = locate(str(tmp_path / "out.bin"))
    atomic.write_bytes(loc, b"version 1")
    with pytest.raises(Boom), atomic.atomic_open(loc) as fh:
        fh.write(b"version 2, partial")
        raise Boom
    assert (tmp_path / "out.bin").read_bytes() == b"version 1"


def test_final_name_appears_only_after_close(tmp_path):
    loc = locate(str(tmp_path / "t.parquet"))
    with atomic.atomic_open(loc) as fh:
        fh.write(b"data")
        assert not (tmp_path / "t.parquet").exists()
        [tmp] = os.listdir(tmp_path)
        assert atomic.TMP_MARK in tmp
    assert (tmp_path / "t.parquet").read_bytes() == b"data"


def test_sweep_removes_only_leftover_temporaries(tmp_path):
    (tmp_path / f"{atomic.TMP_MARK}abc-part.parquet").write_bytes(b"partial")
    (tmp_path / "part.parquet").write_bytes(b"complete")
    assert atomic.sweep_temporaries(locate(str(tmp_path))) == 1
    assert os.listdir(tmp_path) == ["part.parquet"]


def test_parquet_on_fsspec_memory_filesystem():
    loc = locate("memory://atomic-test/t.parquet")
    table = pa.table({"x": [1, 2, 3]})
    atomic.write_parquet(loc, table)
    import pyarrow.parquet as pq

    with loc.fs.open(loc.path, "rb") as fh:
        assert pq.read_table(fh).equals(table)
    assert loc.fs.ls("/atomic-test", detail=False) == ["/atomic-test/t.parquet"]
