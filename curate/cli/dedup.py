"""``curate dedup``."""

from __future__ import annotations

import click
import pyarrow.compute as pc

from curate.cli.options import workspace_option
from curate.decisions import copy_out, decision_counts
from curate.dedup.exact import ExactDedupConfig, exact_dedup
from curate.workspace import Workspace


@click.command("dedup")
@workspace_option
@click.option("--method", type=click.Choice(["exact"]), default="exact", show_default=True,
              help="exact: identical bytes (content hash).")
@click.option("--out", default=None, metavar="PATH",
              help="Also write the decision table here (.parquet, or .csv by extension).")
def command(workspace, method, out) -> None:
    """Remove duplicates; writes decisions/dedup/<run-id>.parquet (one row per manifest id).

    exact: samples with identical bytes form a group (numbered by first appearance); the
    first copy in manifest order is kept, the others get reason "exact-duplicate" and
    duplicate_of = the kept id. Quarantined samples get reason "quarantined".
    """
    ws = Workspace(workspace)
    ws.require_manifest()
    run = exact_dedup(ws, ExactDedupConfig())
    counts = decision_counts(run.table)
    groups = pc.count_distinct(run.table.column("group")).as_py()
    state = "unchanged, reused" if run.reused else "written"
    removed = ", ".join(f"{reason} {n:,}" for reason, n in counts.items() if reason != "kept")
    click.echo(f"dedup ({method}): {run.table.num_rows:,} samples -> kept {counts['kept']:,}"
               + (f"; removed: {removed}" if removed else ""))
    click.echo(f"  groups   {groups:,} duplicate groups")
    click.echo(f"  run      {run.run_id} ({state}) {run.path.uri}")
    if out:
        click.echo(f"  copy     {copy_out(run, out).uri}")

