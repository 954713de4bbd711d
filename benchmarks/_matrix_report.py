"""Scoring and output of the edit-robustness matrix: per (kind, strength) recall and removal precision per
method and origin, one CSV (appended), a markdown report and a PNG plot of recall against strength."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from _edit_kinds import IMAGE_EDITS, STRENGTHS, TEXT_EDITS
from _matrix_data import IMAGE_ORIGINS, TUNE_ORIGINS

FIELDS = ["run", "commit", "origin", "role", "modality", "method", "kind", "strength", "group", "copies", "recall",
          "removed", "precision", "false_removals", "kept_original", "seconds", "items", "load1", "machine"]


def cell_rows(records: list[dict], row: dict) -> list[dict]:
    """One row per (kind, strength) for a method's result ``row`` (from bench_neardup.timed): recall of the
    planted copies of that cell, and removal precision over the removed copies of that cell."""
    group = {r["id"]: r["group"] for r in records}
    kind_of = {r["id"]: (r["edit"], r["level"]) for r in records}
    removed: dict[str, str] = row["removals"]
    right, wrong = defaultdict(int), defaultdict(int)
    for i, dup in removed.items():
        if kind_of[i][0] != "original":
            (right if group[i] == group[dup] else wrong)[kind_of[i]] += 1
    copies = defaultdict(int)
    for r in records:
        if r["edit"] != "original":
            copies[(r["edit"], r["level"])] += 1
    edits = {**IMAGE_EDITS, **TEXT_EDITS}
    out = []
    for (kind, level), n in sorted(copies.items(), key=lambda kv: (list(edits).index(kv[0][0]), kv[0][1])):
        k_removed = right[(kind, level)] + wrong[(kind, level)]
        out.append({"kind": kind, "strength": STRENGTHS[level], "group": edits[kind][0], "copies": n,
                    "recall": row["per_kind"].get(f"{kind}@{STRENGTHS[level]}", 0.0), "removed": k_removed,
                    "precision": right[(kind, level)] / k_removed if k_removed else float("nan"),
                    "false_removals": wrong[(kind, level)]})
    return out


def origin_rows(origin: str, records: list[dict], method_rows: list[dict], run: str, commit: str) -> list[dict]:
    """CSV rows of one origin: an ``ALL`` row per method, then its cells."""
    load = os.getloadavg()
    base = {"run": run, "commit": commit, "origin": origin, "role": "tune" if origin in TUNE_ORIGINS else "heldout",
            "modality": "images" if origin in IMAGE_ORIGINS else "texts", "items": len(records),
            "load1": round(load[0], 2), "machine": f"{os.cpu_count()} CPUs"}
    out = []
    for row in method_rows:
        out.append({**base, "method": row["method"], "kind": "ALL", "strength": "", "group": "",
                    "copies": sum(r["kind"] != "original" for r in records), "recall": row["recall"],
                    "removed": row["removed"], "precision": row["precision"], "false_removals": row["false_removals"],
                    "kept_original": row["kept_original"], "seconds": row["seconds"]})
        out += [{**base, "method": row["method"], **c, "kept_original": "", "seconds": ""}
                for c in cell_rows(records, row)]
    return out


def append_csv(path: Path, rows: list[dict]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})


def _short(method: str) -> str:
    return (method.replace("curate ", "").replace("imagededup ", "").replace(" (distance 10)", "")
            .replace("datasketch MinHashLSH (0.7, 5-gram)", "datasketch").replace(" perceptual-v2", " perceptual"))


def _pooled(rows: list[dict], key) -> dict:
    """Recall pooled over origins (weighted by copies) per ``key(row)``."""
    hit, n = defaultdict(float), defaultdict(int)
    for r in rows:
        hit[key(r)] += float(r["recall"]) * int(r["copies"])
        n[key(r)] += int(r["copies"])
    return {k: hit[k] / n[k] for k in n if n[k]}


def markdown(rows: list[dict], header: str, per_origin: bool = True) -> str:
    """Summary per origin and method, then per-kind recall (weak / middle / strong) pooled over the held-out
    origins, then (``per_origin``) the same for each origin."""
    out = [header, ""]
    alls = [r for r in rows if r["kind"] == "ALL"]
    methods = list(dict.fromkeys(r["method"] for r in alls))
    out += ["| origin | role | items | method | recall | precision (removed, wrong) | original kept | seconds |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in alls:
        out.append(f"| {r['origin']} | {r['role']} | {r['items']} | {_short(r['method'])} | {float(r['recall']):.3f} | "
                   f"{float(r['precision']):.3f} ({r['removed']}, {r['false_removals']}) | "
                   f"{float(r['kept_original']):.2f} | {float(r['seconds']):.1f} |")
    cells = [r for r in rows if r["kind"] != "ALL"]
    for modality in ("images", "texts"):
        mod_methods = [m for m in methods if any(r["method"] == m and r["modality"] == modality for r in alls)]
        origins = list(dict.fromkeys(r["origin"] for r in cells if r["modality"] == modality))
        heldout = [r for r in cells if r["modality"] == modality and r["role"] == "heldout"]
        scopes = [("held-out origins pooled", heldout)]
        scopes += [(f"origin {o}", [r for r in cells if r["origin"] == o]) for o in origins] if per_origin else []
        for label, sel in scopes:
            if sel:
                out += ["", *_kind_table(sel, modality, mod_methods, label)]
    wrong = [r for r in cells if int(r["false_removals"] or 0)]
    if wrong:
        out += ["", "Copies removed for an item of another group (origin kind@strength count; a method with "
                "more than 12 such cells: totals only):", ""]
        for m in methods:
            ws = [r for r in wrong if r["method"] == m]
            if len(ws) > 12:
                per = defaultdict(int)
                for r in ws:
                    per[r["origin"]] += int(r["false_removals"])
                out.append(f"- {_short(m)}: " + ", ".join(f"{o} {n} copies" for o, n in per.items()))
            elif ws:
                out.append(f"- {_short(m)}: " + ", ".join(f"{r['origin']} {r['kind']}@{r['strength']} "
                                                         f"{r['false_removals']}" for r in ws))
    return "\n".join(out) + "\n"


def _kind_table(sel: list[dict], modality: str, methods: list[str], label: str) -> list[str]:
    """Recall weak / middle / strong per kind and method; a dagger where a cell's removal precision is below 1."""
    origins = ", ".join(dict.fromkeys(r["origin"] for r in sel))
    rec = _pooled(sel, lambda r: (r["method"], r["kind"], r["strength"]))
    impure = {(r["method"], r["kind"], r["strength"]) for r in sel if int(r["false_removals"] or 0)}
    out = [f"**{modality}, {label} ({origins})**: recall weak / middle / strong ({_pooled_n(sel)} copies per "
           "cell); **bold**: middle strength below 0.95; †: a copy of that cell removed for an item of another group",
           "", "| kind | strengths | " + " | ".join(_short(m) for m in methods) + " |",
           "| --- | --- |" + " --- |" * len(methods)]
    edits = IMAGE_EDITS if modality == "images" else TEXT_EDITS
    for kind, (_, _, names) in edits.items():
        vals = []
        for m in methods:
            parts = []
            for s in STRENGTHS:
                v = rec.get((m, kind, s))
                text = "–" if v is None else (f"**{v:.2f}**" if s == "middle" and v < 0.95 else f"{v:.2f}")
                parts.append(text + ("†" if (m, kind, s) in impure else ""))
            vals.append(" / ".join(parts))
        out.append(f"| {kind} | {' / '.join(names)} | " + " | ".join(vals) + " |")
    return out


