"""`select --queries` files that cannot be used: one-line errors, not tracebacks."""

from __future__ import annotations

import numpy as np
import pytest

from curate.cli import main
from curate.errors import CurateError
from curate.select.stage import select, select_config
from tests.conftest import vector_workspace


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)



# --- i. `curate select --strategy similar --queries EMPTY_FILE` ---------------------------------

@pytest.mark.parametrize("name,content", [("q.txt", b""), ("blank.txt", b"\n   \n\t\n"), ("q.csv", b""),
                                          ("q.parquet", b""), ("ids.csv", b"id\n")])
def test_select_similar_empty_queries_file_is_one_line_error(tmp_path, capsys, name, content):
    ws = vector_workspace(tmp_path, "ws", _unit(np.random.default_rng(0).normal(size=(8, 4))))
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CurateError, match=rf"--queries {path}") as info:
        select(ws, select_config(budget=2, strategy="similar", queries=str(path)))
    assert "\n" not in str(info.value)
    with pytest.raises(SystemExit) as code:
        main(["select", "-w", ws.root.uri, "--strategy", "similar", "--queries", str(path), "--budget", "2",
              "-o", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.startswith("error: --queries") and str(path) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_select_similar_unreadable_queries_file_is_one_line_error(tmp_path, monkeypatch):
    ws = vector_workspace(tmp_path, "ws", _unit(np.random.default_rng(0).normal(size=(8, 4))))
    path = tmp_path / "q.txt"
    path.write_text("ws0\n")

    def denied(p, *args, **kwargs):
        raise PermissionError(13, "Permission denied", p)

    monkeypatch.setattr("curate.select.idlist.read_ids", denied)
    with pytest.raises(CurateError, match=r"q\.txt: cannot read it \(.*Permission denied"):
        select(ws, select_config(budget=2, strategy="similar", queries=str(path)))
