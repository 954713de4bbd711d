"""``curate dedup``."""

from __future__ import annotations

import click

from curate.cli.options import counts_line, out_option, run_line, stage_options


@click.command("dedup")
@stage_options
@click.option("--method", type=click.Choice(["semantic", "exact", "knn", "fuzzy", "near"]), default="semantic",
              show_default=True,
              help="semantic: SemDeDup on embeddings (run `curate embed` first). exact: identical bytes "
                   "(content hash), needs no embeddings. knn: FAISS range search + connected components. fuzzy: "
                   "MinHash (texts) and perceptual hashes (images), every pair verified; no embeddings. near: "
                   "fuzzy's signals plus the store's nearest neighbours, every pair verified.")
@click.option("--threshold", type=float, multiple=True, default=(0.9,), show_default=True,
              help="Cosine similarity above which an item is a duplicate; repeat to score several in one "
                   "pass (the first decides `kept`, each gets a kept@T column).")
@click.option("--model", default=None, help="Embedding store (model slug or spec); default: the only one.")
@click.option("--clusters", type=int, default=None, help="k-means clusters (default about sqrt(N)).")
@click.option("--keep", default="quality", show_default=True,
              help="Which copy of a duplicate group survives (semantic, knn, fuzzy, near): quality (the best "
                   "copy: images with the most pixels, then least compressed, then (fuzzy, near) sharpest; "
                   "texts the longest, then most distinct words), hard (farthest from centroid; semantic, knn), "
                   "easy, random, column:NAME[:asc|desc]. exact always keeps the first copy.")
@click.option("--chain/--no-chain", default=False, show_default=True,
              help="--chain: removed items still remove others (SemDeDup reference). Default: only kept items do.")
@click.option("--margin", type=float, default=0.03, show_default=True,
              help="Items whose two nearest centroids are closer than this are compared across the boundary.")
@click.option("--against", default=None, metavar="OTHER_WS",
              help="Also remove items that duplicate anything in another workspace (same model).")
@click.option("--device", default="auto", show_default=True)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: per-cluster work as Ray tasks (RAY_ADDRESS or a local Ray).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--precision", type=click.Choice(["auto", "fp32"]), default="auto", show_default=True,
              help="auto: on CPUs with fast bf16 (AVX512-BF16/AMX) similarities are screened in bf16 and "
                   "rescored exactly in fp32 where they reach the lowest threshold (same decisions, ~2x "
                   "faster; max_sim below it is within 1/64). fp32: every similarity exact.")
@click.option("--save-index/--no-save-index", default=False, show_default=True,
              help="semantic: also save a FAISS index under index/<model>/ for later --against runs (about "
                   "1 GB per 1M x 512 items); without it, --against builds one in memory when it needs it.")
@click.option("--jaccard", type=float, default=0.7, show_default=True,
              help="fuzzy/near, texts: verified character n-gram Jaccard a pair needs.")
@click.option("--ngram", type=int, default=5, show_default=True, help="fuzzy/near, texts: character n-gram length.")
@click.option("--containment", type=float, default=0.9, show_default=True,
              help="fuzzy/near, texts: a pair also counts when this share of the shorter text's n-grams (those "
                   "outside boilerplate) is inside the longer one: truncated and wrapped copies.")
@click.option("--containment-ratio", type=float, default=0.35, show_default=True,
              help="fuzzy/near, texts, containment: the shorter text must be at least this share of the longer "
                   "one's length (a short quote in a long text is not a copy).")
@click.option("--containment-chars", type=int, default=100, show_default=True,
              help="fuzzy/near, texts, containment: the shorter text needs at least this many characters "
                   "outside boilerplate.")
@click.option("--boilerplate-df", type=int, default=50, show_default=True,
              help="fuzzy/near, texts: passages (content-defined chunks) held by more distinct texts than this are "
                   "boilerplate (shared headers, footers): they propose no pair and do not count toward containment.")
@click.option("--bands", type=int, default=25, show_default=True,
              help="fuzzy/near, texts: MinHash LSH bands, at most 1024; bands x rows at most 1024.")
@click.option("--rows", type=int, default=5, show_default=True,
              help="fuzzy/near, texts: MinHash rows per band, at most 64; bands x rows at most 1024.")
