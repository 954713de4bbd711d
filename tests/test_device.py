"""``--device``: a value curate does not take, or a GPU this machine does not have, is a one-line
error (exit 2) before anything in the workspace is touched, for every command that takes it;
a finished embedding store survives such a run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from curate.cli import COMMANDS
from curate.device import check_device, resolve_device
from curate.embed.store import list_stores, open_store
from curate.errors import CurateError
from curate.workspace import Workspace
from tests.conftest import encode_image, run_cli, write

NONSENSE = ["gpu", "bogus", "CUDA", "cuda:x", "cuda:-1", "cpu:0", " cpu", ""]
# CUDA devices this machine does not have
ABSENT = ["cuda", "cuda:7"] if not torch.cuda.is_available() else [f"cuda:{torch.cuda.device_count()}"]
# what each command that takes --device needs besides it (-w WS is added)
EXTRA_ARGS = {
    "embed": ["--workers", "0", "--no-progress"],
    "dedup": [],  # semantic; the other methods are below
    "audit": ["--checks", "outlier"],
    "prune": ["--fraction", "0.5"],
    "select": ["--budget", "2", "--strategy", "typiclust", "--out", "{tmp}/batch.csv"],
    "drift": ["-r", "{ws}"],
}
DEDUP_METHODS = ["semantic", "knn", "fuzzy", "near"]


cli = run_cli


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def embedded(tmp_path, capsys) -> Path:
    """A workspace of 12 small images, embedded on the CPU with the offline perceptual model."""
    for i in range(12):
        write(tmp_path / "imgs" / f"{i:02d}.png", encode_image((24, 20), seed=i))
    ws = tmp_path / "ws"
    assert cli(capsys, "ingest", str(tmp_path / "imgs"), "-w", str(ws), "--no-progress")[0] == 0
    code, _, err = cli(capsys, "embed", "-w", str(ws), "--device", "cpu", *EXTRA_ARGS["embed"])
    assert code == 0, err
    return ws


def test_check_device_takes_auto_cpu_cuda_and_cuda_n_only():
    for good in ("auto", "cpu"):
        assert check_device(good) == good
    for bad in [*NONSENSE, None, 0]:
        with pytest.raises(CurateError, match=r"device must be auto, cpu, cuda or cuda:N, not"):
            check_device(bad)
    for absent in ABSENT:
        with pytest.raises(CurateError, match="CUDA GPU"):
            check_device(absent)
        assert check_device(absent, here=False) == absent  # Ray workers choose on their own machines
    with pytest.raises(CurateError, match="device must be"):
        resolve_device("gpu")
    assert resolve_device("cpu").type == "cpu"


def test_work_sent_to_ray_may_name_a_gpu_only_the_workers_have():
    from curate.embed.stage import EmbedConfig
    from curate.settings import build_config

    for absent in ABSENT:
        assert build_config(EmbedConfig, {"device": absent, "executor": "ray"}, "embed").device == absent
        with pytest.raises(CurateError, match=r"^\[embed\] device .*CUDA GPU"):
            build_config(EmbedConfig, {"device": absent}, "embed")
    with pytest.raises(CurateError, match=r"^\[embed\] device must be auto, cpu, cuda or cuda:N, not 'gpu'$"):
        build_config(EmbedConfig, {"device": "gpu", "executor": "ray"}, "embed")


def test_embed_on_a_device_that_is_not_there_keeps_the_finished_store(embedded, capsys):
    before = snapshot(embedded)
    for device in [*ABSENT, "gpu", "bogus"]:
        code, _, err = cli(capsys, "embed", "-w", str(embedded), "--device", device, *EXTRA_ARGS["embed"])
        assert code == 2, (device, err)
        assert err.count("\n") == 1 and err.startswith("error: [embed] device") and "Traceback" not in err, err
        assert ("auto, cpu, cuda or cuda:N" in err) if device in ("gpu", "bogus") else ("CUDA GPU" in err), err
        assert snapshot(embedded) == before, device  # nothing was touched: meta.json and the vectors are there
    ws = Workspace(str(embedded))
    assert list_stores(ws) == ["perceptual-v2"] and open_store(ws, "perceptual-v2").valid.all()
    code, out, err = cli(capsys, "embed", "-w", str(embedded), "--device", "cpu", *EXTRA_ARGS["embed"])
    assert code == 0 and "(unchanged, reused)" in out, (out, err)  # the finished run is still the current one


def commands_with_device() -> set[str]:
    return {name for name, (module, _) in COMMANDS.items()
            if any(p.name == "device" for p in importlib.import_module(module).command.params)}


def test_every_command_that_takes_device_refuses_a_bad_one_before_touching_anything(embedded, tmp_path, capsys):
    assert commands_with_device() == set(EXTRA_ARGS)  # a new command with --device belongs in this test
    before = snapshot(embedded)
    runs = [(name, [a.format(tmp=tmp_path, ws=embedded) for a in extra]) for name, extra in EXTRA_ARGS.items()]
    runs += [("dedup", ["--method", method]) for method in DEDUP_METHODS[1:]]
    for name, extra in runs:
        for device in ["bogus", *ABSENT]:
            code, _, err = cli(capsys, name, "-w", str(embedded), *extra, "--device", device)
            assert code == 2, (name, extra, device, err)
            assert err.count("\n") == 1 and "device" in err and "Traceback" not in err, (name, err)
            assert snapshot(embedded) == before, (name, device)
    assert not (tmp_path / "batch.csv").exists()


def test_a_pipeline_file_with_a_bad_device_stops_before_the_first_stage(tmp_path, capsys):
    for i in range(4):
        write(tmp_path / "imgs" / f"{i}.png", encode_image((16, 12), seed=i))
    for device in ["gpu", *ABSENT]:
        text = (f'workspace = "{tmp_path / "ws"}"\n[ingest]\nsources = ["{tmp_path / "imgs"}"]\n'
                f'[embed]\ndevice = "{device}"\n')
        toml = write(tmp_path / "p.toml", text.encode())
        code, _, err = cli(capsys, "run", str(toml), "--no-progress")
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: [embed] device"), err
        assert not (tmp_path / "ws").exists()  # not even ingest ran
