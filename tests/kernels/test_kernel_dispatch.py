"""Dispatch: auto picks by the tensor's device, forced paths, and the interpreter subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from curate.kernels import dispatch
from curate.kernels.kcenter_update import kcenter_update_reference, kcenter_update_triton
from curate.kernels.max_sim_earlier import max_sim_earlier_reference, max_sim_earlier_triton
from curate.kernels.topk_cosine import topk_cosine_reference
from tests.kernels.conftest import IN_PROCESS, TOL, unit_rows


def test_auto_uses_the_reference_on_cpu():
    x = unit_rows(4, 3)
    assert dispatch.resolve("max_sim_earlier", "auto", x) is max_sim_earlier_reference
    assert dispatch.resolve("kcenter_update", "auto", x) is kcenter_update_reference
    assert dispatch.resolve("topk_cosine", "auto", x) is topk_cosine_reference


def test_forced_and_invalid_choices():
    x = unit_rows(4, 3)
    assert dispatch.resolve("max_sim_earlier", "triton", x) is max_sim_earlier_triton
    assert dispatch.resolve("kcenter_update", "reference", x) is kcenter_update_reference
    with pytest.raises(ValueError, match="no Triton kernel"):
        dispatch.topk_cosine(x, x, 1, impl="triton")
    with pytest.raises(ValueError, match="impl must be"):
        dispatch.max_sim_earlier(x, torch.tensor([0, 4]), impl="cuda")


def test_public_functions_run_the_reference():
    x = unit_rows(9, 5, seed=1)
    sims, arg = dispatch.max_sim_earlier(x, torch.tensor([0, 4, 9]))
    want = max_sim_earlier_reference(x, torch.tensor([0, 4, 9]))
    assert torch.equal(sims, want[0]) and torch.equal(arg, want[1])
    mind, i, v = dispatch.kcenter_update(x, x[0], torch.full((9,), float("inf")))
    assert mind[0] == pytest.approx(0.0, abs=1e-6) and mind[i] == v
    sims, idx = dispatch.topk_cosine(x, x, 2, exclude_self=True)
    assert not (idx == torch.arange(9)[:, None]).any()


@pytest.mark.interpreted
def test_forced_triton_runs_on_cpu_in_the_interpreter():
    x = unit_rows(20, 8, seed=2)
    seg = torch.tensor([0, 11, 20])
    got, want = dispatch.max_sim_earlier(x, seg, impl="triton"), dispatch.max_sim_earlier(x, seg, impl="reference")
    torch.testing.assert_close(got[0], want[0], **TOL[torch.float32])
    assert torch.equal(got[1], want[1])


@pytest.mark.skipif(IN_PROCESS, reason="the interpreted tests ran in this process")
def test_interpreted_in_subprocess():
    """triton was imported before TRITON_INTERPRET could take effect: run the interpreted tests afresh."""
    pytest.importorskip("triton")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "interpreted", "-p", "no:cacheprovider",
                          str(Path(__file__).parent)], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1], run.stdout[-2000:]


@pytest.mark.gpu
def test_auto_uses_triton_on_cuda():
    x = unit_rows(4, 3).cuda()
    assert dispatch.resolve("max_sim_earlier", "auto", x) is max_sim_earlier_triton
    assert dispatch.resolve("kcenter_update", "auto", x) is kcenter_update_triton
    assert dispatch.resolve("topk_cosine", "auto", x) is topk_cosine_reference
