"""The reference flow, run once per session and shared by the fault tests."""

from __future__ import annotations

import shutil

import pytest

from tests.hardening.faults import count_events, small_dataset
from tests.hardening.flow import STAGES, stage_args


@pytest.fixture(scope="session")
def flow(tmp_path_factory):
    """Run every stage once without faults, keeping a copy of the workspace before each stage."""
    root = tmp_path_factory.mktemp("kill9")
    sources = small_dataset(root)
    snaps, info = {}, {}
    for stage in STAGES:
        snaps[stage] = root / f"before-{stage}"
        if (root / "ws").exists():
            shutil.copytree(root / "ws", snaps[stage])
        info[stage] = count_events(stage_args(stage, "ws", sources), root)
    return root, sources, snaps, info
