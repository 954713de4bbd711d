"""Options shared by several commands."""

from __future__ import annotations

import click

workspace_option = click.option(
    "-w", "--workspace", required=True, envvar="CURATE_WORKSPACE", show_envvar=True,
    metavar="WS", help="Workspace folder or URI (s3://, gs://, hdfs://, memory://).",
)
progress_option = click.option(
    "--progress/--no-progress", default=True, show_default=True,
    help="Show progress bars (only on a terminal).",
)
