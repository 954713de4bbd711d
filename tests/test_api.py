"""The Python API: the README's "Python API" block runs as written; API, CLI and pipeline agree."""

import re
from pathlib import Path

import pytest

import curate
from curate.errors import CurateError

REPO = Path(__file__).resolve().parents[1]


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_block_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_block(), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"semantic-[0-9a-f]{12} \{'kept': 1797, 'exact-duplicate': 30", out[0])
    assert out[1].endswith(" 1438") and "/ws-api/exports/digits/" in out[1]
    assert out[2] == "80 removed; 1877 samples"  # 30 exact + 45 near copies + 5 corrupt


def test_api_reuses_runs_and_reads_decisions_as_arrow(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "one"}\n{"id": "c", "text": ""}\n')
    ws = curate.open(str(tmp_path / "ws"))
    assert ws.ingest([str(src)]).meta["samples"] == 3
    first = ws.dedup(method="exact")
    again = ws.dedup(method="exact")
    assert again.reused and again.run_id == first.run_id and not first.reused
    table = ws.decisions("dedup")
    assert table.column("reason").to_pylist() == [None, "exact-duplicate", "quarantined"]
    assert [r["run_id"] for r in ws.runs("dedup")] == [first.run_id]
    with pytest.raises(CurateError, match=r"\[dedup\]: method = 'exact' does not take threshold \(it takes keep\)"):
        ws.dedup(method="exact", threshold=0.9)
    with pytest.raises(CurateError, match="unknown dedup method 'fuzzzy'"):
        ws.dedup(method="fuzzzy")


def test_import_curate_stays_light():
    import subprocess
    import sys

    code = "import curate, sys; assert 'torch' not in sys.modules and callable(curate.open)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_dir_lists_the_public_api_before_first_use():
    import subprocess
    import sys

    code = "import curate; print(' '.join(dir(curate))); print(' '.join(curate.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    listed, public = out[0].split(), out[1].split()
    assert {"open", "CurateError", "__version__"} <= set(listed) and set(public) <= set(listed)
    assert callable(curate.open) and issubclass(curate.CurateError, Exception)


def test_report_returns_the_path_of_the_written_file(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    ws = curate.open(str(tmp_path / "ws"))
    ws.ingest([str(src)])
    path = ws.report()
    assert isinstance(path, str) and Path(path).is_file() and Path(path).name == "report.html"
    out = ws.report(out=str(tmp_path / "r" / "mine.html"))
    assert out == str(tmp_path / "r" / "mine.html") and Path(out).read_text().startswith("<!")


def test_dedup_docstring_names_every_method_the_cli_offers():
    from curate.api import Curation
    from curate.cli.dedup import command

    choices = next(p for p in command.params if p.name == "method").type.choices
    assert set(choices) == {"semantic", "exact", "knn", "fuzzy", "near"}  # what `curate dedup --help` lists
    for method in choices:
        assert f"``{method}``" in Curation.dedup.__doc__
