"""One device decision per stage run: ``--device cpu`` is resolved once (``RunContext.device``) and the
helpers deep in select, dedup and prune are handed that ``torch.device``, not the spelling."""

import numpy as np
import pytest
import torch

import curate.device
from curate.cli import main
from tests.conftest import vector_workspace

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    x[1] = x[0]  # a duplicate for dedup to find
    labels = [["a", "b"][i % 2] if i < 10 else None for i in range(60)]
    return vector_workspace(tmp_path_factory.mktemp("device"), "d", x, label=labels)


@pytest.fixture
def resolutions(monkeypatch):
    """Spellings resolved to a torch.device (``resolve_device`` checks each with ``here=False``)."""
    seen = []
    check = curate.device.check_device

    def counting(device, *, here=True):
        if not here:
            seen.append(device)
        return check(device, here=here)

    monkeypatch.setattr(curate.device, "check_device", counting)
    return seen


def recorder(monkeypatch, module, name, got):
    """Replace ``module.name`` by a wrapper that records the ``device`` it is given, then calls through."""
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        got.append(kwargs["device"] if "device" in kwargs else next(a for a in args if isinstance(a, torch.device)))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def cli(*args):
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code == 0, exc


def test_select_with_device_cpu_hands_a_torch_device_down(ws, monkeypatch, resolutions, tmp_path):
    import curate.select.kcenter

    got = []
    recorder(monkeypatch, curate.select.kcenter, "kcenter_greedy", got)
    cli("select", "-w", ws.root.path, "--budget", "3", "--strategy", "coreset", "--device", "cpu",
        "--out", str(tmp_path / "batch.csv"))
    assert got == [CPU] and resolutions == ["cpu"]


def test_semantic_dedup_with_device_cpu_hands_a_torch_device_down(ws, monkeypatch, resolutions):
    import curate.dedup.scoring
    from curate.dedup.semantic import SemanticConfig, semantic_dedup

    got = []
    recorder(monkeypatch, curate.dedup.scoring, "score_batch", got)
    semantic_dedup(ws, SemanticConfig(device="cpu", clusters=3), progress=False, force=True)
    assert got and set(got) == {CPU} and all(type(d) is torch.device for d in got)
    assert resolutions == ["cpu"]


def test_prune_with_device_cpu_hands_a_torch_device_down(ws, monkeypatch, resolutions):
    import curate.prune.strategies
    from curate.prune.stage import PruneConfig, prune

    got = []
    recorder(monkeypatch, curate.prune.strategies, "kcenter_greedy", got)
    recorder(monkeypatch, curate.prune.strategies, "nearest_distance", got)
    prune(ws, PruneConfig(fraction=0.5, device="cpu"), progress=False, force=True)
    assert got and set(got) == {CPU} and resolutions == ["cpu"]
