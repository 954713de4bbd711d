"""``curate export``."""

from __future__ import annotations

import re

import click

from curate.cli.options import stage_options
from curate.errors import CurateError

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_bytes(text: str | None) -> int | None:
    """``"500MB"``, ``"1GiB"``, ``"1048576"`` -> bytes; ``None``/``"none"`` -> no limit."""
    if text is None or text.lower() == "none":
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise CurateError(f"--shard-bytes must look like 500MB, 1GiB or 1048576, not {text!r}")
    return int(float(match[1]) * _UNITS[(match[2] or "").upper()])


def parse_runs(pins: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for pin in pins:
        stage, sep, run_id = pin.partition("=")
        if not sep or not stage or not run_id:
            raise CurateError(f"--run takes STAGE=RUN_ID (e.g. dedup=semantic-1a2b3c4d5e6f), not {pin!r}")
        out.append((stage, run_id))
    return tuple(out)


@click.command("export")
@stage_options
@click.option("--out", default=None, metavar="DIR",
              help="Folder for <name>/<version>/ (local or URI). Default: WS/exports.")
@click.option("--format", type=click.Choice(["auto", "webdataset", "parquet"]), default="auto",
              show_default=True, help="auto: WebDataset tar for images, Parquet for texts.")
@click.option("--name", default="curated", show_default=True, help="Export name: shard prefix and folder.")
@click.option("--shard-size", default=10_000, show_default=True, type=int, help="Samples per shard at most.")
@click.option("--shard-bytes", default="1GiB", show_default=True,
              help="About this many bytes per shard at most (500MB, 1GiB, none).")
@click.option("--splits/--no-splits", default=False, show_default=True,
              help="One shard series per manifest split: <name>-<split>-00000.tar.")
@click.option("--stage", multiple=True, default=("dedup", "prune"), show_default=True,
              help="Decision stages to apply (their latest run): dedup, audit, prune, select; repeat. Stages without a "
                   "run are skipped.")
@click.option("--run", multiple=True, metavar="STAGE=RUN_ID",
              help="Apply this run of a stage instead of its latest; repeat.")
@click.option("--drop", multiple=True, default=(), metavar="CHECK,...",
              help="Apply the latest audit run and leave out items it flagged with these checks (e.g. blurry; "
                   "label-issue). Default: none.")
def command(workspace, progress, wait, shard_bytes, run, drop, **settings) -> None:
    """Write the kept samples as versioned shards with lineage.json.

    Applies the decision tables of the chosen stages (default: the latest dedup and prune
    runs) and writes only samples that every one kept and that are not quarantined, to
    OUT/<name>/<version>/: shards (WebDataset tar: original bytes + .json + .cls; or Parquet
    with Hugging Face Image/ClassLabel metadata), samples.parquet (every manifest id: the
    shard it went to, or the stage and reason that removed it) and lineage.json (inputs,
    stage configs and runs, package versions, counts per stage and reason, labels
    before/after, shard hashes). The version is a content hash: re-exporting the same inputs
    gives the same version and rewrites nothing; old versions stay.
    """
    from curate.audit.drops import drop_names
    from curate.export.stage import ExportConfig, export
    from curate.settings import build_config
    from curate.workspace import Workspace

    config = build_config(ExportConfig, {**settings, "shard_bytes": parse_bytes(shard_bytes),
                                         "run": parse_runs(run), "drop": drop_names(drop)}, "export")
    result = export(Workspace(workspace), config, progress=progress, wait=wait)
    click.echo(export_summary(result))


def export_summary(result) -> str:
    meta = result.meta
    state = "unchanged, reused" if result.reused else "written"
    lines = [f"export {meta['config']['name']} version {meta['version']} ({state}): {meta['exported']:,} "
             f"samples in {len(meta['shards'])} {meta['format']} shard(s)"]
    for stage in meta["funnel"]:
        removed = ", ".join(f"{k} {v:,}" for k, v in stage["removed"].items()) or "nothing removed"
        lines.append(f"  {stage['stage']:<8} {stage['in']:,} -> {stage['out']:,} ({removed})")
    lines.append(f"  folder   {meta['folder']}")
    return "\n".join(lines)
