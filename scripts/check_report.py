"""Build the demo workspace, write its report.html and look at it in headless Chromium.

    python scripts/check_report.py [--dir /tmp/curate-report-check] [--png docs/report-screenshot.png]

Runs the quick start (curate demo -> ingest -> embed perceptual -> dedup semantic), times
``build_report``, checks the page is self-contained (no external src/href) and that its content
security policy allows its inline script by hash only (and the script runs in Chromium), and saves a
1280 x 3000 screenshot (needs ``chromium``: ``apt-get install chromium`` on Debian).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.demo import build_demo
from curate.embed.stage import EmbedConfig, embed
from curate.ingest import IngestConfig, ingest
from curate.report.browser import dump_dom, find_chromium, screenshot
from curate.report.build import ReportConfig, build_report
from curate.report.html import script_hash
from curate.workspace import Workspace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/curate-report-check", help="work folder (demo data + workspace)")
    parser.add_argument("--png", default=None, help="screenshot path (default: DIR/report.png)")
    parser.add_argument("--fresh", action="store_true", help="remove DIR first")
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    top = Path(args.dir)
    if args.fresh and top.exists():
        shutil.rmtree(top)
    ws = Workspace(str(top / "ws"))
    t0 = time.perf_counter()
    build_demo(top / "demo")
    ingest(ws, [str(top / "demo" / "images")], IngestConfig())
    embed(ws, EmbedConfig(model="perceptual"), progress=False)
    semantic_dedup(ws, SemanticConfig(threshold=(0.9,)))
    t1 = time.perf_counter()
    page = build_report(ws, ReportConfig())
    t2 = time.perf_counter()
    html = Path(page.path).read_text(encoding="utf-8")
    external = [u for u in re.findall(r'(?:src|href)="([^"]*)"', html) if not u.startswith(("#", "data:"))]
    print(f"pipeline {t1 - t0:.1f}s; report {t2 - t1:.2f}s -> {page.path} ({len(html) / 1024:.0f} KiB)")
    if external:
        print(f"FAIL: external references: {external[:5]}")
        return 1
    problem = csp_problem(html)
    if problem:
        print(f"FAIL: content security policy: {problem}")
        return 1
    if find_chromium() is None:
        print("no chromium: skipping the screenshot (apt-get install chromium)")
        return 0
    if 'data-page="1"' not in dump_dom(page.path):
        print("FAIL: the review script did not run in chromium (blocked by the content security policy?)")
        return 1
    png = screenshot(page.path, args.png or top / "report.png", height=args.height)
    print(f"screenshot {png} ({png.stat().st_size / 1024:.0f} KiB)")
    return 0


def csp_problem(html: str) -> str | None:
    """What is wrong with the page's policy: script-src must allow no 'unsafe-inline' and hold the hash of
    every inline script (JSON data blocks never run); form-action and base-uri must be 'none'."""
    found = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    if found is None:
        return "no Content-Security-Policy meta tag"
    directives = {name: values for name, *values in (d.split() for d in found.group(1).split(";"))}
    allowed = directives.get("script-src", [])
    if "'unsafe-inline'" in allowed:
        return "script-src allows 'unsafe-inline'"
    scripts = re.findall(r'<script(?![^>]*type="application/json")[^>]*>(.*?)</script>', html, re.S)
    missing = [code[:40] for code in scripts if script_hash(code) not in allowed]
    if missing:
        return f"inline scripts without their hash in script-src: {missing}"
    for name in ("form-action", "base-uri"):
        if directives.get(name) != ["'none'"]:
            return f"{name} is {directives.get(name)}, not 'none'"
    return None


if __name__ == "__main__":
    sys.exit(main())
