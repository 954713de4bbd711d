"""The duplicate-group review of the report: every group of the decision table is in the page,
with its reason, method and score band, and the page stays bounded at thousands of groups."""

import json
from collections import defaultdict
from dataclasses import dataclass
from html import escape as html_escape

import numpy as np
import pyarrow as pa
import pytest

from curate.decisions import latest_run
from curate.ingest import IngestConfig, ingest
from curate.report.build import ReportConfig, build_report
from curate.runner import Inputs, Output, Stage, run_stage
from curate.workspace import Workspace
from tests.conftest import write
from tests.report.test_report import Page, read, review_data

SIGNALS = ("minhash", "semantic", "phash", "minhash,semantic")  # a pair two signals proposed
BIG = 12  # members of the one big group


@dataclass(frozen=True)
class PlantedDedupConfig:
    pass


class PlantedDedup(Stage):
    """A near-method dedup run whose table the test wrote by hand (recorded through the runner)."""

    name = "dedup"
    config_type = PlantedDedupConfig

    def __init__(self, table):
        self.table = table

    def resolve(self, ws, config):
        return Inputs({"manifest": ws.manifest_fingerprint()})

    def compute(self, ctx):
        return Output(self.table, {"method": "near"})


def planted_review_workspace(tmp_path, pairs: int = 2400):
    """``pairs`` two-item groups (even row kept, odd row removed: every 5th an exact copy, the others
    near copies found by minhash / semantic / phash / both minhash and semantic in turn, scores
    spread over [0.8, 1)), one group of ``BIG`` (row 2 * pairs kept, the rest near copies with
    scores 0.80, 0.81, ...) and 100 loners.
    Returns the workspace and the hand-made table as a dict of columns."""
    n = 2 * pairs + BIG + 100
    rows = [{"id": f"t{i:05d}", "text": f"sample {i} " + "word " * (i % 7), "label": "ab"[i % 2]} for i in range(n)]
    src = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], IngestConfig())
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    rng = np.random.default_rng(1)
    kept, reason, dup_of, group, score, signal = [], [], [], [], [], []
    for i in range(n):
        g, k = (i // 2, i % 2 == 0) if i < 2 * pairs else ((pairs, i == 2 * pairs) if i < 2 * pairs + BIG
                                                            else (None, True))
        kept.append(k)
        group.append(g)
        if k:
            reason.append(None), dup_of.append(None), score.append(None), signal.append(None)
        elif i < 2 * pairs:
            exact = g % 5 == 0
            reason.append("exact-duplicate" if exact else "near-duplicate")
            dup_of.append(ids[i - 1])
            score.append(1.0 if exact else float(rng.uniform(0.8, 0.999)))
            signal.append("exact" if exact else SIGNALS[g % 4])
        else:
            reason.append("near-duplicate"), dup_of.append(ids[2 * pairs])
            score.append(0.80 + 0.01 * (i - 2 * pairs - 1)), signal.append(SIGNALS[i % 4])
    table = {"id": ids, "kept": kept, "reason": reason, "duplicate_of": dup_of, "group": group,
             "score": score, "signal": signal}
    arrow = pa.table({"id": pa.array(ids), "kept": pa.array(kept), "reason": pa.array(reason, pa.string()),
                      "duplicate_of": pa.array(dup_of, pa.string()), "group": pa.array(group, pa.int64()),
                      "score": pa.array(score, pa.float32()), "signal": pa.array(signal, pa.string())})
    run_stage(ws, PlantedDedup(arrow), PlantedDedupConfig(), progress=False)
    return ws, table


def band(score):
    """The report's score bands, written out by hand."""
    if score is None:
        return "no score"
    score = float(np.float32(score))
    for label, lo in (("\u2265 0.99", 0.99), ("0.95\u20130.99", 0.95), ("0.90\u20130.95", 0.90),
                      ("0.85\u20130.90", 0.85)):
        if score >= lo:
            return label
    return "< 0.85"


