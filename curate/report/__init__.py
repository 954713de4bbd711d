"""The self-contained HTML report of a workspace.

``build_report(ws, ReportConfig(out=...))`` writes one ``report.html`` (inline CSS, inline
SVG charts, thumbnails as data: URIs; opens offline) and returns its location: ``build.py``
gathers, ``facts.py`` counts, ``embmap.py`` projects, ``thumbs.py`` previews, ``svg.py``
draws and ``html.py`` renders; ``browser.py`` screenshots it with headless Chromium.
"""

from curate.report.build import ReportConfig, build_report

__all__ = ["ReportConfig", "build_report"]
