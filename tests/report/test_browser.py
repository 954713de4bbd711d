"""The report in a real headless browser, its script included (skipped where chromium is not installed, e.g. CI)."""

import shutil

import numpy as np
import pytest
from PIL import Image

from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.report.browser import dump_dom, screenshot
from curate.report.build import ReportConfig, build_report
from tests.report.test_report import Page, text_workspace
from tests.report.test_review import expected_groups, planted_review_workspace

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")


def test_headless_chromium_draws_the_report(tmp_path):
    ws, _ = text_workspace(tmp_path)
    semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=3))
    page = build_report(ws, ReportConfig())
    png = screenshot(page.path, tmp_path / "shot.png", width=1000, height=2400)
    img = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert img.shape == (2400, 1000, 3)
    # not blank: many colours, the dark header on top, the chart colours somewhere below
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    assert img[:40].mean() < 100  # the header band is dark
    blue = (np.abs(img - np.array([0x4C, 0x78, 0xA8])).sum(axis=2) < 30).sum()
    red = (np.abs(img - np.array([0xE4, 0x57, 0x56])).sum(axis=2) < 30).sum()
    assert blue > 500 and red > 20  # bars/points in the kept colour, removed copies in red


@pytest.fixture(scope="module")
def review_page(tmp_path_factory):
    ws, table = planted_review_workspace(tmp_path_factory.mktemp("browser"), pairs=300)
    return build_report(ws, ReportConfig(max_previews=20)), expected_groups(table)


def shown(dom: str) -> tuple[list[int], dict]:
    """Group numbers the script drew, and the attributes of the group box."""
    page = Page(dom)
    [box] = page.find("div", id="review-groups")
    return [int(a["data-group"]) for a in page.find("div", **{"class": "group"})], box


def test_the_script_pages_through_every_group(review_page):
    dest, expected = review_page
    order = sorted(expected, key=lambda g: (-len(expected[g][1]), g))  # largest first, then by number
    numbers, box = shown(dump_dom(dest.path))
    assert numbers == order[:24] and box["data-matches"] == str(len(expected)) and box["data-page"] == "1"
    numbers, box = shown(dump_dom(dest.path, "review:page=13"))
    assert numbers == order[288:] and box["data-page"] == "13"  # the last page: groups 289..301


def test_the_script_filters_by_reason_method_and_score_band(review_page):
    dest, expected = review_page
    want = ("near-duplicate", "minhash", "0.90\u20130.95")  # minhash alone or with semantic
    order = sorted(expected, key=lambda g: (-len(expected[g][1]), g))
    hits = [g for g in order if want in expected[g][2]]  # one removed member has all three
    assert 24 < len(hits) < len(expected) / 4
    numbers, box = shown(dump_dom(dest.path, "review:reason={}&method={}&band={}&page=2".format(*want)))
    assert box["data-matches"] == str(len(hits)) and box["data-page"] == "2" and numbers == hits[24:48]
