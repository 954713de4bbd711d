"""``curate override``: record review decisions (keep / remove an id) that a stage's decisions respect."""

from __future__ import annotations

import click

from curate.cli.options import wait_option, workspace_option


@click.command("override")
@workspace_option
@wait_option
@click.option("--stage", type=click.Choice(["dedup", "prune", "select", "audit"]), default=None,
              help="The stage whose decisions the overrides change (needed with --keep/--remove/--forget).")
@click.option("--keep", "keep", multiple=True, metavar="ID", help="Keep this id whatever the stage decides (repeat).")
@click.option("--remove", "remove", multiple=True, metavar="ID",
              help="Remove this id whatever the stage decides (repeat).")
@click.option("--forget", "forget", multiple=True, metavar="ID",
              help="Drop the override of this id: the stage decides again (repeat).")
@click.option("--note", default="", help="Why; shown as the reason 'override: NOTE' in the decision table.")
@click.option("--from", "from_file", default=None, metavar="FILE",
              help="Record the overrides in FILE (saved by the report's review page, or written by hand: "
                   '[{"stage": "dedup", "id": "...", "action": "keep", "note": "..."}]).')
@click.option("--list", "show", is_flag=True, help="List the overrides in force (and ids the manifest lacks).")
def command(workspace, wait, stage, keep, remove, forget, note, from_file, show) -> None:
    """Overrule a stage's decision for some ids (keep/remove, with a note); reruns apply it.

    Overrides are kept in WS/review/overrides.json. Each deciding stage (dedup, prune,
    select, audit) reads the ones in force for it as an input: rerunning the stage (or
    `curate run`) applies them without recomputing, marks the rows `overridden` with the
    reason "override: NOTE", and prune, select and export downstream follow. Ids that are
    not in the manifest are reported and never applied.

    \b
    curate override -w ws --stage dedup --keep img-17 --keep img-18 --note "not duplicates"
    curate override -w ws --from overrides.json     # saved by report.html's review page
    curate override -w ws --list
    """
    from curate import overrides
    from curate.errors import CurateError
    from curate.runner import writing
    from curate.workspace import Workspace

    ws = Workspace(workspace)
    ws.require_manifest()
    records = [overrides.Override(stage or "", i, action, note)
               for action, ids in (("keep", keep), ("remove", remove), ("forget", forget)) for i in ids]
    if records and stage is None:
        raise CurateError("--keep/--remove/--forget need --stage (dedup, prune, select or audit)")
    if from_file:
        records += overrides.load_file(from_file, default_stage=stage)
    if not records and not show:
        raise CurateError("nothing to do: give --keep/--remove/--forget ID with --stage, --from FILE, or --list")
    if records:
        with writing(ws, "curate override", wait=wait):
            added = overrides.add(ws, records)
        click.echo(f"recorded {len(added):,} override(s) in {overrides.overrides_path(ws).uri}; "
                   "rerun the stage (or `curate run`) to apply")
    if show or records:
        _list(ws, stage)


def _list(ws, stage: str | None) -> None:
    from curate import overrides

    ids = ws.read_manifest(["id"]).column("id")
    for name in [stage] if stage else list(overrides.STAGES):
        current = overrides.for_stage(ws, name, ids)
        for sid, rec in current.records.items():
            click.echo(f"{name:7s} {rec.action:6s} {sid}  {rec.note}")
        for sid in current.unknown:
            click.echo(f"{name:7s} not in the manifest (not applied): {sid}")
