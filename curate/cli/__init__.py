"""The ``curate`` command line: thin click commands that build stage configs and call stages.

Commands are imported when they run (or show their own --help), never all at start-up, and
no command module imports torch or faiss at import time: ``curate --help`` stays instant.
"""

from __future__ import annotations

import importlib
import sys

import click

from curate import __version__
from curate.errors import CurateError

# name -> (module, one-line help); tests/test_cli_start.py checks each line against the command
COMMANDS = {
    "ingest": ("curate.cli.ingest", "Read SOURCES into the workspace manifest (one row per sample)."),
    "embed": ("curate.cli.embed", "Embed every ok sample into embeddings/<model-slug>/ (fp16, L2-normalised)."),
    "dedup": ("curate.cli.dedup",
              "Remove duplicates; writes decisions/dedup/<run-id>.parquet (one row per manifest id)."),
    "explain": ("curate.cli.explain",
                "Show each signal's score and bar for two ids, and what the latest dedup run decided."),
    "audit": ("curate.cli.audit",
              "Audit every item for wrong labels and junk (blurry, dark, too short, outliers, ...); removes nothing."),
    "prune": ("curate.cli.prune",
              "Prune what earlier stages kept to a target size; writes decisions/prune/<run-id>.parquet."),
    "select": ("curate.cli.select", "Choose the next batch to label and export it for a labeling tool."),
    "override": ("curate.cli.override",
                 "Overrule a stage's decision for some ids (keep/remove, with a note); reruns apply it."),
    "export": ("curate.cli.export", "Write the kept samples as versioned shards with lineage.json."),
    "run": ("curate.cli.run", "Run the whole flow from one pipeline file; rerun to resume."),
    "report": ("curate.cli.report", "Write a self-contained HTML report of a workspace (opens offline)."),
    "drift": ("curate.cli.drift", "Compare a new batch (-w) with a reference workspace in embedding space."),
    "demo": ("curate.cli.demo", "Build an offline demo dataset in FOLDER, with planted duplicates and bad inputs."),
    "doctor": ("curate.cli.doctor",
               "Check this machine: versions, CUDA / FAISS GPU / Triton / Ray, GPUs, and what each stage runs on."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name][0]).command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="curate")
def cli() -> None:
    """GPU-accelerated dataset curation: ingest, deduplicate, select, export.

    A workspace (a local folder or a URI such as s3://bucket/ws) holds everything for one
    dataset. Typical flow: `curate ingest SOURCES -w WS`, `curate embed -w WS`, `curate dedup
    -w WS`, `curate prune -w WS --fraction 0.8`, `curate export -w WS`, or all of it from one
    file with `curate run pipeline.toml`. Every command reuses what is already done.
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
