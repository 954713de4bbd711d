"""`curate doctor` on this machine: the CPU answers here, the GPU answers on a CUDA node."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner

from curate import doctor
from curate.cli import cli

CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answers need a machine without CUDA")


def run_json() -> dict:
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@CPU_ONLY
def test_doctor_json_on_a_cpu_machine():
    report = run_json()
    assert report["versions"]["numpy"] == np.__version__ and report["versions"]["pyarrow"] == pa.__version__
    assert report["versions"]["torch"] == torch.__version__.split("+")[0] or \
        report["versions"]["torch"] == torch.__version__
    assert report["cuda"] == {"usable": False, "devices": [], "error": "torch sees no CUDA device"}
    assert report["triton"]["usable"] is False
    assert report["faiss"]["usable"] is True and report["faiss"]["gpus"] == 0
    assert report["stages"] == {
        "embed": {"device": "cpu", "precision": "fp32", "decode": "PIL in loader workers"},
        "dedup": {"device": "cpu", "kmeans": "torch (cpu)", "kernel": "reference"},
        "prune": {"device": "cpu", "kcenter_kernel": "reference"},
        "export": {"device": "cpu"},
    }


@CPU_ONLY
def test_doctor_text_report_names_every_check_and_stage():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("versions  curate ")
    assert [line.split()[0] for line in lines[1:5]] == ["cuda", "faiss", "triton", "ray"]
    assert "dedup   device: cpu, kmeans: torch (cpu), kernel: reference" in result.output


def test_a_failing_check_is_reported_not_raised(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded\nsecond line")

    monkeypatch.setattr(doctor, "check_cuda", broken)
    monkeypatch.setattr(doctor, "check_ray", lambda: (_ for _ in ()).throw(ImportError("no module named ray")))
    report = doctor.diagnose()
    assert report["cuda"] == {"usable": False, "error": "RuntimeError: driver exploded"}
    assert report["ray"] == {"usable": False, "error": "ImportError: no module named ray"}
    assert report["stages"]["prune"]["kcenter_kernel"] == "reference"
    assert "cuda      no (RuntimeError: driver exploded)" in doctor.render(report)


@pytest.mark.gpu
def test_doctor_on_a_gpu_node():
    report = run_json()
    assert report["cuda"]["usable"] and report["cuda"]["devices"][0]["memory_total_gib"] > 1
    assert report["stages"]["embed"]["device"].startswith("cuda")
    assert report["triton"]["usable"], report["triton"]  # triton ships with torch's CUDA wheels
    assert report["stages"]["dedup"]["kernel"] == report["stages"]["prune"]["kcenter_kernel"] == "triton"
