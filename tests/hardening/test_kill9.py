"""kill -9 at many points of every long stage, then rerun: the artifacts are byte-identical to an
uninterrupted run and no partial file is ever visible under a final name.

Kill points are the numbered events of ``killhook.py`` (before/while/after every atomic write,
after every vector flush), drawn at random with a fixed seed, plus random-delay kills for
spread. Kills are chained in one workspace (the rerun after a kill is itself killed), then a
last run finishes. Reference: the same commands run once without faults on a copy.
"""

from __future__ import annotations

import json

import pytest

from tests.hardening.faults import cli, count_events, kill_rounds, no_partial_files, temporaries
from tests.hardening.flow import STAGES, comparable, made_by, stage_workspace, swept

pytestmark = pytest.mark.slow

# kills per stage: (at random events, after random delays); more where there is more to break
KILLS = {"ingest": (6, 2), "embed": (6, 2), "dedup": (4, 2), "prune": (3, 1), "select": (3, 1), "export": (6, 2)}


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_then_rerun_gives_identical_artifacts(flow, stage):
    root, sources, snaps, info = flow
    events, seconds, _ = info[stage]
    ws_name, ws, args = stage_workspace(flow, stage, "killed")
    at_events, after = KILLS[stage]
    happened = kill_rounds(args, root, events, seconds, seed=STAGES.index(stage), at_events=at_events,
                           after_delay=after, check=no_partial_files)
    print(stage, happened)
    assert sum(h.endswith("killed") for h in happened) >= 2, happened
    result = cli(args, root)
    assert result.returncode == 0, result.stderr[-3000:]
    no_partial_files(ws)
    expected, got = comparable(root / "ws"), comparable(ws)
    # the reference holds later stages too: compare what this stage and the earlier ones made
    expected = {k: v for k, v in expected.items() if k in got or made_by(k, stage)}
    assert got == expected, (happened, sorted(set(got.items()) ^ set(expected.items())))
    if stage == "export":
        ref = json.loads((root / "ws" / "exports" / "t" / "latest.json").read_text())
        new = json.loads((ws / "exports" / "t" / "latest.json").read_text())
        assert new["version"] == ref["version"]
        lineage = json.loads((ws / "exports" / "t" / new["version"] / "lineage.json").read_text())
        assert lineage["counts"]["accounted"] is True
    leftovers = [str(p.relative_to(ws)) for p in temporaries(ws) if swept(p.relative_to(ws))]
    assert not leftovers, leftovers


PIPELINE = """
workspace = "{ws}"
[ingest]
sources = {sources}
[ingest.read]
files_per_unit = 8
workers = 1
[embed]
model = "perceptual"
shard_size = 16
batch_size = 8
workers = 0
[dedup]
method = "semantic"
[prune]
strategy = "kcenter"
fraction = 0.8
[export]
name = "t"
shard_size = 5
"""


def test_kill_9_during_curate_run_then_rerun_gives_the_same_version(flow):
    root, sources, _, _ = flow
    for ws in ("run-clean", "run-killed"):
        (root / f"{ws}.toml").write_text(PIPELINE.format(ws=ws, sources=json.dumps(sources)))
    events, seconds, _ = count_events(["run", "run-clean.toml", "--no-progress"], root)
    args = ["run", "run-killed.toml", "--no-progress"]
    happened = kill_rounds(args, root, events, seconds, seed=7, at_events=6, after_delay=2, check=no_partial_files)
    print("run", happened)
    assert sum(h.endswith("killed") for h in happened) >= 4, happened
    result = cli(args, root)
    assert result.returncode == 0, result.stderr[-3000:]
    clean, killed = comparable(root / "run-clean"), comparable(root / "run-killed")
    assert killed == clean, (happened, sorted(set(killed.items()) ^ set(clean.items())))
    versions = [json.loads((root / ws / "exports" / "t" / "latest.json").read_text())["version"]
                for ws in ("run-clean", "run-killed")]
    assert versions[0] == versions[1]
    assert not temporaries(root / "run-killed"), "a temporary file survived the rerun"