def _pooled_n(rows: list[dict]) -> str:
    ns = defaultdict(int)
    for r in rows:
        ns[(r["method"], r["kind"], r["strength"])] += int(r["copies"])
    vals = sorted(set(ns.values()))
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"


GROUPS = {"images": ("compression & scale", "geometry", "photometric", "overlay", "two edits"),
          "texts": ("surface", "noise", "content", "markup")}


COLOURS = {"near": "tab:green", "fuzzy": "tab:orange", "semantic": "tab:blue", "PHash": "tab:red",
           "DHash": "tab:purple", "WHash": "tab:brown", "datasketch": "tab:grey"}


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Recall against strength, one panel per kind group, one line per method (its removal precision in the
    legend), pooled over the held-out origins (the tune origin where no held-out one ran)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 6, figsize=(19, 7), sharey=True, gridspec_kw={"width_ratios": [1] * 5 + [0.8]})
    for row_axes, modality in zip(axes, ("images", "texts")):
        sel = [r for r in rows if r["modality"] == modality]
        if any(r["role"] == "heldout" for r in sel):
            sel = [r for r in sel if r["role"] == "heldout"]
        cells = [r for r in sel if r["kind"] != "ALL"]
        rec = _pooled(cells, lambda r: (r["method"], r["group"], r["strength"]))
        methods = list(dict.fromkeys(r["method"] for r in cells))
        origins = ", ".join(dict.fromkeys(r["origin"] for r in sel))
        for ax, group in zip(row_axes[:5], GROUPS[modality] + ("",) * 5):
            if not group:
                ax.axis("off")
                continue
            for m in methods:
                alls = [r for r in sel if r["kind"] == "ALL" and r["method"] == m]
                removed = sum(int(r["removed"]) for r in alls)
                wrong = sum(int(r["false_removals"]) for r in alls)
                precision = (removed - wrong) / removed if removed else float("nan")
                name = _short(m)
                ax.plot(STRENGTHS, [rec.get((m, group, s), float("nan")) for s in STRENGTHS], marker="o",
                        label=f"{name} (precision {precision:.2f})", lw=2.5 if name == "near" else 1.3,
                        color=next((c for k, c in COLOURS.items() if name.startswith(k)), None))
            ax.set_title(f"{modality}: {group}", fontsize=9)
            ax.set_ylim(-0.03, 1.03)
            ax.axhline(0.95, color="grey", lw=0.6, ls=":")
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("pair recall")
        handles, labels = row_axes[0].get_legend_handles_labels()
        row_axes[5].axis("off")
        if handles:
            row_axes[5].legend(handles, labels, loc="center left", fontsize=8, title=f"{modality}: {origins}",
                               title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
