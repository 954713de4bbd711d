"""What curate accepts as a workspace folder: a new or empty one, or one it already wrote."""

from __future__ import annotations

import os

import pytest

from curate.cli import main
from curate.errors import CurateError
from curate.workspace import Workspace


def _cli(capsys, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


def _tree(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


def test_a_data_folder_given_as_the_workspace_is_refused_before_anything_is_written(tmp_path, capsys):
    # `curate ingest ../text/a.jsonl -w ../text` put manifest/ and state/ among the data files
    text = tmp_path / "text"
    text.mkdir()
    (text / "a.jsonl").write_text('{"text": "hello"}\n')
    (text / "b.jsonl").write_text('{"text": "world"}\n')
    status, err = _cli(capsys, "ingest", str(text / "a.jsonl"), "-w", str(text), "--no-progress")
    assert status == 2
    assert err.strip().splitlines() == [
        f"error: workspace {text} is not empty and not a curate workspace (it holds a.jsonl, b.jsonl): "
        "give a new or empty folder as -w, never a data folder"]
    assert _tree(text) == ["a.jsonl", "b.jsonl"]


def test_a_file_given_as_the_workspace_is_refused(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "ws.txt").write_text("a file")
    status, err = _cli(capsys, "ingest", str(tmp_path / "a.jsonl"), "-w", str(tmp_path / "ws.txt"))
    assert (status, err.strip()) == (
        2, f"error: workspace {tmp_path / 'ws.txt'} is a file, not a folder: give a new or empty folder as -w")
    assert (tmp_path / "ws.txt").read_text() == "a file"


def test_new_empty_and_existing_workspaces_are_accepted(tmp_path, capsys):
    (tmp_path / "a.jsonl").write_text('{"text": "hello"}\n')
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"")  # hidden files do not make a folder a data folder
    for ws in ("new", "empty"):
        status, err = _cli(capsys, "ingest", str(tmp_path / "a.jsonl"), "-w", str(tmp_path / ws), "--no-progress")
        assert status == 0, err
    (tmp_path / "new" / "notes.txt").write_text("mine")  # a workspace curate wrote may hold the user's files
    status, err = _cli(capsys, "ingest", str(tmp_path / "a.jsonl"), "-w", str(tmp_path / "new"), "--no-progress")
    assert status == 0, err
    Workspace(str(tmp_path / "new")).require_usable()


def test_a_folder_of_workspace_layout_without_a_manifest_is_a_workspace(tmp_path):
    # an ingest killed before its first manifest leaves state/ (and maybe decisions/) only
    (tmp_path / "ws" / "state" / "ingest").mkdir(parents=True)
    Workspace(str(tmp_path / "ws")).require_usable()
    (tmp_path / "ws" / "train").mkdir()
    with pytest.raises(CurateError, match="it holds train"):
        Workspace(str(tmp_path / "ws")).require_usable()
