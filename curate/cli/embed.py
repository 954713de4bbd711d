"""``curate embed``."""

from __future__ import annotations

import os

import click

from curate.cli.options import progress_option, workspace_option
from curate.workspace import Workspace


@click.command("embed")
@workspace_option
@click.option("--model", default="perceptual", show_default=True, metavar="SPEC",
              help="perceptual | minilm | openclip:<arch>/<pretrained> | openclip:<arch>@/path/ckpt.pt | "
                   "precomputed:<column> | precomputed:/path/file.npy")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["fp16", "bf16", "fp32"]), default="fp16", show_default=True,
              help="Model precision on GPU (CPU runs fp32 for fp16). Stored vectors are always fp16.")
@click.option("--batch-size", default=256, show_default=True, type=int)
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, type=int,
              help="Data-loader worker processes (read + decode + preprocess).")
@click.option("--shard-size", default=16384, show_default=True, type=int,
              help="Samples per resumable shard of the store.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: an actor pool with one embedder per GPU (RAY_ADDRESS or a local Ray).")
@progress_option
def command(workspace, model, device, precision, batch_size, workers, shard_size, executor, progress) -> None:
    """Embed every ok sample into embeddings/<model-slug>/ (fp16, L2-normalised).

    Writes vectors.npy (memory-mappable, one row per embedded sample in manifest order),
    ids.parquet, status.parquet (one row per manifest id: embedded, or why not) and
    meta.json. Resumable: a rerun skips finished shards; a finished store is reused.
    """
    from curate.embed.stage import EmbedConfig, embed  # torch loads only for this command

    config = EmbedConfig(model=model, device=device, precision=precision, batch_size=batch_size,
                         workers=workers, shard_size=shard_size, executor=executor, progress=progress)
    result = embed(Workspace(workspace), config)
    rate = result.count / result.seconds if result.seconds else 0.0
    click.echo(f"embed ({result.slug}, {result.device}): {result.count:,} samples -> embedded "
               f"{result.embedded:,}, failed {result.failed:,} in {result.seconds:.1f}s ({rate:,.0f}/s); "
               f"shards done {result.shards_done}, reused {result.shards_skipped}")
