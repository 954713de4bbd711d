"""``curate embed``."""

from __future__ import annotations

import os

import click

from curate.cli.options import run_line, stage_options


@click.command("embed")
@stage_options
@click.option("--model", default="perceptual", show_default=True, metavar="SPEC",
              help="perceptual | minilm | st:/path/to/model-folder | openclip:<arch>/<pretrained> | "
                   "openclip:<arch>@/path/ckpt.pt | precomputed:<column> | precomputed:/path/file.npy")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["fp16", "bf16", "fp32"]), default="fp16", show_default=True,
              help="Model precision on GPU (CPU runs fp32 for fp16). Stored vectors are always fp16.")
@click.option("--batch-size", default=256, show_default=True, type=int)
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, type=int,
              help="Data-loader worker processes (read + decode + preprocess); 0 reads in this process. "
                   "Text models always prepare in this process.")
@click.option("--shard-size", default=None, type=int,
              help="Samples per resumable shard of the store (default: 16,384 for models, 262,144 for "
                   "precomputed vectors, which are imported without a model).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: an actor pool with one embedder per GPU (RAY_ADDRESS or a local Ray).")
def command(workspace, progress, wait, **settings) -> None:
    """Embed every ok sample into embeddings/<model-slug>/ (fp16, L2-normalised).

    Writes vectors.npy (memory-mappable, one row per embedded sample in manifest order),
    ids.parquet, status.parquet (one row per manifest id: embedded, or why not) and
    meta.json. Resumable: a rerun skips finished shards; a finished store is reused. After
    a re-ingest, only new or changed samples are embedded; the rest are copied over.
    """
    from curate.embed.stage import EmbedConfig, embed  # torch loads only for this command
    from curate.settings import build_config
    from curate.workspace import Workspace

    result = embed(Workspace(workspace), build_config(EmbedConfig, settings, "embed"), progress=progress, wait=wait)
    click.echo(embed_summary(result))


def embed_summary(result) -> str:
    m = result.meta
    rate = m["embedded_now"] / result.seconds if result.seconds and not result.reused else 0.0
    return (f"embed ({m['slug']}, {m['device']}): {m['count']:,} samples -> embedded {m['embedded']:,}, "
            f"failed {m['failed']:,}; this run embedded {0 if result.reused else m['embedded_now']:,}"
            + (f" ({rate:,.0f}/s)" if rate else "")
            + f", copied {m['reused_rows']:,} from the earlier store; shards done {m['shards_done']}, "
              f"reused {m['shards_skipped']}\n" + run_line(result))
