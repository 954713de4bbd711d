"""Object storage for real: an S3-compatible server on loopback (moto's server mode) and s3fs.

ingest -> dedup (exact) -> export with sources and workspace on s3:// gives the same manifest,
decisions, export version and shard bytes as the same sources with a local workspace, and the
same samples and decisions as the sources read from a local folder. Embedding stores are
memory-mapped, so ``embed`` needs a local workspace; S3 sources with a local workspace work.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

import fsspec  # noqa: E402

from curate.decisions import latest_run  # noqa: E402
from curate.dedup.exact import ExactDedupConfig, exact_dedup  # noqa: E402
from curate.embed.stage import EmbedConfig, embed  # noqa: E402
from curate.errors import CurateError  # noqa: E402
from curate.export.stage import ExportConfig, export, exported  # noqa: E402
from curate.ingest import IngestConfig, ingest  # noqa: E402
from curate.io.fs import locate  # noqa: E402
from curate.readers.base import ReadOptions  # noqa: E402
from curate.workspace import Workspace  # noqa: E402
from tests.hardening.faults import small_dataset  # noqa: E402

CONFIG = IngestConfig(read=ReadOptions(workers=2, files_per_unit=16))


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free loopback port; fsspec's s3 settings point at it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    conf = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "testing", "secret": "testing"}
    saved = fsspec.config.conf.get("s3")
    fsspec.config.conf["s3"] = conf
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("data")
    local = tmp_path_factory.mktemp("s3data")
    sources = small_dataset(local)
    fs.put(str(local / "images"), "data/src/images", recursive=True)
    fs.put(str(local / "shards" / "part-0000.tar"), "data/src/shards/part-0000.tar")
    yield local, sources
    if saved is None:
        fsspec.config.conf.pop("s3", None)
    else:
        fsspec.config.conf["s3"] = saved
    server.stop()


S3_SOURCES = ["s3://data/src/images", "s3://data/src/shards/part-0000.tar"]


def run_flow(ws_uri: str, sources: list[str]) -> tuple[Workspace, object]:
    ws = Workspace(ws_uri)
    ingest(ws, sources, CONFIG)
    exact_dedup(ws, ExactDedupConfig())
    result = exported(export(ws, ExportConfig(name="s", shard_size=7), progress=False))
    return ws, result


def shard_bytes(folder) -> dict[str, bytes]:
    loc = folder if not isinstance(folder, str) else locate(folder)
    return {p.rsplit("/", 1)[-1]: loc.fs.cat_file(p) for p in sorted(loc.fs.ls(loc.path, detail=False))
            if p.endswith((".tar", "samples.parquet"))}


def test_s3_sources_and_workspace_match_a_local_workspace(s3, tmp_path):
    remote_ws, remote = run_flow("s3://data/ws", S3_SOURCES)
    local_ws, local = run_flow(str(tmp_path / "ws"), S3_SOURCES)
    assert remote_ws.read_manifest().equals(local_ws.read_manifest())
    assert remote_ws.manifest_meta()["fingerprint"] == local_ws.manifest_meta()["fingerprint"]
    remote_run, local_run = latest_run(remote_ws, "dedup"), latest_run(local_ws, "dedup")
    assert remote_run.run_id == local_run.run_id and remote_run.table.equals(local_run.table)
    assert remote_ws.loc("decisions", "dedup", f"{remote_run.run_id}.parquet").read_bytes() == \
        local_ws.loc("decisions", "dedup", f"{local_run.run_id}.parquet").read_bytes()
    assert remote.version == local.version
    assert remote.folder.uri.startswith("s3://data/ws/exports/s/")
    remote_shards, local_shards = shard_bytes(remote.folder), shard_bytes(local.folder)
    assert remote_shards.keys() == local_shards.keys() and len(remote_shards) >= 3
    assert remote_shards == local_shards
    # a rerun on S3 reuses everything: same version, nothing rewritten
    again_ws, again = run_flow("s3://data/ws", S3_SOURCES)
    assert again.version == remote.version and again.reused


def test_s3_sources_match_the_same_files_read_locally(s3, tmp_path):
    local_data, local_sources = s3
    remote_ws, _ = run_flow("s3://data/ws2", S3_SOURCES)
    local_ws, _ = run_flow(str(tmp_path / "ws"), local_sources)
    columns = [c for c in remote_ws.read_manifest().column_names if c not in ("source", "offset", "length")]
    assert remote_ws.read_manifest(columns).equals(local_ws.read_manifest(columns))
    sources = [s.split("/src/", 1)[1] for s in remote_ws.read_manifest(["source"]).column("source").to_pylist()]
    local = [str(Path(s)).split(str(local_data) + "/", 1)[1]
             for s in local_ws.read_manifest(["source"]).column("source").to_pylist()]
    assert sources == local
    remote_run, local_run = latest_run(remote_ws, "dedup"), latest_run(local_ws, "dedup")
    assert remote_run.table.equals(local_run.table)
    assert remote_run.table.column("kept").to_pylist().count(False) >= 6 + 1  # copies and the broken file


def test_embed_needs_a_local_workspace_but_reads_s3_sources(s3, tmp_path):
    with pytest.raises(CurateError, match="need a local workspace for memory mapping"):
        embed(Workspace("s3://data/ws"), EmbedConfig(model="perceptual", workers=0), progress=False)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, S3_SOURCES, CONFIG)
    result = embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    ok = ws.manifest_meta()["count"] - ws.manifest_meta()["quarantined"]
    assert (result.meta["count"], result.meta["failed"]) == (ok, 0)
