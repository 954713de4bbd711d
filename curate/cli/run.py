"""``curate run``."""

from __future__ import annotations

import time

import click

from curate.cli.options import progress_option, wait_option


@click.command("run")
@click.argument("pipeline", metavar="PIPELINE.toml")
@progress_option
@wait_option
def command(pipeline, progress, wait) -> None:
    """Run the whole flow from one pipeline file; rerun to resume.

    PIPELINE.toml names a `workspace` and has one table per stage to run, in flow order:
    [demo] [ingest] [embed] [dedup] [prune] [select] [export] [report]. Keys are the stage's
    settings (as in the stage commands, CLI option names: shard-size or shard_size, threshold...). Every
    stage skips what is already done, so rerunning after a crash or a pre-empted node
    finishes the rest with identical results. See examples/ for complete files.
    """
    from curate.pipeline import run_pipeline

    start = time.perf_counter()

    def show(outcome) -> None:
        click.echo(f"[{outcome.stage:<7}] {outcome.seconds:6.1f} s  {outcome.summary}")

    outcomes = run_pipeline(pipeline, progress=progress, on_stage=show, wait=wait)
    click.echo(f"pipeline finished: {len(outcomes)} stages in {time.perf_counter() - start:.1f} s")
