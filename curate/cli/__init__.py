"""The ``curate`` command line: thin click commands that build stage configs and call stages."""

from __future__ import annotations

import sys

import click

from curate import __version__
from curate.errors import CurateError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="curate")
def cli() -> None:
    """GPU-accelerated dataset curation: ingest, deduplicate, select, export.

    A workspace (a local folder or a URI such as s3://bucket/ws) holds everything for one
    dataset. Typical flow: `curate ingest SOURCES -w WS`, then `curate dedup -w WS`.
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit 2; no traceback."""
    try:
        cli.main(args=argv, prog_name="curate", standalone_mode=False)
    except CurateError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # disk full, permission denied, a vanished file: the system's words, no traceback
        click.echo(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)


def _register() -> None:
    from curate.cli import dedup, demo, doctor, drift, embed, export, ingest, prune, report, run, select

    for module in (ingest, embed, dedup, prune, select, export, run, report, drift, demo, doctor):
        cli.add_command(module.command)


_register()
