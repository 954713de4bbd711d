"""``curate select --label-issues``: the audit's suspected label errors, sent to a labeling tool."""

from __future__ import annotations

import click

from curate.errors import CurateError

TAKES = ("budget", "out", "format", "data_key", "document_root", "force")


def export_label_issues_command(workspace: str, settings: dict) -> None:
    """Export the latest audit run's label issues; any selection option given besides these is an error."""
    from curate.audit.handoff import export_label_issues
    from curate.workspace import Workspace

    ctx = click.get_current_context()
    given = [name for name in settings if name not in TAKES
             and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise CurateError(f"--label-issues takes --budget, --out, --format, --data-key, --document-root and "
                          f"--force, not --{given[0].replace('_', '-')}")
    done = export_label_issues(Workspace(workspace), settings["budget"], settings["out"], settings["format"],
                               settings["data_key"], settings["document_root"], settings["force"])
    click.echo(f"select (label issues): {len(done.ids):,} of {done.issues:,} label issues of audit run "
               f"{done.run_id}, lowest label score first")
    click.echo(f"  export   {done.export.uri}")
    if done.handoff:
        click.echo(f"  labeling {done.handoff[0].uri}, {done.handoff[1].uri}")
