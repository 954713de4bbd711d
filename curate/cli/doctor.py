"""``curate doctor``."""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for scripts and CI).")
def command(as_json: bool) -> None:
    """Check this machine: versions, CUDA / FAISS GPU / Triton / Ray, GPUs, and what each stage runs on.

    Every capability is tried (a tiny CUDA op, faiss.get_num_gpus(), one Triton kernel launch
    checked against its reference, import ray), so the answer is what `auto` will pick here.
    """
    from curate.doctor import diagnose, render

    report = diagnose()
    click.echo(json.dumps(report, indent=2) if as_json else render(report))
