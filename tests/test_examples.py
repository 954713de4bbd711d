"""The example pipeline files (README quick starts): every folder they create is ignored by git."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def created_folders(spec: dict) -> set[str]:
    """Top-level folders (relative to the repository root) a pipeline file writes: the workspace, the
    demo folder, and any relative ``out`` of a stage (exports and the report go in the workspace)."""
    paths = [spec.get("workspace"), spec.get("demo", {}).get("folder", "demo-data") if "demo" in spec else None]
    paths += [section.get("out") for section in spec.values() if isinstance(section, dict)]
    return {Path(p).parts[0] for p in paths if p and "://" not in p and not Path(p).is_absolute()}


def ignored_by_patterns(folder: str, lines: list[str]) -> bool:
    """Whether a plain ``.gitignore`` pattern (``/name/``, ``name/``, ``name``) covers ``folder``."""
    patterns = [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.startswith(("#", "!"))]
    return any(fnmatch.fnmatchcase(folder, p) for p in patterns)


def test_every_example_is_found_and_names_its_folders():
    assert {p.name for p in EXAMPLES} >= {"quickstart-images.toml", "quickstart-text.toml"}
    text = tomllib.loads((REPO / "examples" / "quickstart-text.toml").read_text())
    assert created_folders(text) == {"ws-text", "text-demo"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_quick_start_folders_are_git_ignored(example):
    folders = created_folders(tomllib.loads(example.read_text()))
    assert folders
    lines = (REPO / ".gitignore").read_text().splitlines()
    for folder in folders:
        assert ignored_by_patterns(folder, lines), f"{folder}/ ({example.name}) is not in .gitignore"
    if shutil.which("git") and (REPO / ".git").exists():  # git's own answer, for a file inside each folder
        probes = [f"{folder}/file" for folder in folders]
        proc = subprocess.run(["git", "-C", str(REPO), "check-ignore", "--no-index", *probes],
                              capture_output=True, text=True, timeout=60)
        assert sorted(proc.stdout.split()) == sorted(probes), proc.stderr
