"""Every duplicate group of a dedup run, for review before removal: the report's group data.

One pass over the decision table (no per-row Python beyond the grouped rows): each group with
its size and up to ``max_members`` listed members (the kept copy first, then the removed ones
weakest first, the ones most worth a look), each with its reason, the method or signal that
found it (the ``signal`` column of fuzzy/near runs, else the run's method) and its score
(``score``, else ``max_sim``). Each group also carries the distinct (reason, method, score band)
of all its removed members, so the page filters on every member, listed or not.

:func:`payload` turns the groups into compact JSON for the page's script (arrays, not objects;
previews by index into one table); its size is bounded by ``max_groups x max_members`` short
entries plus the previews, whatever the dataset size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from curate.decisions import DecisionRun
from curate.report.thumbs import Preview

# score bands, high to low: (label, lower bound); a score falls in the first band it reaches
BANDS = (("\u2265 0.99", 0.99), ("0.95\u20130.99", 0.95), ("0.90\u20130.95", 0.90), ("0.85\u20130.90", 0.85),
         ("< 0.85", -np.inf))
NO_SCORE = "no score"


@dataclass(frozen=True)
class Member:
    row: int  # manifest row
    reason: str | None  # None: the kept copy
    method: str | None  # the run's method, or the signals that found the pair (``minhash,semantic``)
    score: float | None


@dataclass(frozen=True)
class Group:
    number: int
    size: int
    members: list[Member]  # kept ones first, then removed ones by ascending score; at most max_members
    facets: list[tuple[str, str, str]]  # distinct (reason, method or one signal, band) of every removed member


@dataclass(frozen=True)
class Review:
    run_id: str
    method: str | None
    total: int  # groups in the run
    groups: list[Group]  # the largest ``max_groups``, largest first


def band_of(score: float | None) -> str:
    if score is None or not np.isfinite(score):
        return NO_SCORE
    return next(label for label, lo in BANDS if score >= lo)


def review(run: DecisionRun | None, method: str | None, max_groups: int, max_members: int = 8) -> Review | None:
    """The duplicate groups of ``run`` (None when it has no ``group`` column)."""
    if run is None or "group" not in run.table.column_names:
        return None
    table = run.table
    group = table.column("group").to_numpy(zero_copy_only=False)
    group = np.where(np.isnan(group), -1, group).astype(np.int64) if group.dtype.kind == "f" else group.astype(np.int64)
    rows = np.flatnonzero(group >= 0)
    if not len(rows):
        return Review(run.run_id, method, 0, [])
    numbers, sizes = np.unique(group[rows], return_counts=True)
    order = np.lexsort((numbers, -sizes))[:max_groups]
    by_group = rows[np.argsort(group[rows], kind="stable")]
    starts = np.searchsorted(group[by_group], numbers)
    chosen = np.concatenate([by_group[starts[i]:starts[i] + sizes[i]] for i in order]) if len(order) else rows[:0]
    kept = table.column("kept").to_numpy(zero_copy_only=False).astype(bool)
    reasons = dict(zip(chosen.tolist(), table.column("reason").take(chosen).to_pylist()))
    scores = _column(table, ("score", "max_sim"), chosen)
    signals = _column(table, ("signal",), chosen)
    out = []
    for i in order:
        members = by_group[starts[i]:starts[i] + sizes[i]].tolist()
        keepers = [r for r in members if kept[r]]
        removed = [Member(r, reasons[r] or "removed", signals.get(r) or method, scores.get(r))
                   for r in members if not kept[r]]
        removed.sort(key=lambda m: (m.score if m.score is not None else np.inf, m.row))
        listed = [Member(r, None, None, None) for r in keepers] + removed
        facets = sorted({(m.reason, signal, band_of(m.score)) for m in removed
                         for signal in (m.method or "").split(",")})
        out.append(Group(int(numbers[i]), int(sizes[i]), listed[:max_members], facets))
    return Review(run.run_id, method, len(numbers), out)


def _column(table, names: tuple[str, ...], rows: np.ndarray) -> dict[int, object]:
    """``{row: value}`` of the first of ``names`` the table has (NaN and null dropped)."""
    for name in names:
        if name in table.column_names:
            values = table.column(name).take(rows).to_pylist()
            return {r: v for r, v in zip(rows.tolist(), values)
                    if v is not None and not (isinstance(v, float) and not np.isfinite(v))}
    return {}


def payload(rv: Review, previews: dict[int, Preview], ids: list[str], labels: list[str | None]) -> dict:
    """The page's group data: lookup tables, then one array per group.

    ``groups[i] = [number, size, facets, members]``; ``facets`` = [[reason, method, band] index triples]
    into ``reasons``, ``methods`` (single methods or signals: the filter's options) and ``bands``;
    ``members`` = [[id, label, reason (-1: kept), found by (index into ``found``, -1: none),
    score (null: none), preview (-1: none)]].
    """
    reasons = sorted({f[0] for g in rv.groups for f in g.facets})
    methods = sorted({f[1] for g in rv.groups for f in g.facets})
    found = sorted({m.method for g in rv.groups for m in g.members if m.method is not None})
    bands = [label for label, _ in BANDS] + [NO_SCORE]
    at = {name: i for i, name in enumerate(reasons)}, {name: i for i, name in enumerate(methods)}, \
        {name: i for i, name in enumerate(bands)}, {name: i for i, name in enumerate(found)}
    preview_rows = list(dict.fromkeys(m.row for g in rv.groups for m in g.members if m.row in previews))
    preview_at = {r: i for i, r in enumerate(preview_rows)}
    groups = []
    for g in rv.groups:
        facets = [[at[0][r], at[1][m], at[2][b]] for r, m, b in g.facets]
        members = [[ids[m.row], labels[m.row], -1 if m.reason is None else at[0][m.reason],
                    -1 if m.method is None else at[3][m.method],
                    None if m.score is None else round(float(m.score), 4), preview_at.get(m.row, -1)]
                   for m in g.members]
        groups.append([g.number, g.size, facets, members])
    return {"run": rv.run_id, "method": rv.method, "total": rv.total, "reasons": reasons, "methods": methods,
            "bands": bands, "found": found, "previews": [_preview_entry(previews[r]) for r in preview_rows],
            "groups": groups}


def _preview_entry(p: Preview) -> list:
    """``["i", data-uri]``, ``["t", snippet]`` or ``["e", note]``."""
    if p.image is not None:
        return ["i", p.image]
    if p.text is not None:
        return ["t", p.text]
    return ["e", p.error or ""]


def to_script_json(data: dict) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` characters
    (escaped as \\u003c etc.), so no data can close the element or open a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
