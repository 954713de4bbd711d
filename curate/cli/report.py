"""``curate report``."""

from __future__ import annotations

import click

from curate.cli.options import run_line, stage_options


@click.command("report")
@stage_options
@click.option("--out", default=None, metavar="PATH",
              help="Where to write the page: a .html file, or a folder (gets report.html). Default: WS/report.html.")
@click.option("--model", default=None, help="Embedding store (model slug) for the map; default: the dedup run's.")
@click.option("--max-groups", default=100_000, show_default=True, type=int,
              help="Duplicate groups in the paged review (largest first); every group when the run has fewer.")
@click.option("--max-previews", default=1000, show_default=True, type=int,
              help="Thumbnails / text snippets in the review, for the first listed members; the rest by id.")
@click.option("--max-points", default=5000, show_default=True, type=int, help="Points drawn on the embedding map.")
@click.option("--run", "runs", multiple=True, metavar="STAGE=RUN_ID",
              help="Use this run of a stage instead of its latest (repeatable), e.g. dedup=semantic-0123abcd.")
@click.option("--seed", default=0, show_default=True, type=int)
def command(workspace, progress, wait, out, model, max_groups, max_previews, max_points, runs, seed) -> None:
    """Write a self-contained HTML report of a workspace (opens offline).

    Shows counts per stage and reason, label balance before/after dedup and prune, cluster
    sizes, every duplicate group (paged, filtered by reason, method and score band; thumbnails
    or text snippets for the first ones), a neighbour-preserving 2-D map of the embeddings
    coloured by each sample's fate, and prune/select score histograms with the top picks.
    Bounded work: sampled map, only previewed samples are read. A rerun with the same runs, store
    and options reuses the page while it is unchanged (decisions/report/<run-id>.json).
    """
    from curate.errors import CurateError
    from curate.report.build import ReportConfig
    from curate.report.stage import report
    from curate.workspace import Workspace

    run_ids = {}
    for item in runs:
        stage, sep, run_id = item.partition("=")
        if not sep or not stage or not run_id:
            raise CurateError(f"--run takes STAGE=RUN_ID, not {item!r}")
        run_ids[stage] = run_id
    result = report(Workspace(workspace), ReportConfig(out=out, max_groups=max_groups, max_previews=max_previews,
                                                       max_points=max_points, seed=seed, run_ids=run_ids or None,
                                                       model=model), progress=progress, wait=wait)
    click.echo(f"report: {result.meta['out']} in {result.seconds:.1f}s")
    click.echo(run_line(result))
