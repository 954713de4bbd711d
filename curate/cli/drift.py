"""``curate drift``."""

from __future__ import annotations

import sys

import click

from curate.cli.options import run_line, stage_options


@click.command("drift")
@stage_options
@click.option("--reference", "-r", required=True, metavar="REF_WS", help="Reference workspace (same embedding model).")
@click.option("--model", default=None,
              help="Embedding store (model slug or spec) of NEW, present in both; default: the common one (or the "
                   "two bring-your-own precomputed stores, whatever their names, when their dimensions match).")
@click.option("--reference-model", default=None, metavar="SLUG",
              help="REF's embedding store when its name differs from NEW's (e.g. precomputed-y vs precomputed-x); "
                   "dimensions must match.")
@click.option("--alpha", default=0.01, show_default=True, type=float,
              help="Family-wise significance level; each of the 3 tests uses alpha/3 (Bonferroni).")
@click.option("--threshold", default=0.03, show_default=True, type=float,
              help="Smallest effect that counts as drift: KS D, total-variation of cluster mass, sqrt(MMD^2).")
@click.option("--sample", default=2000, show_default=True, type=int, help="Rows sampled from NEW (and per REF half).")
@click.option("--clusters", default=None, type=int, help="k-means clusters on REF (default about sqrt(rows)/2).")
@click.option("--permutations", default=1000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", default=None, metavar="PATH",
              help="Write the full report as JSON here (default: WS/decisions/drift/<run-id>-report.json).")
def command(workspace, progress, wait, reference, model, reference_model, alpha, threshold, sample, clusters,
            permutations, seed, device, out) -> None:
    """Compare a new batch (-w) with a reference workspace in embedding space.

    Tests: nearest-neighbour distance to REF vs REF's own (Kolmogorov-Smirnov), cluster mass
    shift over k-means clusters of REF incl. mass that appeared far from every REF cluster
    (permutation test), and MMD (permutation test). All on seeded samples: bounded memory.

    Exit status: 0 no drift, 1 drift (a test with p < alpha/3 and effect >= --threshold),
    2 error - so it can gate a pipeline. A rerun with the same stores and options reuses the run
    (decisions/drift/<run-id>.json) while its JSON report is unchanged.
    """
    from curate.drift import DriftConfig, read_report, run_drift
    from curate.workspace import Workspace

    result = run_drift(Workspace(workspace), DriftConfig(
        model=model, reference_model=reference_model, sample=sample, clusters=clusters, alpha=alpha,
        min_effect=threshold, permutations=permutations, seed=seed, device=device, reference=reference, out=out),
        progress=progress, wait=wait)
    report = read_report(result)
    flagged = sum(t.drifted for t in report.tests)
    verdict = f"DRIFT ({flagged} of {len(report.tests)} tests)" if report.drifted else "no drift"
    click.echo(f"drift: {report.new['workspace']} ({report.new['valid']:,} embedded, {report.new['sampled']:,} "
               f"sampled) vs {report.reference['workspace']} ({report.reference['valid']:,}) on {report.model}"
               + ("" if report.reference["model"] == report.model else f" vs {report.reference['model']}")
               + f" -> {verdict}")
    click.echo(f"  {'test':<14}{'statistic':>12}{'p-value':>10}{'effect':>9}  verdict")
    for t in report.tests:
        click.echo(f"  {t.name:<14}{t.statistic:>12.4g}{t.p_value:>10.4f}{t.effect:>9.3f}  "
                   f"{'drift' if t.drifted else 'ok'}")
    click.echo(f"  (drift when p < {alpha / len(report.tests):.4g} and effect >= {threshold:g})")
    for title, rows in (("grown", report.grown(3)), ("shrunk", report.shrunk(3))):
        for c in rows:
            click.echo(f"  {title:<9}cluster {c.cluster}: {100 * c.ref_fraction:.1f}% -> {100 * c.new_fraction:.1f}% "
                       f"(p {c.p_value:.3g})" + (f", like {', '.join(c.examples[:2])}" if c.examples else ""))
    a = report.appeared
    q = 100 * report.config["outside_quantile"]
    click.echo(f"  appeared {100 * a.new_fraction:.1f}% of NEW lies beyond REF's {q:g}th-percentile distance to its "
               f"clusters (REF held-out: {100 * a.ref_fraction:.1f}%, p {a.p_value:.3g})"
               + (f", e.g. {', '.join(a.examples[:3])}" if a.examples and a.shift > 0 else ""))
    click.echo(f"  json     {result.meta['out']}")
    click.echo(run_line(result))
    if report.drifted:
        sys.exit(1)
