"""``curate select``."""

from __future__ import annotations

import textwrap

import click

from curate.cli.options import run_line, stage_options
from curate.errors import CurateError
from curate.select.registry import STRATEGIES
from curate.workspace import Workspace

_STRATEGY_HELP = "\b\n" + "\n".join(
    textwrap.fill(f"{s.name}: {s.help}", 92, initial_indent="  ", subsequent_indent="      ")
    for s in STRATEGIES.values())


def _class_quota(values: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    out = []
    for v in values:
        name, sep, amount = v.rpartition("=")
        try:
            out.append((name, float(amount)))
        except ValueError:
            sep = ""
        if not sep or not name:
            raise CurateError(f"--class-quota takes CLASS=COUNT or CLASS=SHARE, not {v!r}")
    return tuple(out)


def _labeling_lines(meta: dict) -> list[str]:
    """Where the labeled set came from (without --labeled) and whether the batch is the TypiClust warm-up."""
    lines = []
    source = meta.get("labeled_from")
    if source == "manifest":
        lines.append(f"  labeled  {meta['labeled']:,} items with a manifest label (no --labeled file)")
    elif source == "given":
        lines.append("  labeled  none: every candidate has a manifest label, taken as the dataset's own labels "
                     "(--labeled FILE names the items labeled so far)")
    if meta.get("warmup"):
        lines.append(f"  warm-up  TypiClust's typical items first: {meta['warmup']}")
    return lines


@click.command("select", help=f"""Choose the next batch to label and export it for a labeling tool.

Candidates: items that are ok, not removed by the latest dedup run, not labeled, and that
have what the strategy needs. Labeled: the ids in --labeled; without it, the items with a
manifest label (unless every candidate has one: then they are the dataset's own labels and
none counts). Runs with the same labeled set are one labeling round. Writes
decisions/select/<run-id>.parquet (one row per manifest id: kept = selected, reason, score,
rank) and the batch to --out.

Strategies (--strategy):

{_STRATEGY_HELP}

Predictions (--predictions): Parquet with an `id` column and a list column probs|logits
(optionally mc [T][C] MC-dropout samples, features [d] penultimate features), or a .npy
[N, C] / [N, T, C] or .npz (probs|logits, mc, features, ids) whose rows are the manifest's ok
rows in manifest order. Logits are detected (negative values or rows not summing to 1) and
softmaxed. No model yet? --probe trains a linear probe on the labeled items' embeddings, or
the default hybrid starts cold: TypiClust's typical items.

Targeted mining (--strategy similar --queries Q): Q is a file of workspace ids (one per line,
or CSV/Parquet with `id`; e.g. the evaluation items the model got wrong), or a folder / .jsonl
(`text` or `image` path per line) of external items, embedded with the store's own model.
The nearest unlabeled items are dealt round-robin over clusters of queries (--clusters,
default sqrt(#queries)); each pick records its query and cosine similarity.

A Label Studio export (.json) gets labeling-config.xml (choices = the dataset's labels) and
LABELING.md (label counts and examples, the batch's scores) in the same folder.
""")
@stage_options
@click.option("--budget", "-n", type=int, required=True, help="How many items to pick.")
@click.option("--strategy", "-s", default="hybrid", show_default=True, metavar="NAME",
              help=f"One of: {', '.join(STRATEGIES)}.")
@click.option("--predictions", default=None, metavar="FILE", help="Model outputs for the pool (see above).")
@click.option("--labeled", default=None, metavar="FILE",
              help="Ids already labeled: text (one per line), or CSV/Parquet with `id` [and `label`].")
@click.option("--probe", is_flag=True, default=False,
              help="Train a linear probe on the labeled items' embeddings and labels (--labeled, else the manifest's) "
                   "and score the pool.")
@click.option("--out", "-o", required=True, metavar="FILE", help="Export file (.json Label Studio, .csv, .parquet).")
@click.option("--format", type=click.Choice(["labelstudio", "csv", "parquet"]), default=None,
              help="Export format (default: from the --out extension; .json is Label Studio).")
@click.option("--data-key", default=None, help="Label Studio data key (default: image, or text for texts).")
@click.option("--document-root", default=None, metavar="DIR",
              help="Label Studio local-files root: image paths become /data/local-files/?d=<relative path>.")
@click.option("--model", default=None, help="Embedding store (model slug); default: the only one.")
@click.option("--upstream", multiple=True, default=("dedup",), show_default=True, metavar="STAGE",
              help="Decision stages whose latest runs' removals select follows (repeat; the ones given replace "
                   "the default): --upstream dedup --upstream prune picks only from what both kept.")
@click.option("--round", type=int, default=None,
              help="Labeling round (default: that of earlier runs with the same labeled set, else the next).")
@click.option("--dup-threshold", default="auto", show_default=True, metavar="COSINE|auto|off",
              help="hybrid / similar: never two items above this cosine in a batch, nor one near a labeled item; "
                   "auto: hybrid takes half the pool's median distance to the 10th neighbour (similar: 0.9). "
                   "Members of one dedup group (latest dedup run) are never picked together, whatever this is.")
@click.option("--min-similarity", type=float, default=None, metavar="COSINE",
              help="similar: never pick an item less similar than this to its query; queries with nothing "
                   "above it are reported as weak instead of padding the batch.")
@click.option("--uncertainty", type=click.Choice(["margin", "entropy", "least-confidence"]), default="margin",
              show_default=True, help="hybrid: the uncertainty score.")
@click.option("--preselect", type=float, default=10.0, show_default=True,
              help="hybrid / cluster-margin: consider the preselect x budget most uncertain candidates.")
@click.option("--typical-per-class", type=float, default=3.0, show_default=True,
              help="hybrid: while fewer than this many labels per class exist, pick TypiClust's typical items "
                   "(uncertainty of so weak a model is noise); 0 turns it off.")
@click.option("--power", type=float, default=1.0, show_default=True,
              help="hybrid: weight = uncertainty ** power (above 1: uncertainty counts more against distance; "
                   "0: distance alone).")
@click.option("--density", type=float, default=1.0, show_default=True,
              help="hybrid: weight x typicality ** density, the candidate's typicality in the pool, so k-center does "
                   "not land on outliers and lone corrupted copies; 0: plain uncertainty-weighted k-center.")
@click.option("--class-aware", is_flag=True, default=False,
              help="hybrid: visit the warm-up's clusters least-labeled predicted class first (needs predictions or "
                   "--probe; off by default: it follows a weak model's mistakes).")
@click.option("--knn", type=int, default=20, show_default=True, metavar="K",
              help="typiclust / hybrid warm-up: typicality = 1 / mean distance to the item's K nearest neighbours "
                   "in its k-means cluster.")
@click.option("--cap", type=int, default=4096, show_default=True, metavar="N",
              help="typiclust / hybrid warm-up: a k-means cluster larger than this is represented by a seeded sample "
                   "of N members (only they are scored and can be picked): at most N x N distances per cluster.")
@click.option("--quota-per-class", type=int, default=None, help="hybrid: at most N picks per predicted class.")
@click.option("--class-quota", multiple=True, metavar="CLASS=N|SHARE",
              help="hybrid: cap for one predicted class (a count, or a share of the budget below 1); repeat.")
@click.option("--clusters", type=int, default=None,
              help="cluster-margin: k-means clusters (default sqrt(pool)); similar: query clusters (sqrt(#queries)).")
@click.option("--queries", "-q", default=None, metavar="PATH",
              help="similar: workspace ids file, or a folder / .jsonl of external images or texts.")
@click.option("--per-query", type=int, default=None, help="similar: at most N picks per query.")
@click.option("--force", is_flag=True, default=False,
              help="Overwrite an export or labeling files another select run (or no run) wrote.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--label-issues", is_flag=True, default=False,
              help="Instead of a strategy: export the latest audit run's label issues (lowest label score first) "
                   "with the given label as an annotation and the suggested one as a prediction, for review.")
def command(workspace, progress, wait, class_quota, label_issues, **settings) -> None:
    if label_issues:
        from curate.cli.label_issues import export_label_issues_command

        export_label_issues_command(workspace, settings)
        return
    from curate.select.stage import SelectConfig, picked, select
    from curate.settings import build_config

    config = build_config(SelectConfig, {**settings, "class_quota": _class_quota(class_quota)}, "select")
    result = select(Workspace(workspace), config, progress=progress, wait=wait)
    meta = result.meta
    click.echo(f"select ({meta['strategy']}, round {meta['round']}): picked {len(picked(result)):,} of "
               f"{meta['candidates']:,} candidates")
    for line in _labeling_lines(meta):
        click.echo(line)
    click.echo(run_line(result))
    if meta.get("export"):
        click.echo(f"  export   {meta['export']}")
    if meta.get("handoff"):
        click.echo(f"  labeling {meta['handoff'][0]}, {meta['handoff'][1]}")
    failures = meta.get("query_failures") or []
    for name, reason in failures[:10]:
        click.echo(f"  query not used: {name}: {reason}", err=True)
    if len(failures) > 10:
        click.echo(f"  ... and {len(failures) - 10} more queries not used", err=True)
    weak = meta.get("weak_queries") or []
    if weak:
        click.echo(f"  {len(weak):,} weak queries (nothing at --min-similarity {meta['min_similarity']:g} or above): "
                   + ", ".join(weak[:10]) + (" ..." if len(weak) > 10 else ""), err=True)
