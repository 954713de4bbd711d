"""The review page's buttons write the overrides file ``curate override --from`` reads (run in node)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from curate.report.build import ReportConfig, build_report
from tests.report.test_report import Page, read, review_data
from tests.report.test_review import planted_review_workspace

NODE = shutil.which("node")


def _click(tmp_path, html: str, clicks: list) -> dict:
    page = Page(html)
    [script] = [s for s in page.scripts if not s.startswith("{")]
    files = {"script.js": script, "data.json": json.dumps(review_data(page)), "clicks.json": json.dumps(clicks)}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = subprocess.run([NODE, str(Path(__file__).with_name("review_dom.js"))] + [str(tmp_path / n) for n in files],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(NODE is None, reason="needs node to run the page's script")
def test_not_duplicates_and_keep_this_one_write_the_overrides_file(tmp_path):
    ws, table = planted_review_workspace(tmp_path, pairs=6)
    html = read(build_report(ws, ReportConfig(max_previews=0)))
    assert re.search(r'<a id="review-save" download="overrides.json"', html)
    groups = {g[0]: g for g in review_data(Page(html))["groups"]}
    members = {}
    for i, g in enumerate(table["group"]):
        members.setdefault(g, []).append((table["id"][i], table["kept"][i]))
    big, pair = max(members, key=lambda g: -1 if g is None else len(members[g])), 3

    got = _click(tmp_path, html, [[big, "not duplicates"], [pair, "keep this one"]])
    records = json.loads(got["file"])
    assert records["format"] == 1 and not got["hidden"] and got["label"] == "save overrides (10)"
    by_id = {r["id"]: r for r in records["overrides"]}
    listed = [m[0] for m in groups[big][3]]
    assert len(listed) == 8 and set(listed) <= {i for i, _ in members[big]}
    (kept_id,) = [i for i, k in members[pair] if k]
    (removed_id,) = [i for i, k in members[pair] if not k]
    want = {**{i: "keep" for i in listed}, removed_id: "keep", kept_id: "remove"}
    assert {i: r["action"] for i, r in by_id.items()} == want
    assert all(r["stage"] == "dedup" and r["note"] for r in records["overrides"])
    assert by_id[listed[0]]["note"] == f"not duplicates (group {big})"
