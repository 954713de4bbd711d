"""The install works on a fresh machine: nothing in the checkout shadows an installed package,
and every package the test extra brings is pinned in constraints/cpu.txt."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_sentence_transformers_imports_from_the_repository_root():
    """transformers imports the PyPI package ``kernels``; a folder of ours must not shadow it."""
    pytest.importorskip("sentence_transformers")
    out = subprocess.run([sys.executable, "-c", "import sentence_transformers, kernels; print(kernels.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not Path(out.stdout.strip()).resolve().is_relative_to(ROOT)


def test_no_top_level_folder_is_an_import_package_but_curate():
    """``python -m pytest`` puts the repository root on sys.path: only ``curate`` may be importable there."""
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    assert packages == ["curate"]
    assert "pythonpath" not in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / "cpu.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonicalize_name(name.split("[")[0])] = version.strip()
    return pins


def _closure(extras: set[str]) -> set[str]:
    """Every distribution ``curate[extras]`` installs here, following installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("curate", frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in map(Requirement, requires):
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted or {""}):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen} - {"curate"}


def test_every_package_of_the_test_install_is_pinned():
    """A fresh machine installs what CI ran: no unpinned package can move under the suite."""
    pins = _pins()
    installed = {dep for dep in _closure({"cpu", "test"}) if _is_installed(dep)}
    missing = sorted(installed - pins.keys())
    assert not missing, f"add to constraints/cpu.txt: {missing}"
    for dep in ("transformers", "sentence-transformers", "torch", "kernels"):
        assert dep in pins


def _is_installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False
