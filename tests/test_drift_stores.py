"""Drift between precomputed stores whose file names (so store slugs) differ."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import CurateError


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)



# --- q. drift between precomputed stores whose file names (so slugs) differ ------------------------

def _precomputed_workspace(tmp_path, name, vectors, file_name):
    """A text workspace embedded with ``precomputed:<tmp>/<name>-npy/<file_name>`` (slug precomputed-<stem>)."""
    import json

    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace
    from tests.conftest import write

    src = write(tmp_path / f"{name}.jsonl", b"".join(json.dumps({"id": f"{name}{i}", "text": f"t {i}"}).encode()
                                                      + b"\n" for i in range(len(vectors))))
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    _embed_npy(ws, tmp_path / f"{name}-npy" / file_name, vectors)
    return ws


def _embed_npy(ws, npy, vectors):
    from curate.embed.stage import EmbedConfig, embed

    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, _unit(vectors))
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)


def test_drift_compares_precomputed_stores_of_different_names(tmp_path):
    from click.testing import CliRunner

    from curate.cli import cli
    from curate.drift import DriftConfig, drift
    from curate.embed.store import list_stores

    rng = np.random.default_rng(0)
    a = _precomputed_workspace(tmp_path, "a", rng.normal(size=(60, 8)), "x.npy")
    b = _precomputed_workspace(tmp_path, "b", rng.normal(size=(60, 8)), "y.npy")
    assert list_stores(a) == ["precomputed-x"] and list_stores(b) == ["precomputed-y"]
    fast = DriftConfig(sample=40, permutations=50, mmd_sample=40, device="cpu")
    report = drift(a, b, fast)  # was: "pick the embedding model with --model"
    assert report.model == "precomputed-x" and report.reference["model"] == "precomputed-y"
    assert report.new["model"] == "precomputed-x"
    result = CliRunner().invoke(cli, ["drift", "-w", a.root.path, "-r", b.root.path, "--sample", "40",
                                      "--permutations", "50", "--device", "cpu"])
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert "on precomputed-x vs precomputed-y" in result.output

    # REF with two precomputed stores: ambiguous, so name REF's store explicitly
    _embed_npy(b, tmp_path / "b-npy" / "z.npy", rng.normal(size=(60, 8)))
    with pytest.raises(CurateError, match="--reference-model"):
        drift(a, b, fast)
    explicit = drift(a, b, DriftConfig(**{**fast.__dict__, "reference_model": "precomputed-z"}))
    assert explicit.reference["model"] == "precomputed-z"
    result = CliRunner().invoke(cli, ["drift", "-w", a.root.path, "-r", b.root.path, "--reference-model",
                                      "precomputed-y", "--sample", "40", "--permutations", "50", "--device", "cpu"])
    assert result.exit_code in (0, 1) and "vs precomputed-y" in result.output, (result.output, result.exception)

    # different dimensions: a clear one-line error naming both stores
    c = _precomputed_workspace(tmp_path, "c", rng.normal(size=(60, 4)), "w.npy")
    with pytest.raises(CurateError, match=r"dimension: NEW precomputed-x has 8-d vectors, REF precomputed-w 4-d"):
        drift(a, c, fast)
