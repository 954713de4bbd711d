"""Kill -9 in the middle of `curate embed`, rerun: the store is byte-identical to a clean run."""

import errno
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from curate.demo import build_demo
from curate.embed import store
from curate.embed.store import open_store
from curate.errors import CurateError
from curate.workspace import Workspace

EMBED = ["--model", "perceptual", "--workers", "0", "--batch-size", "16", "--shard-size", "32", "--no-progress"]


def curate(*args):
    return subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_kill_during_embed_then_rerun_gives_identical_store(tmp_path):
    build_demo(tmp_path / "demo")
    for ws in ("clean", "killed"):
        assert curate("ingest", str(tmp_path / "demo" / "images"), "-w", str(tmp_path / ws),
                      "--no-progress").returncode == 0
    clean = curate("embed", "-w", str(tmp_path / "clean"), *EMBED)
    assert clean.returncode == 0, clean.stderr

    state = tmp_path / "killed" / "state" / "embed" / "perceptual-v2"
    proc = subprocess.Popen([sys.executable, "-m", "curate", "embed", "-w", str(tmp_path / "killed"), *EMBED],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if state.exists() and len(list(state.glob("shard-*.json"))) >= 8:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the kill should land mid-run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "embeddings" / "perceptual-v2" / "meta.json").exists()

    rerun = curate("embed", "-w", str(tmp_path / "killed"), *EMBED)
    assert rerun.returncode == 0, rerun.stderr
    assert "reused 0" not in rerun.stdout  # finished shards were skipped
    for name in ("vectors.npy", "ids.parquet", "status.parquet"):
        a = (tmp_path / "clean" / "embeddings" / "perceptual-v2" / name).read_bytes()
        b = (tmp_path / "killed" / "embeddings" / "perceptual-v2" / name).read_bytes()
        assert a == b, name
    store = open_store(Workspace(str(tmp_path / "killed")), "perceptual-v2")
    assert store.valid.all() and len(store.ids) == 1872


def test_full_disk_at_vector_allocation_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    path = tmp_path / "vectors.npy"
    with pytest.raises(CurateError, match="cannot reserve .* bytes for .*No space left"):
        store.create_or_resume(path, 1000, 64, resume=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    arr = store.create_or_resume(path, 1000, 64, resume=False)
    assert arr.shape == (1000, 64) and os.stat(path).st_blocks * 512 >= 1000 * 64 * 2  # really allocated
    assert np.all(np.asarray(arr) == 0)


def test_a_run_that_fails_mid_stage_keeps_the_finished_store_and_the_rerun_copies_from_it(tmp_path, monkeypatch):
    """The store was emptied (meta.json deleted) when a new run started; a failure after that (a GPU
    that is not there, an OOM, a crash) left no store, and the rerun had nothing to copy from."""
    from curate.embed import stage
    from curate.embed.stage import EmbedConfig, embed
    from curate.embed.store import list_stores
    from curate.ingest import IngestConfig, ingest
    from tests.conftest import encode_image, write

    for i in range(12):
        write(tmp_path / "imgs" / f"{i:02d}.png", encode_image((24, 20), seed=i))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "imgs")], IngestConfig())
    cfg = EmbedConfig(model="perceptual", device="cpu", workers=0)
    first = embed(ws, cfg, progress=False)
    folder = tmp_path / "ws" / "embeddings" / first.meta["slug"]
    finished = {p.name: p.read_bytes() for p in folder.iterdir()}

    write(tmp_path / "imgs" / "12.png", encode_image((24, 20), seed=12))  # one new sample: the next run embeds it
    ingest(ws, [str(tmp_path / "imgs")], IngestConfig())

    def fail(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory (injected)")

    monkeypatch.setattr(stage, "embed_rows", fail)
    with pytest.raises(RuntimeError, match="injected"):
        embed(ws, cfg, progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == finished  # meta.json and vectors untouched
    assert list_stores(ws) == [first.meta["slug"]]
    assert open_store(ws, first.meta["slug"], current=False).valid.all()

    monkeypatch.undo()
    rerun = embed(ws, cfg, progress=False)
    assert (rerun.meta["reused_rows"], rerun.meta["embedded_now"], rerun.meta["count"]) == (12, 1, 13)
    store = open_store(ws, first.meta["slug"])
    assert store.valid.all() and len(store.ids) == 13
    np.testing.assert_array_equal(store.vectors[:12], np.load(io.BytesIO(finished["vectors.npy"])))
