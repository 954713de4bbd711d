"""Options shared by several commands, and the lines every stage command prints the same way."""

from __future__ import annotations

import click

workspace_option = click.option(
    "-w", "--workspace", required=True, envvar="CURATE_WORKSPACE", show_envvar=True,
    metavar="WS", help="Workspace folder or URI (s3://, gs://, hdfs://, memory://).",
)
progress_option = click.option(
    "--progress/--no-progress", default=True, show_default=True,
    help="Show progress bars (only ever on a terminal, never in logs).",
)
wait_option = click.option(
    "--wait", is_flag=True, default=False,
    help="If another curate process is writing to the workspace, wait for it instead of stopping.",
)
out_option = click.option(
    "--out", default=None, metavar="PATH",
    help="Also write the decision table here, as its suffix says: .parquet or .csv (another suffix, or an "
         "existing file, is an error).",
)


def stage_options(func):
    """-w/--workspace, --progress/--no-progress and --wait: every command that writes to a workspace."""
    return workspace_option(progress_option(wait_option(func)))


def run_line(result) -> str:
    """``  run      <run-id> (written in 1.2s | unchanged, reused) <table path>``."""
    state = "unchanged, reused" if result.reused else f"written in {result.seconds:.1f}s"
    where = f" {result.path.uri}" if result.path is not None else ""
    return f"  run      {result.run_id} ({state}){where}"


def counts_line(counts: dict[str, int]) -> str:
    removed = ", ".join(f"{reason} {n:,}" for reason, n in counts.items() if reason != "kept")
    return f"kept {counts.get('kept', 0):,}" + (f"; removed: {removed}" if removed else "")
