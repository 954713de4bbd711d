"""The HTML report, checked without a browser: parsed with html.parser against planted workspaces."""

import base64
import io
import json
import re
from dataclasses import dataclass
from html import escape as html_escape
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.cli import cli
from curate.decisions import latest_run
from curate.dedup.exact import ExactDedupConfig, exact_dedup
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.embed.stage import EmbedConfig, embed
from curate.ingest import IngestConfig, ingest
from curate.report.build import ReportConfig, build_report
from curate.runner import Inputs, Output, Stage, run_stage
from curate.workspace import Workspace
from tests.conftest import write

HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_TEXT = '<img src=x onerror="alert(2)"> & "quotes"'


class Page(HTMLParser):
    """Tags, attributes, section ids and the visible text of a page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.sections: list[str] = []
        self.scripts: list[str] = []  # the text inside <script> elements (not page text)
        self.in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self.sections.append(attrs.get("id"))
        self.in_script = tag == "script"

    def handle_endtag(self, tag):
        self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]



@dataclass(frozen=True)
class PlantedConfig:
    pass


class Planted(Stage):
    """A select run whose table the test wrote by hand (recorded through the runner like any run)."""

    name = "select"
    config_type = PlantedConfig

    def __init__(self, table):
        self.table = table

    def resolve(self, ws, config):
        return Inputs({"manifest": ws.manifest_fingerprint()})

    def compute(self, ctx):
        return Output(self.table, {"method": "test"})


def review_data(page: Page) -> dict:
    """The duplicate groups the page embeds for its script."""
    [data] = [s for s in page.scripts if s.startswith("{")]
    return json.loads(data)


def read(dest) -> str:
    with open(dest.path, encoding="utf-8") as fh:
        return fh.read()


def text_workspace(tmp_path, name="w"):
    """24 texts with 4-d embeddings: rows 0..2 nearly identical (one group of 3), row 5 an
    exact copy of row 4 (same text and vector), the rest spread out; labels a (even) / b (odd)."""
    rng = np.random.default_rng(0)
    n = 24
    vectors = rng.normal(size=(n, 4))
    vectors[1] = vectors[0] + 1e-3
    vectors[2] = vectors[0] - 1e-3
    vectors[5] = vectors[4]
    texts = [f"text number {i}" for i in range(n)]
    texts[5] = texts[4]
    texts[1] = HOSTILE_TEXT
    ids = [f"{name}{i}" for i in range(n)]
    ids[2] = HOSTILE_ID
    rows = [{"id": ids[i], "text": texts[i], "label": "ab"[i % 2]} for i in range(n)]
    src = write(tmp_path / f"{name}.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    npy = tmp_path / f"{name}-vectors" / "vectors.npy"
    npy.parent.mkdir()
    np.save(npy, vectors.astype(np.float32))
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)
    return ws, ids


@pytest.fixture
def deduped(tmp_path):
    ws, ids = text_workspace(tmp_path)
    run = semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=3)).run
    return ws, ids, run


def test_report_is_self_contained_escaped_and_has_every_section(deduped):
    ws, ids, run = deduped
    dest = build_report(ws, ReportConfig())
    assert dest.path == f"{ws.root.path}/report.html"
    html = read(dest)
    page = Page(html)
    assert page.sections == ["counts", "balance", "clusters", "duplicates", "map", "scores"]
    # nothing to fetch: links stay in the page, images are data: URIs, the only scripts are inline (the
    # review's data and code), and the content security policy forbids anything else
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href", "action", "poster"):
            if key in attrs:
                assert attrs[key].startswith(("#", "data:")), (tag, attrs)
        assert tag not in ("link", "iframe", "object", "embed", "base")
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    assert page.find("script") == [{"id": "review-data", "type": "application/json"}, {}]
    [csp] = page.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp["content"].startswith("default-src 'none'; img-src data:;")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    # hostile strings are shown as text, never as markup
    assert HOSTILE_ID not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    text = page.all_text()
    assert HOSTILE_ID in text and 'onerror="alert(2)"' in text


def test_counts_balance_and_groups_match_the_planted_workspace(deduped):
    ws, ids, run = deduped
    table = run.table.to_pydict()
    removed = {i for i, k in zip(table["id"], table["kept"]) if not k}
    assert len(removed) == 3
    assert len(removed & {ids[0], ids[1], HOSTILE_ID}) == 2 and len(removed & {ids[4], ids[5]}) == 1
    page = Page(read(build_report(ws, ReportConfig())))
    cards = {a["data-key"] for a in page.find("div", **{"class": "card"})}
    assert cards == {"samples", "ok", "quarantined", "kept after dedup + prune"}
    text = page.all_text()
    assert "24 samples" in text and "21 kept after dedup + prune" in text
    assert "exact-duplicate 1, semantic-duplicate 2" in text
    # label balance: a = even rows, b = odd rows; 12 each before; after, count the survivors by hand
    kept_labels = [("ab"[i % 2]) for i, k in enumerate(table["kept"]) if k]
    for label in "ab":
        assert f"{label} 12 {kept_labels.count(label)}" in text
    # the one group of three near-copies, keeper first, plus the exact pair (drawn without script too)
    groups = page.find("div", **{"class": "group"})
    assert len(groups) == 2
    assert "2 duplicate groups" in text and "every group" in text
    assert "exact-duplicate \u00b7 semantic 1.000" in text


def test_map_draws_a_bounded_sample_with_every_removed_point(deduped):
    ws, ids, run = deduped
    html = read(build_report(ws, ReportConfig(max_points=10)))
    map_svg = html[html.index('<section id="map">'):html.index('<section id="scores">')]
    assert map_svg.count("<circle") == 10 + 5  # 10 points + 5 legend swatches
    titles = re.findall(r"<title>([^<]*)</title></circle>", map_svg)
    table = run.table.to_pydict()
    fate = {"exact-duplicate": "exact-duplicate", "semantic-duplicate": "near-duplicate"}
    expected = {f"{html_escape(i)} ({fate[r]})" for i, k, r in zip(table["id"], table["kept"], table["reason"])
                if not k}
    assert set(titles) == expected  # every removed point is drawn and carries its (escaped) id
    assert "kept (7)" in map_svg and "near-duplicate (2)" in map_svg and "exact-duplicate (1)" in map_svg


def test_cluster_sizes_come_from_kmeans_without_a_semantic_run(tmp_path):
    ws, _ = text_workspace(tmp_path)
    exact_dedup(ws, ExactDedupConfig())  # no cluster column
    text = Page(read(build_report(ws, ReportConfig()))).all_text()
    assert "k-means on the embedding store" in text
    clusters = int(re.search(r"(\d+) clusters from k-means", text).group(1))
    assert clusters == round(np.sqrt(24))


def test_scores_and_top_picks_of_a_select_run(deduped, tmp_path):
    ws, ids, _ = deduped
    manifest_ids = ws.read_manifest(["id"]).column("id")
    n = len(manifest_ids)
    picked = [7, 3, 11]  # rank order
    kept = np.zeros(n, dtype=bool)
    kept[picked] = True
    score = np.full(n, np.nan)
    score[picked] = [0.9, 0.8, 0.7]
    rank = np.full(n, -1)
    rank[picked] = [1, 2, 3]
    table = pa.table({"id": manifest_ids, "kept": pa.array(kept),
                      "reason": pa.array([None if k else "not-selected" for k in kept], pa.string()),
                      "score": pa.array(score, mask=np.isnan(score)), "rank": pa.array(rank, mask=rank < 0)})
    run_stage(ws, Planted(table), PlantedConfig(), progress=False)
    dest = build_report(ws, ReportConfig(out=str(tmp_path / "exports" / "v1")))
    assert dest.path == str(tmp_path / "exports" / "v1" / "report.html")
    html = read(dest)
    scores = html[html.index('<section id="scores">'):]
    order = [scores.index(f"{ids[i]} [") for i in picked]
    assert order == sorted(order), "top picks are shown in rank order"
    assert "3 scores" in Page(scores).all_text()
    assert "selected" in {a["data-key"] for a in Page(html).find("div", **{"class": "card"})}


def test_image_duplicates_are_thumbnails(tmp_path, images):
    for i in range(6):
        write(tmp_path / "imgs" / "cat" / f"{i}.png", images(size=(40, 30), seed=i))
    write(tmp_path / "imgs" / "cat" / "copy.png", images(size=(40, 30), seed=2))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "imgs")], IngestConfig())
    embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    semantic_dedup(ws, SemanticConfig(threshold=(0.95,), clusters=1))
    page = Page(read(build_report(ws, ReportConfig())))
    thumbs = [a["src"] for a in page.find("img")]
    assert len(thumbs) == 2  # the kept original and its copy (drawn without script)
    assert len(review_data(page)["previews"]) == 2  # and in the page's data
    for uri in thumbs:
        assert uri.startswith("data:image/jpeg;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert img.format == "JPEG" and max(img.size) <= 64 and img.size[0] > img.size[1]


def test_cli_writes_the_report_and_rejects_a_bad_run(deduped, tmp_path):
    ws, _, run = deduped
    out = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", "-w", ws.root.path, "--out", str(out),
                                      "--run", f"dedup={run.run_id}"])
    assert result.exit_code == 0, result.output
    assert out.exists() and "report:" in result.output
    bad = CliRunner().invoke(cli, ["report", "-w", ws.root.path, "--run", "dedup"])
    assert bad.exit_code != 0


@pytest.mark.parametrize("method", ["exact", "semantic", "knn", "fuzzy", "near"])
def test_every_dedup_method_reaches_the_review(tmp_path, method):
    """Whatever the method, the page holds each group of its table: members, kept copy, reasons, and
    the method (or for fuzzy / near the signals of the signal column) with the score or max_sim."""
    ws, _ = text_workspace(tmp_path)
    result = CliRunner().invoke(cli, ["dedup", "-w", ws.root.path, "--method", method, "--no-progress"])
    assert result.exit_code == 0, result.output
    table = latest_run(ws, "dedup").table.to_pydict()
    groups: dict[int, list[int]] = {}
    for row, g in enumerate(table["group"]):
        if g is not None:
            groups.setdefault(g, []).append(row)
    assert groups, "the planted copies form at least one group"
    data = review_data(Page(read(build_report(ws, ReportConfig()))))
    assert data["method"] == method and data["total"] == len(groups) == len(data["groups"])
    score = table.get("score") or table.get("max_sim") or [None] * len(table["id"])
    for number, size, facets, members in data["groups"]:
        rows = groups[number]
        assert size == len(rows) and len(members) == min(size, 8)  # a long group lists 8 and counts the rest
        assert {m[0] for m in members} <= {table["id"][r] for r in rows}
        assert [m[0] for m in members if m[2] == -1] == [table["id"][r] for r in rows if table["kept"][r]][:8]
        for m in members:
            r = table["id"].index(m[0])
            if not table["kept"][r]:
                assert data["reasons"][m[2]] == table["reason"][r]
                found = table["signal"][r] if "signal" in table else method
                assert data["found"][m[3]] == found
                assert m[4] == (None if score[r] is None else pytest.approx(score[r], abs=1e-4))
        signals = {s for r in rows if not table["kept"][r] for s in
                   (table["signal"][r].split(",") if "signal" in table else [method])}
        assert {data["methods"][f[1]] for f in facets} == signals


class Scripts(HTMLParser):
    """Every ``<script>`` element of a page: (attributes, its whole text)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        self.blocks: list[tuple[dict, str]] = []
        self.open: tuple[dict, list[str]] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.open = (dict(attrs), [])

    def handle_data(self, data):
        if self.open is not None:
            self.open[1].append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self.open is not None:
            self.blocks.append((self.open[0], "".join(self.open[1])))
            self.open = None


