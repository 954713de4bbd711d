"""The report in a real headless browser (skipped where chromium is not installed, e.g. CI)."""

import shutil

import numpy as np
import pytest
from PIL import Image

from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.report.browser import screenshot
from curate.report.build import ReportConfig, build_report
from tests.report.test_report import text_workspace

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
