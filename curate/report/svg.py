"""Inline SVG charts for the report: bars, histograms and a scatter map, no plotting library.

Every chart is a plain ``<svg>`` string with fixed size and a ``viewBox`` (it scales with the
page); every label taken from data goes through :func:`esc`, so ids, labels and paths cannot
inject markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

FONT = 'font-family="system-ui,sans-serif" font-size="11"'
AXIS = "#888"


def esc(value: object) -> str:
    """HTML/SVG-escaped text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def fmt(x: float) -> str:
    """A short number for a tick label: 1,234 / 12.3 / 0.123 / 1.2e-05."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.3g}"
    return f"{x:.1e}"


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if step * mag >= v:
            return step * mag
    return 10 * mag


def _open(width: int, height: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" {FONT}><title>{esc(title)}</title>']


def _y_axis(parts: list[str], left: int, top: int, plot_h: int, plot_w: int, ymax: float) -> None:
    for i in range(5):
        v = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{esc(fmt(v))}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="{AXIS}"/>')


def bar_chart(categories: Sequence[str], series: dict[str, Sequence[float]], colors: Sequence[str],
              title: str, width: int = 760, height: int = 260) -> str:
    """Grouped vertical bars: one group per category, one bar per series, with a legend."""
    left, top, bottom, right = 48, 24, 46, 10
    plot_w, plot_h = width - left - right, height - top - bottom
    values = np.array([list(v) for v in series.values()], dtype=float).reshape(len(series), len(categories))
    ymax = _nice_max(float(values.max()) if values.size else 1.0)
    parts = _open(width, height, title)
    _y_axis(parts, left, top, plot_h, plot_w, ymax)
    n_cat, n_ser = max(1, len(categories)), max(1, len(series))
    group_w = plot_w / n_cat
    bar_w = max(1.0, min(40.0, group_w * 0.8 / n_ser))
    for c, name in enumerate(categories):
        x0 = left + c * group_w + (group_w - bar_w * n_ser) / 2
        for s, (label, color) in enumerate(zip(series, colors)):
            v = values[s, c]
            h = plot_h * v / ymax
            parts.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{esc(name)} ({esc(label)}): '
                         f'{esc(fmt(v))}</title></rect>')
        if n_cat <= 40:
            short = name if len(name) <= 10 else name[:9] + "\u2026"
            parts.append(f'<text x="{x0 + bar_w * n_ser / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                         f'fill="#333">{esc(short)}</text>')
    parts.append(_legend(list(series), list(colors), left, height - 12))
    parts.append("</svg>")
    return "".join(parts)


def histogram(values: np.ndarray, title: str, xlabel: str, bins: int = 30, color: str = "#4c78a8",
              width: int = 760, height: int = 220, log_y: bool = False) -> str:
    """Counts of ``values`` in equal-width bins between their min and max."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    left, top, bottom, right = 48, 16, 40, 12
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = _open(width, height, title)
    if not len(values):
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no values</text></svg>')
        return "".join(parts)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if np.all(values == np.round(values)) and hi - lo < bins:  # small integers: one bar per value
        bins, lo, hi = int(hi - lo) + 1, lo - 0.5, hi + 0.5
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    shown = np.log10(counts + 1.0) if log_y else counts.astype(float)
    ymax = _nice_max(float(shown.max()))
    _y_axis(parts, left, top, plot_h, plot_w, ymax if not log_y else ymax)
    bw = plot_w / bins
    for i, (c, s) in enumerate(zip(counts, shown)):
        h = plot_h * s / ymax
        parts.append(f'<rect x="{left + i * bw + 0.5:.1f}" y="{top + plot_h - h:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                     f'height="{h:.1f}" fill="{color}"><title>{esc(fmt(edges[i]))} to {esc(fmt(edges[i + 1]))}: '
                     f'{int(c):,}</title></rect>')
    for i in range(6):
        x = left + plot_w * i / 5
        v = lo + (hi - lo) * i / 5
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#555">{esc(fmt(v))}</text>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{AXIS}"/>')
    note = " (log10(count+1))" if log_y else ""
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" fill="#333">'
                 f'{esc(xlabel)}{esc(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter(xy: np.ndarray, groups: np.ndarray, names: Sequence[str], colors: Sequence[str],
            titles: Sequence[str | None], title: str, size: int = 680, legend_w: int = 220) -> str:
    """Points ``xy`` [n, 2] coloured by ``groups`` (index into names/colors), drawn in group order
    (later groups on top), legend on the right; a point whose title is not None shows it on hover."""
    pad = 12
    parts = _open(size + legend_w, size, title)
    parts.append(f'<rect x="0" y="0" width="{size}" height="{size}" fill="#fafafa" stroke="#ddd"/>')
    if len(xy):
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        span = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-12))
        centre = (lo + hi) / 2
        scale = (size - 2 * pad) / span
        px = (xy - centre) * scale + size / 2
        px[:, 1] = size - px[:, 1]  # y up
        for g, color in enumerate(colors):
            members = np.flatnonzero(groups == g)
            if not len(members):
                continue
            r = 2.2 if g == 0 else 3.5
            parts.append(f'<g fill="{color}" fill-opacity="{0.55 if g == 0 else 0.9}">')
            for i in members:
                t = titles[i]
                tip = f"<title>{esc(t)}</title>" if t is not None else ""
                parts.append(f'<circle cx="{px[i, 0]:.1f}" cy="{px[i, 1]:.1f}" r="{r}">{tip}</circle>')
            parts.append("</g>")
    for g, (name, color) in enumerate(zip(names, colors)):
        y = pad + 10 + 20 * g
        parts.append(f'<circle cx="{size + 18}" cy="{y - 4}" r="5" fill="{color}"/><text x="{size + 30}" y="{y}" '
                     f'fill="#333">{esc(name)} ({int((groups == g).sum()):,})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(labels: list[str], colors: list[str], x: float, y: float) -> str:
    parts = []
    for label, color in zip(labels, colors):
        parts.append(f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14:.0f}" y="{y:.0f}" fill="#333">{esc(label)}</text>')
        x += 14 + 6.5 * len(label) + 18
    return "".join(parts)