def expected_groups(table):
    """{group: (kept id, {ids}, {(reason, signal, band) of its removed members})} from the table."""
    members = defaultdict(list)
    for i, g in enumerate(table["group"]):
        if g is not None:
            members[g].append(i)
    out = {}
    for g, rows in members.items():
        keeper = [table["id"][r] for r in rows if table["kept"][r]]
        facets = {(table["reason"][r], signal, band(table["score"][r])) for r in rows if not table["kept"][r]
                  for signal in table["signal"][r].split(",")}
        out[g] = (keeper[0], {table["id"][r] for r in rows}, facets)
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    ws, table = planted_review_workspace(tmp)
    dest = build_report(ws, ReportConfig(max_previews=50))
    return ws, table, dest


def test_every_group_of_the_decision_table_is_in_the_page(planted):
    ws, table, dest = planted
    data = review_data(Page(read(dest)))
    expected = expected_groups(table)
    assert data["total"] == len(expected) == 2401 and len(data["groups"]) == len(expected)
    assert data["method"] == "near" and data["run"] == latest_run(ws, "dedup").run_id
    seen = set()
    for number, size, facets, members in data["groups"]:
        keeper, ids, want_facets = expected[number]
        seen.add(number)
        assert size == len(ids)
        assert members[0][0] == keeper and members[0][2] == -1  # the kept copy first
        assert {m[0] for m in members} <= ids and len(members) == min(size, 8)
        got = {(data["reasons"][r], data["methods"][m], data["bands"][b]) for r, m, b in facets}
        assert got == want_facets  # of every removed member, listed or not
    assert seen == set(expected)
    # largest first; the big group lists its weakest removed members first, then says how many more
    number, size, _, members = data["groups"][0]
    assert size == BIG and [m[4] for m in members[1:]] == pytest.approx([0.80 + 0.01 * k for k in range(7)], abs=1e-4)


def test_filters_offer_every_reason_method_and_band(planted):
    ws, table, dest = planted
    page = Page(read(dest))
    data = review_data(page)
    assert data["reasons"] == ["exact-duplicate", "near-duplicate"]
    assert data["methods"] == ["exact", "minhash", "phash", "semantic"]  # each signal on its own
    assert data["found"] == ["exact", "minhash", "minhash,semantic", "phash", "semantic"]  # as the table says
    for key, names in (("reason", data["reasons"]), ("method", data["methods"]), ("band", data["bands"])):
        html = read(dest)
        select = html[html.index(f'<select id="review-{key}">'):]
        options = select[:select.index("</select>")]
        assert options.count("<option") == len(names) + 1  # "all" + each
        for name in names:
            assert f">{html_escape(name)}</option>" in options
    assert {"\u2265 0.99", "0.95\u20130.99", "< 0.85", "no score"} <= set(data["bands"])
    for key in ("prev", "next", "page", "count"):
        assert page.find("button" if key in ("prev", "next") else "span", id=f"review-{key}")


def test_thousands_of_groups_keep_the_file_bounded(planted):
    ws, table, dest = planted
    html = read(dest)
    data = review_data(Page(html))
    # previews only for the first 50 listed members (largest groups first): text snippets here
    assert len(data["previews"]) == 50 and all(kind == "t" for kind, _ in data["previews"])
    listed = [m for g in data["groups"] for m in g[3]]
    assert [m[5] for m in listed[:50]] == list(range(50)) and all(m[5] == -1 for m in listed[50:])
    # a few hundred bytes per group whatever the payloads: 2,401 groups under 600 KB
    assert len(html.encode()) < 600_000
    # no script on the page: the first page of groups is drawn in HTML
    assert len(Page(html).find("div", **{"class": "group"})) == 24


def test_max_groups_keeps_the_largest(planted, tmp_path):
    ws, table, _ = planted
    dest = build_report(ws, ReportConfig(out=str(tmp_path / "r.html"), max_groups=10, max_previews=0))
    page = Page(read(dest))
    data = review_data(page)
    assert data["total"] == 2401 and len(data["groups"]) == 10 and data["groups"][0][1] == BIG
    assert [g[0] for g in data["groups"][1:]] == list(range(9))  # then the pairs by group number
    assert data["previews"] == [] and "the 10 largest" in page.all_text()
