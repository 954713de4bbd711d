"""``curate prune`` through the CLI entry point (in process): summary, --out copy, user errors."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from tests.prune.test_prune import angle, workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    labels = ["cat", "dog"] * 5
    return workspace(tmp_path_factory.mktemp("cli"), np.array([angle(a) for a in range(0, 360, 36)]), labels=labels)


def test_fraction_and_count_print_a_summary_and_write_the_copy(ws, capsys, tmp_path):
    root = ws.root.path
    code, out, err = run_cli(capsys, "prune", "-w", root, "--fraction", "0.3", "--out", str(tmp_path / "p.csv"))
    assert code == 0, err
    assert out.startswith("prune (kcenter): 10 samples, 10 candidates + 0 labeled -> kept 3 (target 3)")
    assert "removed: pruned 7" in out and "cat 5 -> " in out and "dog 5 -> " in out
    assert "written in" in out and "/decisions/prune/kcenter-" in out
    assert (tmp_path / "p.csv").read_text().splitlines()[0].startswith('"id","kept","reason","score","rank"')
    code, out, err = run_cli(capsys, "prune", "-w", root, "--count", "4", "--balance-by", "label",
                         "--strategy", "prototypes", "--clusters", "2", "--out", str(tmp_path / "p.parquet"))
    assert code == 0, err
    assert "kept 4 (target 4)" in out and "cat 5 -> 2, dog 5 -> 2" in out and "clusters 2" in out
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 10
    code, out, _ = run_cli(capsys, "prune", "-w", root, "--count", "4", "--balance-by", "label",
                       "--strategy", "prototypes", "--clusters", "2")
    assert code == 0 and "unchanged, reused" in out


def test_short_class_warning_is_printed(ws, capsys):
    code, out, err = run_cli(capsys, "prune", "-w", ws.root.path, "--count", "8",
                             "--target-distribution", "cat=3,dog=1")
    assert code == 0, err
    assert "warning  class 'cat' has 5 items, fewer than its quota of 6" in out
    assert "cat 5 -> 5, dog 5 -> 3" in out


@pytest.mark.parametrize("args,message", [
    (["--fraction", "0.5", "--count", "3"], "give exactly one of --fraction and --count"),
    (["--fraction", "1.5"], "--fraction must be in (0, 1]"),
    (["--count", "2", "--balance-by", "colour"], "unknown label column 'colour'"),
    ([], "give exactly one of --fraction and --count"),
])
def test_bad_input_is_one_line_and_exit_2(ws, capsys, args, message):
    code, out, err = run_cli(capsys, "prune", "-w", ws.root.path, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in err


def test_bad_option_value_is_a_usage_error(ws, capsys):
    code, _, err = run_cli(capsys, "prune", "-w", ws.root.path, "--fraction", "0.5", "--strategy", "random")
    assert code == 2 and "Invalid value" in err


@pytest.mark.parametrize("name", ["p.txt", "p.json", "p"])
def test_out_with_an_unknown_suffix_is_refused_before_any_work(ws, capsys, tmp_path, name):
    folder = ws.decisions("prune")
    runs = sorted(folder.fs.ls(folder.path)) if folder.exists() else []
    code, _, err = run_cli(capsys, "prune", "-w", ws.root.path, "--fraction", "0.7", "--out", str(tmp_path / name))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: --out {tmp_path / name}: unknown suffix")
    assert "use .parquet or .csv" in lines[0]
    assert not (tmp_path / name).exists()
    assert (sorted(folder.fs.ls(folder.path)) if folder.exists() else []) == runs  # no run was made
