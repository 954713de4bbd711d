"""The report's "selected" count is the select run's own picks (no select-after-prune chaining)."""

from __future__ import annotations

import numpy as np

from curate.select.stage import select, select_config
from tests.conftest import vector_workspace


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)



# --- s. the report's "selected" is the select run's own picks; no select-after-prune chaining ---------

def _stage_cells(html: str) -> dict[str, list[str]]:
    import re
    from html import unescape

    rows = re.findall(r'<tr data-stage="(\w+)">(.*?)</tr>', html)
    return {stage: [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for stage, row in rows}


def test_report_selected_count_is_the_select_runs_picks_not_chained_after_prune(tmp_path):
    import re
    from pathlib import Path

    from click.testing import CliRunner

    from curate.cli import cli
    from curate.decisions import list_runs
    from curate.report.build import ReportConfig, build_report

    ws = vector_workspace(tmp_path, "ws", _unit(np.random.default_rng(0).normal(size=(20, 4))))
    w = ws.root.path
    runner = CliRunner()
    for args in (["dedup", "-w", w, "--no-progress"], ["prune", "-w", w, "--count", "3", "--no-progress"],
                 ["select", "-w", w, "--strategy", "random", "-n", "5", "-o", str(tmp_path / "batch.csv")]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    meta = list_runs(ws, "select")[-1]
    assert meta["picked"] == 5 and set(meta["upstream_runs"]) == {"dedup"}  # select ignores prune by default
    html = Path(build_report(ws, ReportConfig()).path).read_text(encoding="utf-8")
    cards = dict((k, v) for v, k in re.findall(r"<b>([\d,]+)</b><span>([^<]+)</span>", html))
    assert cards["selected"] == "5"  # was 1: picks that prune also kept (select chained after prune)
    assert cards["kept after dedup + prune"] == "3"
    cells = _stage_cells(html)
    # stage, run, method, input, kept, removed, left after stage
    assert cells["prune"][3] == "ingest ok → dedup" and cells["prune"][4] == "3" and cells["prune"][6] == "3"
    assert cells["select"][3] == "ingest ok → dedup" and cells["select"][4] == "5" and cells["select"][6] == "5"

    # a select run that did use prune as upstream is shown after it
    result = select(ws, select_config(budget=2, strategy="random", upstream=("dedup", "prune"), seed=1))
    assert set(list_runs(ws, "select")[-1]["upstream_runs"]) == {"dedup", "prune"}
    html = Path(build_report(ws, ReportConfig(run_ids={"select": result.run.run_id})).path).read_text("utf-8")
    cells = _stage_cells(html)
    assert cells["select"][3] == "ingest ok → dedup → prune" and cells["select"][6] == "2"
    assert dict((k, v) for v, k in re.findall(r"<b>([\d,]+)</b><span>([^<]+)</span>", html))["selected"] == "2"
