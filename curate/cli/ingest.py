"""``curate ingest``."""

from __future__ import annotations

import os

import click

from curate.cli.options import stage_options

# what the help shows; tests/test_settings.py checks each against the config dataclasses
READER_NAMES = ("imagefolder", "webdataset", "parquet", "jsonl", "csv")
MAX_PIXELS = 100_000_000
MAX_TEXT_BYTES = 1_000_000
FILES_PER_UNIT = 2048


@click.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@stage_options
@click.option("--kind", type=click.Choice(["auto", *READER_NAMES]), default="auto", show_default=True,
              help="Reader for every source; auto picks by extension (folder = image folder).")
@click.option("--id-field", default="id", show_default=True, help="Id field/column (JSONL, CSV, Parquet).")
@click.option("--text-field", default="text", show_default=True, help="Text field/column.")
@click.option("--image-field", default="image", show_default=True,
              help="Parquet image column: bytes, {bytes, path} struct, or paths.")
@click.option("--label-field", default="label", show_default=True, help="Label field/column.")
@click.option("--split-field", default="split", show_default=True, help="Split field/column.")
@click.option("--embedding-field", default=None, help="Parquet column of precomputed embeddings to validate.")
@click.option("--max-pixels", default=MAX_PIXELS, show_default=True, type=int,
              help="Images above width*height are quarantined as decompression bombs.")
@click.option("--check", type=click.Choice(["decode", "header"]), default="decode", show_default=True,
              help="decode: fully decode images to catch truncation; header: size/mode only (faster).")
@click.option("--max-text-bytes", default=MAX_TEXT_BYTES, show_default=True, type=int)
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, type=int,
              help="Threads for reading and probing.")
@click.option("--files-per-unit", default=FILES_PER_UNIT, show_default=True, type=int,
              help="Image-folder files per resumable unit (shard files are one unit each).")
@click.option("--glob", "glob_", is_flag=True, default=False,
              help="Expand *, ? and [...] in SOURCES (without it every path is literal).")
@click.option("--rehash", is_flag=True, default=False,
              help="Read every source again, even files whose size and mtime are unchanged.")
def command(sources, workspace, progress, wait, glob_, **settings) -> None:
    """Read SOURCES into the workspace manifest (one row per sample).

    SOURCES are folders of images (labels from sub-folders, split from a top folder named
    train/val/test), WebDataset .tar shards, Parquet files, JSONL or CSV text files, or
    folders of them (or patterns, with --glob); local paths or URIs, taken literally. The
    manifest is exactly these sources in this order. Bad inputs are quarantined with a
    reason, never dropped. Rerunning skips shards that are unchanged since the last run
    (--rehash reads everything again).
    """
    from curate.ingest import ingest, ingest_config
    from curate.summary import manifest_summary
    from curate.workspace import Workspace

    config = ingest_config({**settings, "glob": glob_})
    ws = Workspace(workspace)
    result = ingest(ws, list(sources), config, progress=progress, wait=wait)
    click.echo(ingest_summary(result))
    click.echo(manifest_summary(ws.read_manifest(["kind", "status", "reason", "split", "label"])))
    for folder in result.meta["skipped"]:
        click.echo(f"  skipped  {folder}")
    click.echo(f"  manifest {ws.manifest_dir.uri}")


def ingest_summary(result) -> str:
    m = result.meta
    if result.reused:
        return f"ingest: {m['samples']:,} samples, every source unchanged since run {result.run_id}: nothing read"
    rate = m["samples"] / result.seconds if result.seconds else 0.0
    return (f"ingest: {m['samples']:,} samples in {result.seconds:.1f}s ({rate:,.0f}/s); "
            f"shards read {m['units_read']}, unchanged {m['units_skipped']}")
