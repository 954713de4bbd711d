"""``curate prune``."""

from __future__ import annotations

import click

from curate.cli.options import out_option, run_line, stage_options


@click.command("prune")
@stage_options
@click.option("--fraction", type=float, default=None, help="Keep this fraction (0, 1] of the candidates + labeled.")
@click.option("--count", type=int, default=None, help="Keep this many items (labeled ones included).")
@click.option("--strategy", type=click.Choice(["kcenter", "prototypes", "balanced"]), default="kcenter",
              show_default=True,
              help="kcenter: k-center greedy (coreset, maximal coverage). prototypes: k-means, keep hard/easy "
                   "items per cluster in proportion to its size (SSP). balanced: equal shares per cluster.")
@click.option("--balance-by", default=None, metavar="COLUMN",
              help="Manifest column (e.g. label) whose classes get equal quotas; the shortfall of a small "
                   "class goes to the others.")
@click.option("--target-distribution", default=None, metavar="CLASS=W,...",
              help="Quotas by weight, e.g. cat=0.5,dog=0.5 (classes not listed keep nothing); implies "
                   "--balance-by label.")
@click.option("--keep", type=click.Choice(["hard", "easy"]), default="hard", show_default=True,
              help="prototypes/balanced: keep items far from (hard) or close to (easy) their cluster prototype.")
@click.option("--labeled", default=None, metavar="FILE",
              help="Ids always kept (one per line, or .parquet/.csv with an id column); k-center starts from them.")
@click.option("--clusters", type=int, default=None, help="prototypes/balanced: k-means clusters (default ~sqrt(N)).")
@click.option("--model", default=None,
              help="Embedding store (model slug or spec); default: the only one, else the one the latest dedup used.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--drop", multiple=True, default=(), metavar="CHECK,...",
              help="Also remove items the latest audit run flagged with these checks (e.g. blurry,label-conflict; "
                   "label-issue), reason \"audit: <check>\". Default: none.")
@out_option
def command(workspace, progress, wait, out, drop, **settings) -> None:
    """Prune what earlier stages kept to a target size; writes decisions/prune/<run-id>.parquet.

    Candidates are the items the latest dedup run kept (all ok items when there is none)
    that have an embedding; items removed upstream keep their reason (e.g. "dedup:
    semantic-duplicate"), pruned candidates get "pruned". Every row has the strategy's
    score (kcenter: distance to the nearest center; prototypes: distance to the cluster
    prototype) and kept rows a rank: a prefix of the rank order is a smaller selection.
    """
    from curate.api import check_out_path
    from curate.audit.drops import drop_names
    from curate.decisions import copy_out, out_format
    from curate.prune.stage import PruneConfig, prune
    from curate.settings import build_config
    from curate.workspace import Workspace

    check_out_path(out)
    if out:
        out_format(out)  # an unknown suffix is an error before any work
    config = build_config(PruneConfig, {**settings, "drop": drop_names(drop)}, "prune")
    result = prune(Workspace(workspace), config, progress=progress, wait=wait)
    click.echo(prune_summary(result))
    if out:
        click.echo(f"  copy     {copy_out(result, out).uri}")


def _removed(counts: dict[str, int]) -> str:
    removed = ", ".join(f"{reason} {n:,}" for reason, n in counts.items() if reason != "kept")
    return f"; removed: {removed}" if removed else ""


def prune_summary(result) -> str:
    report = result.meta
    lines = [f"prune ({report['strategy']}): {result.table.num_rows:,} samples, {report['candidates']:,} candidates"
             f" + {report['labeled_kept']:,} labeled -> kept {result.counts['kept']:,} (target {report['target']:,})"
             + _removed(result.counts)]
    if report.get("clusters"):
        lines.append(f"  clusters {report['clusters']:,}")
    if report.get("radius") is not None:
        scope = " of its class" if report.get("quotas") else ""
        lines.append(f"  radius   {report['radius']:.4f} (max cosine distance of a candidate to its nearest kept "
                     f"item{scope})")
    if report.get("by_class"):
        shown = list(report["by_class"].items())
        lines.append("  class    before -> after: " + ", ".join(f"{c} {b:,} -> {a:,}" for c, (b, a) in shown[:12])
                     + (f", ... {len(shown) - 12} more" if len(shown) > 12 else ""))
    lines += [f"  warning  {message}" for message in report["messages"]]
    lines.append(run_line(result))
    return "\n".join(lines)
