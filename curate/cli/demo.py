"""``curate demo``."""

from __future__ import annotations

import click

from curate.cli.options import progress_option


@click.command("demo")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--kind", type=click.Choice(["image", "text"]), default="image", show_default=True,
              help="image: scikit-learn digits as JPEG/PNG files. text: topic sentences in one JSONL file.")
@click.option("--seed", default=0, show_default=True, help="Seed for which samples get planted copies.")
@progress_option
def command(folder, kind, seed, progress) -> None:
    """Build an offline demo dataset in FOLDER, with planted duplicates and bad inputs.

    image: FOLDER/images/ with train/test class folders of 64x64 JPEG/PNG digits (from
    scikit-learn's digits), planted exact copies, near copies (re-encoded, resized, cropped)
    and corrupt files. text: FOLDER/texts.jsonl with topic-labelled sentences, exact copies,
    near copies (case, punctuation, one word) and bad rows. FOLDER/ground_truth.json lists
    every planted item. No network needed; an existing finished demo is reused.
    """
    if kind == "text":
        from curate.demo_text import TextDemoConfig, build_text_demo

        truth, where = build_text_demo(folder, TextDemoConfig(seed=seed)), f"{folder}/texts.jsonl"
    else:
        from curate.demo import DemoConfig, build_demo

        truth, where = build_demo(folder, DemoConfig(seed=seed), progress=progress), f"{folder}/images"
    click.echo(f"demo: {truth['file_count']:,} samples in {where} ({truth['source_count']:,} originals, "
               f"{len(truth['exact_copies'])} exact copies, {len(truth['near_copies'])} near copies, "
               f"{len(truth['corrupt'])} bad); ground truth in {folder}/ground_truth.json")
