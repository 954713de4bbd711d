"""``curate dedup``."""

from __future__ import annotations

import click
import pyarrow.compute as pc

from curate.cli.options import workspace_option
from curate.decisions import copy_out, decision_counts
from curate.workspace import Workspace


@click.command("dedup")
@workspace_option
@click.option("--method", type=click.Choice(["exact", "semantic", "knn"]), default="exact", show_default=True,
              help="exact: identical bytes (content hash). semantic: SemDeDup on embeddings. knn: FAISS range "
                   "search + connected components.")
@click.option("--threshold", "thresholds", type=float, multiple=True, default=(0.9,), show_default=True,
              help="Cosine similarity above which an item is a duplicate; repeat to score several in one "
                   "pass (the first decides `kept`, each gets a kept@T column).")
@click.option("--model", default=None, help="Embedding store (model slug); default: the only one.")
@click.option("--clusters", type=int, default=None, help="k-means clusters (default about sqrt(N)).")
@click.option("--keep", default="hard", show_default=True,
              help="Which copy survives: hard (farthest from centroid), easy, random, column:NAME[:asc|desc].")
@click.option("--chain/--no-chain", default=False, show_default=True,
              help="--chain: removed items still remove others (SemDeDup reference). Default: only kept items do.")
@click.option("--margin", type=float, default=0.05, show_default=True,
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
@click.option("--save-index/--no-save-index", default=True, show_default=True,
              help="semantic: save a FAISS index under index/<model>/ so later batches can use --against "
                   "this workspace quickly (about 1 GB per 1M x 512 items).")
@click.option("--out", default=None, metavar="PATH",
              help="Also write the decision table here (.parquet, or .csv by extension).")
def command(workspace, method, thresholds, model, clusters, keep, chain, margin, against, device, executor, seed,
            precision, save_index, out) -> None:
    """Remove duplicates; writes decisions/dedup/<run-id>.parquet (one row per manifest id).

    exact: samples with identical bytes form a group (numbered by first appearance); the
    first copy in manifest order is kept, the others get reason "exact-duplicate" and
    duplicate_of = the kept id. Quarantined samples get reason "quarantined".

    knn: pairs above the threshold from a FAISS range search, grouped into connected
    components; the best-ranked item of each component is kept.

    semantic: SemDeDup on the embedding store (run `curate embed` first): k-means clusters,
    within each cluster items ranked by --keep; an item is a duplicate when its similarity
    to a higher-ranked (kept) item exceeds the threshold; items near a cluster boundary are
    compared across it. Adds max_sim, cluster and kept@T columns; test/val items that
    duplicate train items are reported as leakage.
    """
    ws = Workspace(workspace)
    ws.require_manifest()
    extra = ""
    if method == "exact":
        from curate.dedup.exact import ExactDedupConfig, exact_dedup

        run = exact_dedup(ws, ExactDedupConfig())
    else:
        from curate.dedup.semantic import SemanticConfig, semantic_dedup

        result = semantic_dedup(ws, SemanticConfig(
            thresholds=tuple(thresholds), method=method, model=model, clusters=clusters, keep=keep, chain=chain,
            margin=margin, seed=seed, device=device, against=against, executor=executor, precision=precision,
            save_index=save_index))
        run = result.run
        extra = (f"  clusters {result.clusters:,}; boundary items compared across {result.boundary_rows:,}; "
                 f"leakage pairs (test/val duplicating train) {result.leakage:,}")
        if result.phases:
            extra += "\n  seconds  " + ", ".join(f"{phase} {sec:.1f}" for phase, sec in result.phases.items())
        for t in thresholds:
            kept = pc.sum(run.table.column(f"kept@{t:g}")).as_py()
            extra += f"\n  at {t:g}   kept {kept:,}"
    counts = decision_counts(run.table)
    groups = pc.count_distinct(run.table.column("group")).as_py()
    state = "unchanged, reused" if run.reused else "written"
    removed = ", ".join(f"{reason} {n:,}" for reason, n in counts.items() if reason != "kept")
    click.echo(f"dedup ({method}): {run.table.num_rows:,} samples -> kept {counts['kept']:,}"
               + (f"; removed: {removed}" if removed else ""))
    click.echo(f"  groups   {groups:,} duplicate groups")
    if extra:
        click.echo(extra)
    click.echo(f"  run      {run.run_id} ({state}) {run.path.uri}")
    if out:
        click.echo(f"  copy     {copy_out(run, out).uri}")
