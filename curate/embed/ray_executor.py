"""Ray Data executor: shards flow to an actor pool with one embedder per GPU (or CPU slot).

Each actor loads the model once and embeds whole shards with the same code as the local
executor (``embed_rows``: same batches, same numerics), returning vectors and failures to
the driver, which writes them into the store and marks the shard done. Ray is imported
only here; ``ray.init()`` joins the cluster named by ``RAY_ADDRESS`` or starts a local one.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable

import numpy as np

from curate.embed.runner import LoaderSettings


class _ShardEmbedder:
    """Actor: holds one embedder; a batch is one or more (shard, pickled rows) items."""

    def __init__(self, model: str, device: str, precision: str, settings: LoaderSettings,
                 workspace: str) -> None:
        from curate.embed.base import resolve_runtime
        from curate.embed.registry import load_embedder
        from curate.workspace import Workspace

        self.embedder = load_embedder(model, Workspace(workspace))
        runtime = resolve_runtime(device, precision)
        self.embedder.setup(runtime)
        self.settings = LoaderSettings(settings.batch_size, settings.workers,
                                       device_decode=runtime.device.type == "cuda")

    def __call__(self, batch: dict) -> dict:
        from curate.embed.runner import embed_rows

        shards, vectors, failures = [], [], []
        for shard, rows in zip(batch["shard"], batch["rows"]):
            block, shard_failures = embed_rows(self.embedder, pickle.loads(rows), self.settings)
            shards.append(int(shard))
            vectors.append(block.tobytes())
            failures.append(json.dumps(shard_failures))
        return {"shard": np.array(shards), "vectors": np.array(vectors, dtype=object),
                "failures": np.array(failures, dtype=object)}


def run_on_ray(config, settings: LoaderSettings, pending: list[tuple[int, list[dict]]],
               done: Callable[[int, np.ndarray, dict[int, str]], None], progress: Callable[[int], None],
               workspace: str, dim: int) -> None:
    """Embed ``pending`` shards on Ray; calls ``done`` on the driver for each finished shard."""
    from curate.extras import require_ray

    ray = require_ray()

    if not pending:
        return
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if config.device != "cpu" else 0
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = min(len(pending), gpus or max(1, cpus // max(1, settings.workers + 1)))
    sizes = {k: len(rows) for k, rows in pending}
    items = [{"shard": k, "rows": pickle.dumps(rows)} for k, rows in pending]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _ShardEmbedder,
        fn_constructor_kwargs={"model": config.model, "device": config.device, "precision": config.precision,
                               "settings": settings, "workspace": workspace},
        batch_size=1, concurrency=actors, num_gpus=1 if gpus else 0,
        num_cpus=max(1, settings.workers),
    )
    for out in ds.iter_rows():
        k = int(out["shard"])
        block = np.frombuffer(out["vectors"], dtype=np.float16).reshape(sizes[k], dim)
        done(k, block, {int(i): r for i, r in json.loads(out["failures"]).items()})
        progress(sizes[k])
