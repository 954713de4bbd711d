"""``curate explain``: why two items did or did not match in the latest dedup run."""

from __future__ import annotations

import json

import click

from curate.cli.options import workspace_option


@click.command("explain")
@workspace_option
@click.argument("first", metavar="ID1")
@click.argument("second", metavar="ID2")
@click.option("--run", "run_id", default=None, metavar="RUN_ID", help="A dedup run other than the latest.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for tools) instead of the table.")
def command(workspace, first, second, run_id, as_json) -> None:
    """Show each signal's score and bar for two ids, and what the latest dedup run decided.

    Measures the pair with the functions `curate dedup --method fuzzy/near` use, under the
    latest dedup run's settings (near's defaults when that run used another method):
    identical bytes; for texts the n-gram Jaccard (and whether MinHash LSH proposes the pair)
    and near's edit similarity; for images the perceptual-hash Hamming distance, the colour
    rule of featureless images, and the aligned copy similarity against the pair's calibrated
    bar; the embedding cosine when a store holds both; then the verifier's verdict and the
    run's decision for both ids (group, kept or removed, duplicate_of). Reads only.

    \b
    curate explain -w ws img/cat.jpg img/cat-copy.jpg
    curate explain -w ws a b --json
    """
    from curate.dedup.explain import explain_pair
    from curate.workspace import Workspace

    found = explain_pair(Workspace(workspace), first, second, run_id)
    click.echo(json.dumps(found.to_dict(), default=str) if as_json else render(found))


def render(found) -> str:
    """The explanation as lines a person reads: a table of signals, then the decision."""
    a, b = found.ids
    kinds = "/".join(sorted({k or "?" for k in found.kinds}))
    lines = [f"explain {a}  ~  {b}  ({kinds}; dedup run {found.run_id}, method {found.method})",
             f"  {'signal':12s} {'score':>9s}  {'bar':>12s}  result"]
    for s in found.signals:
        number = _count if s.signal in ("phash", "canonical", "window") else _number  # differing bits: a count
        score = "-" if s.score is None else number(s.score)
        bar = "" if s.bar is None else ("<= " if not s.higher_is_closer else ">= ") + number(s.bar)
        result = {True: "met", False: "missed", None: "-"}[s.met]
        if s.signal == "exact":
            result = "same bytes" if s.met else "different"
            score, bar = "", ""
        elif s.signal == "verified":
            result = "COPY" if s.met else "not a copy"
        lines.append(f"  {s.signal:12s} {score:>9s}  {bar:>12s}  {result}" + (f"   ({s.note})" if s.note else ""))
    lines.append("decision: " + ("same group " + str(found.decision[a].get("group")) if found.same_group
                                 else "not in one group"))
    for i in found.ids:
        row = found.decision[i]
        if not row:
            lines.append(f"  {i}: not in the run's table")
            continue
        fate = "kept" if row.get("kept") else f"removed ({row.get('reason')})"
        extra = [f"duplicate_of {row['duplicate_of']}"] if row.get("duplicate_of") else []
        extra += [f"{k} {_number(row[k]) if isinstance(row[k], float) else row[k]}"
                  for k in ("score", "signal") if row.get(k) is not None and not row.get("kept")]
        lines.append(f"  {i}: {fate}" + (", " + ", ".join(extra) if extra else ""))
    pair = found.verified_pair
    if pair is not None:
        lines.append(f"  in the run's verified pairs: score {_number(pair['score'])}, signal {pair['signal']}")
    elif found.method in ("fuzzy", "near"):
        lines.append("  not in the run's verified pairs")
    return "\n".join(lines)


def _number(x: float) -> str:
    return f"{x:.4f}"


def _count(x: float) -> str:
    return f"{x:.0f}"