@click.option("--image-similarity", type=float, default=0.92, show_default=True,
              help="fuzzy/near, images: the lowest verified perceptual similarity (after flip/crop/rotation "
                   "alignment and tone mapping) a pair needs; raised per image for smooth images, whose every "
                   "copy scores high.")
@click.option("--hamming", type=int, default=12, show_default=True,
              help="fuzzy/near, images: perceptual-hash bits two candidates may differ in.")
@click.option("--workers", type=int, default=2, show_default=True,
              help="fuzzy/near, images: processes that decode and hash the images (speed only: the decisions and "
                   "the run id do not depend on it).")
@click.option("--edit-similarity", type=float, default=0.85, show_default=True,
              help="near, texts: a pair also counts when its normalised edit similarity is at least this.")
@click.option("--candidate-threshold", type=float, default=0.8, show_default=True,
              help="near: embedding neighbours with at least this cosine become candidates (then verified).")
@click.option("--knn", type=int, default=10, show_default=True, help="near: nearest neighbours looked at per item.")
@out_option
def command(workspace, progress, wait, method, out, **settings) -> None:
    """Remove duplicates; writes decisions/dedup/<run-id>.parquet (one row per manifest id).

    semantic (default): SemDeDup on the embedding store: k-means clusters, within each
    cluster items ranked by --keep; an item is a duplicate when its similarity to a
    higher-ranked (kept) item exceeds the threshold; items near a cluster boundary are
    compared across it. Adds max_sim, cluster and kept@T columns; test/val items that
    duplicate train items are reported as leakage.

    exact: samples with identical bytes form a group (numbered by first appearance); the
    first copy in manifest order is kept, the others get reason "exact-duplicate" and
    duplicate_of = the kept id. Quarantined samples get reason "quarantined".

    knn: pairs above the threshold from a FAISS range search, grouped into connected
    components; the best-ranked item of each component is kept.

    fuzzy, near: candidate pairs from cheap signals (exact bytes, MinHash for texts, perceptual
    hashes for images; near adds the embedding store's nearest neighbours and edit similarity
    for texts), each pair verified; an item is removed only for a kept item it matches itself.
    Adds score and signal (what proposed the pair); every verified pair goes to
    <run-id>-pairs.parquet.
    """
    from curate.api import check_out_path, dedup_config, run_dedup
    from curate.decisions import copy_out, out_format
    from curate.workspace import Workspace

    check_out_path(out)
    if out:
        out_format(out)  # an unknown suffix is an error before any work
    config = dedup_config(method, _given(settings))
    result = run_dedup(Workspace(workspace), config, progress=progress, wait=wait)
    click.echo(dedup_summary(result))
    if out:
        click.echo(f"  copy     {copy_out(result, out).uri}")


def _given(settings: dict) -> dict:
    """The options a method takes (exact takes none of the embedding settings)."""
    ctx = click.get_current_context()
    return {k: v for k, v in settings.items()
            if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}


def dedup_summary(result) -> str:
    """What `curate dedup` prints: counts, groups, the method's facts, the run."""
    import pyarrow.compute as pc

    meta, table = result.meta, result.table
    method = meta.get("method", "?")
    lines = [f"dedup ({method}): {table.num_rows:,} samples -> {counts_line(result.counts)}",
             f"  groups   {pc.count_distinct(table.column('group')).as_py():,} duplicate groups"]
    if method in ("semantic", "knn"):
        lines.append(f"  clusters {meta['clusters']:,}; boundary items compared across {meta['boundary_rows']:,}; "
                     f"leakage pairs (test/val duplicating train) {meta['leakage']:,}")
    if method in ("fuzzy", "near"):
        found, verified = meta["candidates_by_signal"], meta["verified_by_signal"]
        lines.append(f"  pairs    {meta['candidates']:,} candidates, {meta['verified']:,} verified; by signal: "
                     + ", ".join(f"{s} {verified[s]:,}/{found[s]:,}" for s in found if found[s]))
    phases = {k: v for k, v in meta.get("seconds", {}).items() if k != "write"}
    if phases and method != "exact":
        lines.append("  seconds  " + ", ".join(f"{phase} {sec:.1f}" for phase, sec in phases.items()))
    for t in meta["config"].get("threshold", []) if method in ("semantic", "knn") else []:
        lines.append(f"  at {t:g}   kept {pc.sum(table.column(f'kept@{t:g}')).as_py():,}")
    lines.append(run_line(result))
    return "\n".join(lines)
