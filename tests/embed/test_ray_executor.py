"""The Ray executor (a local Ray instance, CPU only) writes the same store as the local one."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from curate.embed.stage import EmbedConfig, embed
from curate.ingest import IngestConfig, ingest
from curate.workspace import Workspace
from tests.conftest import write

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _workspace(tmp_path, name, n=40):
    lines = b"".join(json.dumps({"id": f"t{i}", "text": f"t {i}" if i % 7 else ""}).encode() + b"\n"
                     for i in range(n))
    src = write(tmp_path / "t.jsonl", lines)
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    return ws


@pytest.mark.slow
def test_ray_store_equals_local_store(tmp_path, local_ray):
    vectors = np.random.default_rng(1).normal(size=(40, 16)).astype(np.float32)
    vectors[5] = np.nan  # one failure travels back from the actors too
    np.save(tmp_path / "v.npy", vectors)
    spec = f"precomputed:{tmp_path / 'v.npy'}"
    results = {}
    for executor in ("local", "ray"):
        ws = _workspace(tmp_path, executor)
        cfg = EmbedConfig(model=spec, workers=0, batch_size=4, shard_size=8, executor=executor)
        results[executor] = embed(ws, cfg, progress=False)
    assert results["ray"].meta["shards_done"] == results["local"].meta["shards_done"] == 5
    slug = results["local"].meta["slug"]
    for name in ("vectors.npy", "ids.parquet"):
        local = (tmp_path / "local" / "embeddings" / slug / name).read_bytes()
        remote = (tmp_path / "ray" / "embeddings" / slug / name).read_bytes()
        assert local == remote, name
    # locally the vectors are imported in one vectorised pass, on Ray row by row: same rows
    # embedded, and the failed one says why in both (the wording differs)
    status = {ex: pq.read_table(tmp_path / ex / "embeddings" / slug / "status.parquet") for ex in ("local", "ray")}
    assert status["local"].drop(["reason"]).equals(status["ray"].drop(["reason"]))
    reasons = {ex: status[ex].column("reason").to_pylist() for ex in status}
    differ = [i for i, (a, b) in enumerate(zip(reasons["local"], reasons["ray"])) if a != b]
    assert len(differ) == 1 and all("NaN" in reasons[ex][differ[0]] for ex in reasons)
    assert results["ray"].meta["failed"] == 1


@pytest.mark.slow
def test_ray_dedup_tasks_equal_local(tmp_path, local_ray):
    from curate.dedup.semantic import SemanticConfig, semantic_dedup
    from tests.dedup.test_semantic import workspace

    rng = np.random.default_rng(2)
    base = rng.normal(size=(60, 8))
    vectors = np.concatenate([base, base[:10] + 0.01 * rng.normal(size=(10, 8))])
    ws = workspace(tmp_path, "w", vectors)
    tables = {}
    for executor in ("local", "ray"):
        cfg = SemanticConfig(threshold=(0.95,), clusters=4, executor=executor, batch_rows=20)
        tables[executor] = semantic_dedup(ws, cfg).run.table
    # same decisions; max_sim equal up to fp32 summation order (Ray workers run torch on 1 thread)
    assert tables["ray"].drop(["max_sim"]).equals(tables["local"].drop(["max_sim"]))
    sims = [np.asarray(tables[ex].column("max_sim")) for ex in ("ray", "local")]
    np.testing.assert_allclose(*sims, atol=1e-6)
    assert (~np.asarray(tables["ray"].column("kept"))).sum() == 10
