"""``curate dedup``."""

from __future__ import annotations

import click

from curate.cli.options import workspace_option
from curate.decisions import copy_out
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
    counts = _counts(run.table)
    state = "unchanged, reused" if run.reused else "written"
    click.echo(f"dedup ({method}): {run.table.num_rows:,} samples -> kept {counts['kept']:,}, "
               f"exact-duplicate {counts['exact-duplicate']:,}, quarantined {counts['quarantined']:,}")
    click.echo(f"  groups   {counts['groups']:,}")
    click.echo(f"  run      {run.run_id} ({state}) {run.path.uri}")
    if out:
        click.echo(f"  copy     {copy_out(run, out).uri}")


def _counts(table) -> dict[str, int]:
    reasons = table.column("reason").to_pylist()
    groups = {g for g in table.column("group").to_pylist() if g is not None}
    return {"kept": sum(table.column("kept").to_pylist()),
            "exact-duplicate": reasons.count("exact-duplicate"),
            "quarantined": reasons.count("quarantined"), "groups": len(groups)}
