"""Optional dependencies: a missing extra (Ray for ``--executor ray``) is a one-line error that
names ``pip install 'curate[...]'``, before the workspace is touched; never an ImportError traceback.
Ray is installed in the test environment, so these tests make ``import ray`` fail."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curate.errors import CurateError
from curate.extras import require, require_ray
from tests.conftest import encode_image, run_cli, write

HINT = "pip install 'curate[ray]'"


@pytest.fixture
def no_ray(monkeypatch):
    """``import ray`` raises ImportError, as on a machine without the extra."""
    monkeypatch.setitem(sys.modules, "ray", None)


def cli(capsys, *args: str) -> tuple[int, str]:
    """Run the ``curate`` entry point in this process: (exit status, stderr)."""
    code, _, err = run_cli(capsys, *args)
    return code, err

def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_require_names_the_extra_in_one_line(no_ray):
    with pytest.raises(CurateError, match=r"^--executor ray needs ray, .*: pip install 'curate\[ray\]'$") as err:
        require_ray()
    assert "\n" not in str(err.value)
    with pytest.raises(CurateError, match=r"pip install 'curate\[gpu\]'"):
        require("curate_no_such_module", "gpu", "--thing")
    assert require("json", "x", "y").__name__ == "json"


def test_ray_call_sites_raise_the_one_line_error(no_ray):
    from curate.dedup.scoring import _score_on_ray
    from curate.embed.ray_executor import run_on_ray

    with pytest.raises(CurateError, match=r"curate\[ray\]"):
        run_on_ray(None, None, [(0, [{}])], lambda *a: None, lambda n: None, "ws", 4)
    with pytest.raises(CurateError, match=r"curate\[ray\]"):
        _score_on_ray(np.zeros((2, 4), np.float16), [], torch.device("cpu"), None)


def test_executor_ray_without_ray_is_one_line_and_touches_nothing(tmp_path, capsys, no_ray):
    for i in range(6):
        write(tmp_path / "imgs" / f"{i}.png", encode_image((16, 12), seed=i))
    ws = str(tmp_path / "ws")
    assert cli(capsys, "ingest", str(tmp_path / "imgs"), "-w", ws, "--no-progress")[0] == 0
    assert cli(capsys, "embed", "-w", ws, "--workers", "0", "--no-progress")[0] == 0
    before = snapshot(tmp_path / "ws")
    for args in (["embed", "-w", ws, "--workers", "0", "--batch-size", "2", "--no-progress", "--executor", "ray"],
                 ["dedup", "-w", ws, "--method", "semantic", "--executor", "ray"]):
        code, err = cli(capsys, *args)
        assert code == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("error: --executor ray needs ray") and HINT in err, err
        assert snapshot(tmp_path / "ws") == before, args
    toml = write(tmp_path / "p.toml", f'workspace = "{ws}"\n[dedup]\nexecutor = "ray"\n'.encode())
    code, err = cli(capsys, "run", str(toml), "--no-progress")
    assert code == 2 and err.count("\n") == 1 and HINT in err, err
