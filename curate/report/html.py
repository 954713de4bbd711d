"""Render :class:`curate.report.build.ReportData` as one self-contained HTML page.

Inline CSS, inline SVG charts, thumbnails as data: URIs, one inline script (the pages and
filters of the duplicate review, :mod:`curate.report.script`) and a content security policy
that forbids anything else: no external URL, no fetch, no script but that one (allowed by its
sha256, computed from the page's own markup). Every string that comes from data
(ids, labels, reasons, texts, paths) goes through ``esc`` here, or ``textContent`` in the script.
Sections have stable ids (``counts``, ``balance``, ``clusters``, ``duplicates``, ``map``,
``scores``) so the page can be linked into and tested.
"""

from __future__ import annotations

import base64
import hashlib
import re

import numpy as np

from curate.report import audit_section, review, svg
from curate.report.build import ReportData
from curate.report.embmap import FATE_COLORS, FATES
from curate.report.facts import Scores
from curate.report.review import Group
from curate.report.script import PAGE_SIZE, review_js
from curate.report.svg import esc
from curate.report.thumbs import Preview

CSS = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;
background:#f4f5f7}header{background:#1f2937;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header .sub{color:#cbd5e1;font-size:12px;word-break:break-all}header code{background:#374151;color:#e5e7eb}
nav{margin-top:10px}nav a{color:#93c5fd;
margin-right:14px;text-decoration:none}main{max-width:1180px;margin:0 auto;padding:16px 20px 40px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
h2{margin:0 0 10px;font-size:18px}h3{margin:14px 0 6px;font-size:14px;color:#374151}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:140px;background:#f9fafb;border:1px solid #e5e7eb;
border-radius:6px;padding:10px 14px}.card b{display:block;font-size:22px}.card span{color:#6b7280;font-size:12px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:10px;background:#4c78a8;border-radius:2px;vertical-align:middle}
.muted{color:#6b7280;font-size:12px}.empty{color:#6b7280;font-style:italic}
.groups{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.group{border:1px solid #e5e7eb;border-radius:6px;padding:8px}.tiles{display:flex;flex-wrap:wrap;gap:6px}
.tile{width:104px;font-size:10px;line-height:1.25;color:#4b5563;overflow-wrap:anywhere}
.tile b{display:block;font-weight:600;color:#111}.tile img{width:70px;height:70px;
object-fit:contain;background:#eee;display:block;border:3px solid #4c78a8}.tile.removed img{border-color:#e45756}
.snip{border-left:3px solid #4c78a8;padding:2px 8px;margin:4px 0;font-size:12px;background:#f9fafb}
.snip.removed{border-color:#e45756}.snip .id{color:#6b7280;font-size:11px}svg{max-width:100%;height:auto}
code{font-size:12px;background:#f3f4f6;padding:0 3px;border-radius:3px}
.noimg{width:70px;height:70px;background:#eee;color:#6b7280;font-size:10px;display:flex;align-items:center;
justify-content:center;text-align:center}.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;
margin:8px 0 12px}.controls[hidden]{display:none}.controls select,.controls button{font:inherit;font-size:13px}
"""

# executable inline scripts: any <script> but a JSON data block (which the browser never runs)
_INLINE_SCRIPT = re.compile(r'<script(?![^>]*\btype="application/json")[^>]*>(.*?)</script>', re.S)


def script_hash(code: str) -> str:
    """The CSP source that allows exactly the inline script ``code``: ``'sha256-<base64>'`` of its UTF-8 bytes."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(markup: str) -> str:
    """The policy for a page whose markup is ``markup``: nothing leaves the page (no fetch, no remote image,
    style or script), only data: images and inline styles, and exactly the page's own inline scripts run,
    allowed by their hashes (no 'unsafe-inline': an injected script would not run); no form posts, no
    ``<base>`` to redirect relative links."""
    hashes = list(dict.fromkeys(script_hash(code) for code in _INLINE_SCRIPT.findall(markup)))
    return "; ".join(["default-src 'none'", "img-src data:", "style-src 'unsafe-inline'",
                      "script-src " + (" ".join(hashes) or "'none'"), "form-action 'none'", "base-uri 'none'"])

SECTIONS = (("counts", "Counts"), ("balance", "Label balance"), ("clusters", "Cluster sizes"),
            ("duplicates", "Duplicate groups"), ("map", "Embedding map"), ("scores", "Selection scores"))


def render(data: ReportData) -> str:
    body = [_counts(data), _balance(data), _clusters(data), _duplicates(data), _map(data), _scores(data),
            audit_section.render(data.audit, data.previews, data.ids, data.text_dataset)]
    shown = SECTIONS + ((audit_section.SECTION,) if data.audit is not None else ())
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in shown)
    sub = (f"workspace <code>{esc(data.workspace)}</code> &middot; curate {esc(data.version)} &middot; "
           f"manifest {esc(data.manifest_fingerprint or '?')[:16]}"
           + (f" &middot; embeddings <code>{esc(data.model)}</code>" if data.model else ""))
    page = (f"<header><h1>curate report</h1><div class=\"sub\">{sub}</div><nav>{nav}</nav></header>"
            f"<main>{''.join(body)}</main>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{content_security_policy(page)}\">"
            f"<title>curate report: {esc(data.workspace)}</title><style>{CSS}</style></head><body>"
            f"{page}</body></html>\n")


def _section(key: str, inner: str) -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}"><h2>{title}</h2>{inner}</section>'


def _n(x: float) -> str:
    return f"{int(round(x)):,}"


def _counts(data: ReportData) -> str:
    c = data.counts
    cards = [("samples", c.total), ("ok", c.status.get("ok", 0)), ("quarantined", c.status.get("quarantined", 0)),
             ("kept after dedup + prune", c.survivors)]
    if c.selected is not None:
        cards.append(("selected", c.selected))
    html = ['<div class="cards">'] + [f'<div class="card" data-key="{esc(k)}"><b>{_n(v)}</b><span>{esc(k)}</span></div>'
                                      for k, v in cards] + ["</div>"]
    html.append("<h3>Stages</h3><table><tr><th>stage</th><th>run</th><th>method</th><th>input</th>"
                "<th class=n>kept</th><th>removed, by reason</th><th class=n>left after stage</th></tr>")
    html.append(f"<tr><td>ingest</td><td></td><td></td><td>sources</td><td class=n>{_n(c.status.get('ok', 0))}"
                "</td><td>" + ", ".join(f"{esc(k)} {_n(v)}" for k, v in c.quarantine_reasons.items())
                + f"</td><td class=n>{_n(c.status.get('ok', 0))}</td></tr>")
    for i, s in enumerate(c.stages):
        removed = ", ".join(f"{esc(k)} {_n(v)}" for k, v in s.counts.items() if k != "kept") or "none"
        after = s.upstream if s.upstream is not None else tuple(e.stage for e in c.stages[:i])
        source = "ingest ok" + "".join(f" &rarr; {esc(a)}" for a in after)
        html.append(f'<tr data-stage="{esc(s.stage)}"><td>{esc(s.stage)}</td><td><code>{esc(s.run_id)}</code></td>'
                    f"<td>{esc(s.method or '')}</td><td data-input=\"{esc(' '.join(after))}\">{source}</td>"
                    f"<td class=n>{_n(s.counts.get('kept', 0))}</td><td>{removed}</td>"
                    f"<td class=n>{_n(s.survivors)}</td></tr>")
    html.append("</table>")
    if any(s.stage == "select" for s in c.stages):
        html.append('<p class="muted">Each stage counts from its own input column: <em>selected</em> is what the '
                    "select run picked from its input, which includes prune only when select ran on it.</p>")
    if not c.stages:
        html.append('<p class="empty">No decision runs yet (run `curate dedup`).</p>')
    if c.quarantine_reasons:
        top = max(c.quarantine_reasons.values())
        html.append("<h3>Quarantine reasons</h3><table>")
        for k, v in c.quarantine_reasons.items():
            html.append(f'<tr><td>{esc(k)}</td><td class=n>{_n(v)}</td><td><span class="bar" '
                        f'style="width:{max(2, 200 * v // top)}px"></span></td></tr>')
        html.append("</table>")
    return _section("counts", "".join(html))


def _balance(data: ReportData) -> str:
    b = data.balance
    if b is None:
        return _section("balance", '<p class="empty">No sample has a label.</p>')
    chart = svg.bar_chart(b.labels, {"manifest": b.before, "after dedup + prune": b.after},
                          ("#9ecae9", "#4c78a8"), "label counts before and after")
    rows = "".join(f"<tr><td>{esc(name)}</td><td class=n>{_n(x)}</td><td class=n>{_n(y)}</td>"
                   f"<td class=n>{(100 * y / x if x else 0):.1f}%</td></tr>"
                   for name, x, y in zip(b.labels, b.before, b.after))
    table = ("<table><tr><th>label</th><th class=n>manifest</th><th class=n>kept</th><th class=n>kept %</th></tr>"
             f"{rows}</table>")
    return _section("balance", chart + table)


def _clusters(data: ReportData) -> str:
    cl = data.clusters
    if cl is None:
        return _section("clusters", '<p class="empty">No clusters: no embeddings (run `curate embed`).</p>')
    s = cl.sizes
    summary = (f"<p>{len(s):,} clusters from {esc(cl.source)}; size min {_n(s.min())}, median {_n(np.median(s))}, "
               f"max {_n(s.max())}.</p>")
    chart = svg.histogram(s, "cluster sizes", "rows per cluster", bins=min(30, max(5, len(s) // 2)),
                          log_y=bool(s.max() > 20 * max(np.median(s), 1)))
    return _section("clusters", summary + chart + '<p class="muted">y: number of clusters</p>')


def _duplicates(data: ReportData) -> str:
    rv = data.review
    if rv is None or not rv.groups:
        return _section("duplicates", '<p class="empty">No duplicate groups (or no dedup run).</p>')
    shown = "every group" if len(rv.groups) == rv.total else f"the {len(rv.groups):,} largest"
    previewed = sum(m.row in data.previews for g in rv.groups for m in g.members)
    head = (f"<p>{rv.total:,} duplicate groups in dedup run <code>{esc(rv.run_id)}</code>; {shown}, largest first, "
            f"{PAGE_SIZE} a page. Blue: the kept copy; red: removed copies, with the reason, the method or signal that "
            "found them and their score (weakest first: the ones most worth a look). Previews for the first "
            f"{previewed:,} listed samples; the others by id.</p>")
    payload = review.payload(rv, data.previews, data.ids, data.labels)
    payload["layout"] = "text" if data.text_dataset else "image"
    controls = ('<div id="review-controls" class="controls" hidden>'
                + _select("reason", "reason", payload["reasons"]) + _select("method", "method / signal",
                                                                            payload["methods"])
                + _select("band", "score", payload["bands"])
                + '<button id="review-prev" type="button">&larr; previous</button><span id="review-page"></span>'
                '<button id="review-next" type="button">next &rarr;</button> <span id="review-count" class="muted">'
                '</span> <a id="review-save" download="overrides.json" href="#" hidden>save overrides</a>'
                ' <span class="muted">then <code>curate override -w WS --from overrides.json</code> and rerun'
                "</span></div>")
    first = "".join(_group(g, data) for g in rv.groups[:PAGE_SIZE])
    more = ("" if len(rv.groups) <= PAGE_SIZE else
            f'<noscript><p class="muted">The other {len(rv.groups) - PAGE_SIZE:,} groups and the filters need '
            "JavaScript.</p></noscript>")
    return _section("duplicates", head + controls + f'<div id="review-groups" class="groups">{first}</div>' + more
                    + f'<script id="review-data" type="application/json">{review.to_script_json(payload)}</script>'
                    + f"<script>{review_js()}</script>")


def _select(key: str, title: str, options: list[str]) -> str:
    items = "".join(f'<option value="{i}">{esc(name)}</option>' for i, name in enumerate(options))
    return (f'<label>{esc(title)} <select id="review-{key}"><option value="-1">all</option>{items}</select>'
            "</label>")


def _group(g: Group, data: ReportData) -> str:
    inner = "" if data.text_dataset else "tiles"
    parts = [f'<div class="group" data-group="{g.number}"><div class="muted">group {g.number} &middot; '
             f'{g.size} items</div><div class="{inner}">']
    for m in g.members:
        if m.reason is None:
            note = "kept"
        else:
            note = m.reason + (f" \u00b7 {m.method}" if m.method and not m.reason.startswith(m.method) else "")
            note += f" {m.score:.3f}" if m.score is not None else ""
        parts.append(_preview(data.previews.get(m.row), m.reason is not None, note, data.ids[m.row], data.text_dataset))
    if g.size > len(g.members):
        parts.append(f'<div class="muted">and {g.size - len(g.members)} more</div>')
    parts.append("</div></div>")
    return "".join(parts)


def _preview(p: Preview | None, removed: bool, note: str, sample_id: str = "", text_layout: bool = False) -> str:
    cls = " removed" if removed else ""
    if p is None:  # beyond the preview budget: the id only
        if text_layout:
            return (f'<div class="snip{cls}"><div class="id">{esc(sample_id)} &middot; {esc(note)}</div>'
                    "(no preview)</div>")
        return (f'<div class="tile{cls}" title="{esc(sample_id)}"><div class="noimg">no preview</div>'
                f"<b>{esc(note)}</b>{esc(sample_id)}</div>")
    label = f" [{esc(p.label)}]" if p.label is not None else ""
    if p.text is not None:
        return (f'<div class="snip{cls}"><div class="id">{esc(p.id)}{label} &middot; {esc(note)}</div>'
                f"{esc(p.text)}</div>")
    img = (f'<img alt="{esc(p.id)}" src="{p.image}">' if p.image else
           f'<div class="noimg">{esc(p.error or "")}</div>')
    return f'<div class="tile{cls}" title="{esc(p.id)}">{img}<b>{esc(note)}</b>{esc(p.id)}{label}</div>'


def _map(data: ReportData) -> str:
    m = data.map
    if m is None:
        return _section("map", '<p class="empty">No embeddings to draw (run `curate embed`).</p>')
    order = np.argsort(m.fate, kind="stable")
    titles = [None if m.fate[i] == 0 else f"{m.ids[i]} ({FATES[m.fate[i]]})" for i in order]
    chart = svg.scatter(m.xy[order], m.fate[order].astype(np.int64), FATES, FATE_COLORS, titles,
                        "embeddings, neighbour-preserving 2-D layout, coloured by final fate")
    note = (f'<p class="muted">{len(m.xy):,} of {m.total:,} embedded samples (removed ones first), laid out so that '
            "each sample's nearest neighbours (cosine, 15 of them) stay near it: clusters show as islands, and "
            "distances between islands mean little. Hover a removed point for its id."
            + (f" {data.counts.total - m.total:,} samples have no embedding (quarantined or not embedded) and are "
               "not drawn." if data.counts.total > m.total else "") + "</p>")
    return _section("map", note + chart)


def _scores(data: ReportData) -> str:
    if not data.scores:
        return _section("scores", '<p class="empty">No prune or select run with scores yet.</p>')
    return _section("scores", "".join(_score_block(s, data) for s in data.scores))


def _score_block(s: Scores, data: ReportData) -> str:
    parts = [f"<h3>{esc(s.stage)} run <code>{esc(s.run_id)}</code>: {len(s.values):,} scores</h3>",
             svg.histogram(s.values, f"{s.stage} scores", "score", color="#54a24b")]
    if s.picks:
        parts.append(f"<h3>Top {len(s.picks)} picks</h3><div class=\"tiles\">")
        for row, score in s.picks:
            parts.append(_preview(data.previews.get(row), False, "" if score is None else f"{score:.4g}"))
        parts.append("</div>")
    return "".join(parts)
