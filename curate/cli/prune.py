"""``curate prune``."""

from __future__ import annotations

import click

from curate.cli.options import workspace_option
from curate.decisions import copy_out, decision_counts
from curate.workspace import Workspace


@click.command("prune")
@workspace_option
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
@click.option("--model", default=None, help="Embedding store (model slug); default: the only one.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, metavar="PATH",
              help="Also write the decision table here (.parquet, or .csv by extension).")
def command(workspace, fraction, count, strategy, balance_by, target_distribution, keep, labeled, clusters, model,
            device, seed, out) -> None:
    """Prune what earlier stages kept to a target size; writes decisions/prune/<run-id>.parquet.

    Candidates are the items the latest dedup run kept (all ok items when there is none)
    that have an embedding; items removed upstream keep their reason (e.g. "dedup:
    semantic-duplicate"), pruned candidates get "pruned". Every row has the strategy's
    score (kcenter: distance to the nearest center; prototypes: distance to the cluster
    prototype) and kept rows a rank: a prefix of the rank order is a smaller selection.
    """
    from curate.select.prune import PruneConfig, prune

    ws = Workspace(workspace)
    result = prune(ws, PruneConfig(
        fraction=fraction, count=count, strategy=strategy, balance_by=balance_by,
        target_distribution=target_distribution, keep=keep, labeled=labeled, clusters=clusters, model=model,
        seed=seed, device=device))
    run, report = result.run, result.report
    counts = decision_counts(run.table)
    removed = ", ".join(f"{reason} {n:,}" for reason, n in counts.items() if reason != "kept")
    click.echo(f"prune ({strategy}): {run.table.num_rows:,} samples, {report['candidates']:,} candidates"
               f" + {report['labeled_kept']:,} labeled -> kept {counts['kept']:,} (target {report['target']:,})"
               + (f"; removed: {removed}" if removed else ""))
    if report.get("clusters"):
        click.echo(f"  clusters {report['clusters']:,}")
    if report.get("radius") is not None:
        scope = " of its class" if report.get("quotas") else ""
        click.echo(f"  radius   {report['radius']:.4f} (max cosine distance of a candidate to its nearest kept item"
                   f"{scope})")
    if report.get("by_class"):
        shown = list(report["by_class"].items())
        click.echo("  class    before -> after: " + ", ".join(f"{c} {b:,} -> {a:,}" for c, (b, a) in shown[:12])
                   + (f", ... {len(shown) - 12} more" if len(shown) > 12 else ""))
    for message in result.messages:
        click.echo(f"  warning  {message}")
    state = "unchanged, reused" if run.reused else f"written in {result.seconds:.1f}s"
    click.echo(f"  run      {run.run_id} ({state}) {run.path.uri}")
    if out:
        click.echo(f"  copy     {copy_out(run, out).uri}")
