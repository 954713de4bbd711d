"""``curate demo``."""

from __future__ import annotations

import click

from curate.demo import DemoConfig, build_demo


@click.command("demo")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, help="Seed for which images get planted copies.")
def command(folder, seed) -> None:
    """Build the offline demo image dataset in FOLDER (from scikit-learn's digits).

    Writes FOLDER/images/ with train/test class folders of 64x64 JPEG/PNG digits with planted exact copies,
    near copies (re-encoded, resized, cropped) and corrupt files, and FOLDER/ground_truth.json
    listing every planted item. No network needed.
    """
    truth = build_demo(folder, DemoConfig(seed=seed))
    click.echo(f"demo: {truth['file_count']:,} files in {folder}/images ({truth['source_count']:,} digits, "
               f"{len(truth['exact_copies'])} exact copies, {len(truth['near_copies'])} near copies, "
               f"{len(truth['corrupt'])} corrupt); ground truth in {folder}/ground_truth.json")
