"""``curate ingest``."""

from __future__ import annotations

import os

import click

from curate.cli.options import progress_option, workspace_option
from curate.ingest import IngestConfig, ingest
from curate.probe.image import ImageCheck
from curate.probe.text import TextCheck
from curate.readers import READERS
from curate.readers.base import Fields, ReadOptions
from curate.summary import manifest_summary
from curate.workspace import Workspace


@click.command("ingest")
@click.argument("sources", nargs=-1, required=True)
@workspace_option
@click.option("--kind", type=click.Choice(["auto", *READERS]), default="auto", show_default=True,
              help="Reader for every source; auto picks by extension (folder = image folder).")
@click.option("--id-field", default="id", show_default=True, help="Id field/column (JSONL, CSV, Parquet).")
@click.option("--text-field", default="text", show_default=True, help="Text field/column.")
@click.option("--image-field", default="image", show_default=True,
              help="Parquet image column: bytes, {bytes, path} struct, or paths.")
@click.option("--label-field", default="label", show_default=True, help="Label field/column.")
@click.option("--split-field", default="split", show_default=True, help="Split field/column.")
@click.option("--embedding-field", default=None, help="Parquet column of precomputed embeddings to validate.")
@click.option("--max-pixels", default=ImageCheck.max_pixels, show_default=True, type=int,
              help="Images above width*height are quarantined as decompression bombs.")
@click.option("--check", type=click.Choice(["decode", "header"]), default="decode", show_default=True,
              help="decode: fully decode images to catch truncation; header: size/mode only (faster).")
@click.option("--max-text-bytes", default=TextCheck.max_bytes, show_default=True, type=int)
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, type=int,
              help="Threads for reading and probing.")
@click.option("--files-per-unit", default=ReadOptions.files_per_unit, show_default=True, type=int,
              help="Image-folder files per resumable unit (shard files are one unit each).")
@click.option("--glob", "glob_", is_flag=True,
              help="Expand *, ? and [...] in SOURCES (without it every path is literal).")
@click.option("--rehash", is_flag=True,
              help="Read every source again, even files whose size and mtime are unchanged.")
@progress_option
def command(sources, workspace, kind, id_field, text_field, image_field, label_field, split_field,
            embedding_field, max_pixels, check, max_text_bytes, workers, files_per_unit,
            glob_, rehash, progress) -> None:
    """Read SOURCES into the workspace manifest (one row per sample).

    SOURCES are folders of images (labels from sub-folders, split from a top folder named
    train/val/test), WebDataset .tar shards, Parquet files, JSONL or CSV text files, or
    folders of them (or patterns, with --glob); local paths or URIs, taken literally. The
    manifest is exactly these sources in this order. Bad inputs are quarantined with a
    reason, never dropped. Rerunning skips shards that are unchanged since the last run
    (--rehash reads everything again).
    """
    config = IngestConfig(
        kind=kind,
        read=ReadOptions(
            fields=Fields(id=id_field, text=text_field, image=image_field, label=label_field,
                          split=split_field, embedding=embedding_field),
            image=ImageCheck(max_pixels=max_pixels, decode=check == "decode"),
            text=TextCheck(max_bytes=max_text_bytes),
            workers=workers,
            files_per_unit=files_per_unit,
        ),
        progress=progress,
        glob=glob_,
        rehash=rehash,
    )
    ws = Workspace(workspace)
    result = ingest(ws, list(sources), config)
    rate = result.samples / result.seconds if result.seconds else 0.0
    click.echo(f"ingest: {result.samples:,} samples in {result.seconds:.1f}s ({rate:,.0f}/s); "
               f"shards read {result.units_read}, unchanged {result.units_skipped}")
    click.echo(manifest_summary(ws.read_manifest(["kind", "status", "reason", "split", "label"])))
    for folder in result.skipped:
        click.echo(f"  skipped  {folder}")
    click.echo(f"  manifest {ws.manifest_dir.uri}")
