import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.dedup.exact import exact_decisions, exact_dedup
from curate.ingest import IngestConfig, ingest
from curate.workspace import Workspace
from tests.conftest import write


def manifest_slice(rows):
    ids, hashes, status = zip(*rows)
    return pa.table({"id": list(ids), "content_hash": list(hashes), "status": list(status)})


def test_hand_computed_groups_keepers_and_reasons():
    table = manifest_slice([
        ("a", "h1", "ok"), ("b", "h2", "ok"), ("c", "h1", "ok"), ("d", "h3", "quarantined"),
        ("e", "h2", "ok"), ("f", "h1", "ok"), ("g", "h3", "ok"), ("h", "h4", "ok"),
        ("i", None, "quarantined"),
    ])
    got = exact_decisions(table).to_pylist()
    expected = [
        # id, kept, reason, duplicate_of, group
        ("a", True, None, None, 0),
        ("b", True, None, None, 1),
        ("c", False, "exact-duplicate", "a", 0),
        ("d", False, "quarantined", None, None),
        ("e", False, "exact-duplicate", "b", 1),
        ("f", False, "exact-duplicate", "a", 0),
        ("g", True, None, None, None),  # its twin d is quarantined: no group
        ("h", True, None, None, None),
        ("i", False, "quarantined", None, None),
    ]
    assert [(r["id"], r["kept"], r["reason"], r["duplicate_of"], r["group"]) for r in got] == expected


def test_group_numbers_follow_the_keepers_manifest_order():
    table = manifest_slice([("x", "B", "ok"), ("y", "A", "ok"), ("z", "A", "ok"), ("w", "B", "ok")])
    got = exact_decisions(table).to_pylist()
    assert [r["group"] for r in got] == [0, 1, 1, 0]
    assert [r["duplicate_of"] for r in got] == [None, None, "y", "x"]


def test_empty_and_all_unique_manifests():
    assert exact_decisions(manifest_slice([("a", "1", "ok")])).column("kept").to_pylist() == [True]
    empty = pa.table({"id": pa.array([], pa.string()), "content_hash": pa.array([], pa.string()),
                      "status": pa.array([], pa.string())})
    assert exact_decisions(empty).num_rows == 0


def test_against_brute_force_on_random_hashes():
    import random

    rng = random.Random(3)
    rows = [(f"id{i}", f"h{rng.randrange(40)}", "ok" if rng.random() > 0.1 else "quarantined")
            for i in range(500)]
    got = exact_decisions(manifest_slice(rows)).to_pylist()
    first: dict[str, str] = {}
    for (sid, h, st), dec in zip(rows, got):
        if st != "ok":
            assert (dec["kept"], dec["reason"]) == (False, "quarantined")
        elif h in first:
            assert (dec["kept"], dec["duplicate_of"]) == (False, first[h])
        else:
            first[h] = sid
            assert dec["kept"] and dec["duplicate_of"] is None


def test_workspace_run_writes_one_row_per_manifest_id_and_is_reused(tmp_path):
    src = write(tmp_path / "t.jsonl",
                b'{"id": "a", "text": "same"}\n{"id": "b", "text": "other"}\n'
                b'{"id": "c", "text": "same"}\n{"id": "d", "text": ""}\n')
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    run = exact_dedup(ws)
    assert not run.reused
    assert run.path.path.startswith(str(tmp_path / "ws" / "decisions" / "dedup"))
    on_disk = pq.read_table(run.path.path)
    assert on_disk.column("id").to_pylist() == ws.read_manifest(["id"]).column("id").to_pylist()
    assert on_disk.column("reason").to_pylist() == [None, None, "exact-duplicate", "quarantined"]
    assert (tmp_path / "ws" / "decisions" / "dedup" / f"{run.run_id}.json").exists()
    again = exact_dedup(ws)
    assert again.reused and again.run_id == run.run_id and again.table.equals(on_disk)


def test_cli_out_follows_its_suffix_and_refuses_others(tmp_path, capsys):
    from curate.cli import main

    src = write(tmp_path / "t.jsonl", b'{"id": "a", "text": "same"}\n{"id": "b", "text": "same"}\n')
    ws = tmp_path / "ws"
    ingest(Workspace(str(ws)), [str(src)], IngestConfig())
    with pytest.raises(SystemExit) as exited:
        main(["dedup", "-w", str(ws), "--method", "exact", "--out", str(tmp_path / "table.txt"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1
    assert err[0] == f"error: --out {tmp_path / 'table.txt'}: unknown suffix '.txt' for the decision table; " \
                     "use .parquet or .csv"
    assert not (tmp_path / "table.txt").exists() and not (ws / "decisions" / "dedup").exists()
    main(["dedup", "-w", str(ws), "--method", "exact", "--out", str(tmp_path / "table.CSV"), "--no-progress"])
    assert (tmp_path / "table.CSV").read_text().splitlines()[0].startswith('"id","kept"')  # CSV text, not Parquet
    main(["dedup", "-w", str(ws), "--method", "exact", "--out", str(tmp_path / "table.parquet"), "--no-progress"])
    assert pq.read_table(tmp_path / "table.parquet").column("kept").to_pylist() == [True, False]