def csp_directives(html: str) -> dict[str, list[str]]:
    [meta] = Page(html).find("meta", **{"http-equiv": "Content-Security-Policy"})
    return {name: values for name, *values in (d.split() for d in meta["content"].split(";"))}


def test_csp_allows_exactly_the_pages_inline_script_by_its_hash(deduped):
    import hashlib

    ws, _, _ = deduped
    html = read(build_report(ws, ReportConfig()))
    csp = csp_directives(html)
    assert csp["default-src"] == ["'none'"] and csp["img-src"] == ["data:"] and csp["style-src"] == ["'unsafe-inline'"]
    assert csp["form-action"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert not any("unsafe" in v for v in csp["script-src"])
    blocks = Scripts(html).blocks
    runnable = [text for attrs, text in blocks if attrs.get("type") != "application/json"]
    assert len(runnable) == 1 and "review-data" in runnable[0]  # the review's code; the data block never runs
    expected = ["'sha256-" + base64.b64encode(hashlib.sha256(t.encode("utf-8")).digest()).decode() + "'"
                for t in runnable]
    assert csp["script-src"] == expected  # every inline script covered, and nothing else allowed


def test_a_page_without_script_allows_none(tmp_path):
    ws, _ = text_workspace(tmp_path)  # no dedup run: no review, no script
    html = read(build_report(ws, ReportConfig()))
    assert [a for a, _ in Scripts(html).blocks if a.get("type") != "application/json"] == []
    assert csp_directives(html)["script-src"] == ["'none'"]
