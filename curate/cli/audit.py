"""``curate audit``."""

from __future__ import annotations

import click

from curate.cli.options import out_option, run_line, stage_options


@click.command("audit")
@stage_options
@click.option("--predictions", default=None, metavar="FILE",
              help="Out-of-sample probabilities or logits, in the formats of `select --predictions` (Parquet with "
                   "`id`, or .npy/.npz aligned with the ok rows). Default: kNN label votes from the embedding store.")
@click.option("--probe", is_flag=True, default=False,
              help="No model: a cross-validated linear probe on the store's embeddings scores the labels.")
@click.option("--folds", type=int, default=5, show_default=True, help="--probe: cross-validation folds.")
@click.option("--classes", default=None, metavar="NAME,...",
              help="The class of each predictions column, in order (default: integer labels by value, else the "
                   "sorted labels, as export numbers them).")
@click.option("--drop", "drop", multiple=True, default=(), metavar="CHECK,...",
              help="Mark items flagged by these checks (or label-issue) kept = false, reason = the check. "
                   "Default: none (an audit removes nothing).")
@click.option("--checks", "checks", multiple=True, default=(), metavar="CHECK,...",
              help="Run only these checks (default: every one that applies).")
@click.option("--threshold", "thresholds", multiple=True, default=(), metavar="CHECK=VALUE",
              help="Flag threshold of a check (score >= VALUE flags), e.g. blurry=0.7; repeat.")
@click.option("--languages", default=None, metavar="CODE,...",
              help="language check: expected ISO 639-1 codes (default: the dataset's majority language).")
@click.option("--k", type=int, default=10, show_default=True,
              help="Nearest neighbours for the kNN label votes and the outlier check.")
@click.option("--model", default=None, help="Embedding store (model slug or spec); default: the only one.")
@click.option("--device", default="auto", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="Image decoding threads.")
@click.option("--seed", type=int, default=0, show_default=True)
@out_option
def command(workspace, progress, wait, out, drop, checks, thresholds, classes, languages, **settings) -> None:
    """Audit every item for wrong labels and junk (blurry, dark, too short, outliers, ...); removes nothing.

    Writes decisions/audit/<run-id>.parquet, one row per manifest id: kept, reason,
    label_score (the odds of the given label against the best other class; null without a
    label signal), label_issue, suggested_label, issues (the checks that flagged the item)
    and one score column per check in [0, 1], higher = worse. Label signal: --predictions,
    else --probe, else the store's kNN graph. Near-duplicates (latest dedup run) with
    different labels are flagged label-conflict. Quarantined items are carried, not audited.
    `curate prune --drop CHECK` and `curate export --drop CHECK` remove flagged items;
    `curate select --label-issues` sends label issues to Label Studio.
    """
    from curate.api import check_out_path
    from curate.audit.stage import AuditConfig, audit, parse_thresholds, split_names
    from curate.decisions import copy_out, out_format
    from curate.settings import build_config
    from curate.workspace import Workspace

    check_out_path(out)
    if out:
        out_format(out)  # an unknown suffix is an error before any work
    config = build_config(AuditConfig, {**settings, "drop": split_names(drop), "checks": split_names(checks),
                                        "thresholds": parse_thresholds(thresholds),
                                        "classes": split_names(classes), "languages": split_names(languages)},
                          "audit")
    result = audit(Workspace(workspace), config, progress=progress, wait=wait)
    click.echo(audit_summary(result))
    if out:
        click.echo(f"  copy     {copy_out(_flat(result.run) if out_format(out) == 'csv' else result.run, out).uri}")


def _flat(run):
    """The run with ``issues`` as one ``;``-separated string (CSV has no list type)."""
    import dataclasses

    import pyarrow.compute as pc

    table = run.table
    at = table.schema.get_field_index("issues")
    joined = pc.binary_join(table.column("issues"), ";")
    return dataclasses.replace(run, table=table.set_column(at, "issues", joined))


def audit_summary(result) -> str:
    """What `curate audit` prints: counts per check, label issues, the run."""
    meta, table = result.meta, result.table
    quarantined = table.num_rows - meta["audited"]
    lines = [f"audit: {table.num_rows:,} samples, {meta['audited']:,} audited ({quarantined:,} quarantined, "
             "carried)"]
    source = meta.get("label_source")
    if source is None:
        lines.append("  labels   no label signal (--predictions, --probe or an embedding store)")
    else:
        how = {"predictions": f"--predictions {meta['config']['predictions']}",
               "probe": f"a {meta['config']['folds']}-fold cross-validated linear probe",
               "knn": f"kNN label votes (k={meta['config']['k']}, {meta.get('model')})"}.get(source, source)
        lines.append(f"  labels   {meta['label_issues']:,} label issues of {meta['labelled']:,} labelled items, "
                     f"from {how}")
    width = max((len(c) for c in meta["checks"]), default=0)
    for check in meta["checks"]:
        threshold = meta["thresholds"].get(check)
        at = f" (score >= {threshold:g})" if threshold is not None else ""
        lines.append(f"  {check:<{width}}  {meta['flagged'][check]:>7,} flagged{at}")
    removed = {k: v for k, v in result.counts.items() if k not in ("kept", "quarantined")}
    if removed:
        lines.append(f"  dropped  {sum(removed.values()):,} (" + ", ".join(f"{k} {v:,}" for k, v in removed.items())
                     + f"); kept {result.counts.get('kept', 0):,}")
    else:
        lines.append("  dropped  nothing (prune/export --drop CHECK,... remove flagged items)")
    lines += [f"  note     {m}" for m in meta.get("messages", [])]
    lines.append(run_line(result))
    return "\n".join(lines)
