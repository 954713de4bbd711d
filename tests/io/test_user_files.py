"""Files a user names (sources, option files, pipeline files, paths in tables) go through one helper,
``curate.io.fs``'s ``check_user_file`` / ``open_user_file`` / ``read_user_file``: regular files only
(checked by stat, never opened otherwise) and read under a size cap; otherwise a one-line error."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from curate.cli import main
from curate.io.fs import UserFileError, check_user_file, locate, open_user_file, read_user_file
from tests.bounded import run_curate
from tests.select.test_select_stage import spread, workspace


def _unblock_later(fifo: Path, seconds: float) -> threading.Timer:
    """If a regression opens the FIFO, a writer opens and closes it after ``seconds`` (EOF, no hang)."""
    def unblock() -> None:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    timer = threading.Timer(seconds, unblock)
    timer.daemon = True
    timer.start()
    return timer


def _cli(capsys, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        status = 0
    except SystemExit as exc:
        status = exc.code
    return status, capsys.readouterr().err


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A text workspace of 6 items with (precomputed) embeddings: prune and select run on it."""
    return workspace(tmp_path_factory.mktemp("user-files"), spread(6))


# --- the helper ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, kind", [
    (lambda d: os.mkfifo(d / "f") or d / "f", "a named pipe (FIFO)"),
    (lambda d: os.mkfifo(d / "f") or os.symlink(d / "f", d / "link") or d / "link", "a named pipe (FIFO)"),
    (lambda d: Path("/dev/zero"), "a device"),
    (lambda d: d, "a folder"),
])
def test_what_is_not_a_regular_file_is_refused_without_being_opened(tmp_path, make, kind):
    path = make(tmp_path)
    timer = _unblock_later(tmp_path / "f", 5) if (tmp_path / "f").exists() else None
    began = time.monotonic()
    try:
        for call in (check_user_file, read_user_file):
            with pytest.raises(UserFileError) as err:
                call(locate(str(path)), what="--labeled", max_bytes=1 << 20)
            assert str(err.value) == f"--labeled {path} is {kind}, not a regular file: refusing to read it"
            assert err.value.reason == f"unsafe-path: {kind}, not a regular file; not read"
        with pytest.raises(UserFileError), open_user_file(str(path), what="x", max_bytes=None):
            pass
    finally:
        if timer:
            timer.cancel()
    assert time.monotonic() - began < 5


def test_a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_bytes(b"a\nb\nc\n")
    assert read_user_file(str(path), what="--labeled", max_bytes=6) == b"a\nb\nc\n"
    with pytest.raises(UserFileError, match=r"--labeled .*ids.txt is 6 bytes, over the cap of 5 bytes") as err:
        read_user_file(str(path), what="--labeled", max_bytes=5)
    assert err.value.reason.startswith("file-too-large: 6 bytes")
    with pytest.raises(UserFileError, match=r"cannot read --labeled .*nope: No such file"):
        check_user_file(locate(str(tmp_path / "nope")), what="--labeled", max_bytes=5)


# --- option files through the CLI ---------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("prune", "--count", "2", "--labeled", "/dev/zero"),
    ("select", "--budget", "2", "--strategy", "random", "--out", "{tmp}/b.csv", "--labeled", "/dev/zero"),
    ("select", "--budget", "2", "--strategy", "similar", "--out", "{tmp}/b.csv", "--queries", "/dev/zero"),
])
def test_an_option_file_that_is_a_device_is_a_one_line_error(ws, tmp_path, args):
    # prune --labeled /dev/zero was OOM-killed at 24 GB; select gave a MemoryError traceback
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = run_curate(args[0], "-w", ws.root.path, "--no-progress", *args[1:], max_rss_mb=1500)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {args[-2]} /dev/zero is a device, not a regular file: refusing to read it"]
    assert not (tmp_path / "b.csv").exists()


@pytest.mark.parametrize("args, option", [
    (("prune", "--count", "2", "--labeled", "{fifo}"), "--labeled"),
    (("select", "--budget", "2", "--strategy", "random", "--out", "{tmp}/b.csv", "--labeled", "{fifo}"), "--labeled"),
    (("select", "--budget", "2", "--strategy", "entropy", "--out", "{tmp}/b.csv", "--predictions", "{fifo}"),
     "--predictions"),
    (("select", "--budget", "2", "--strategy", "similar", "--out", "{tmp}/b.csv", "--queries", "{fifo}"),
     "--queries"),
])
def test_an_option_file_that_is_a_fifo_is_a_one_line_error(ws, tmp_path, capsys, args, option):
    fifo = tmp_path / "ids.txt"
    os.mkfifo(fifo)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{fifo}", str(fifo)) for a in args]
    timer = _unblock_later(fifo, 10)
    try:
        status, err = _cli(capsys, args[0], "-w", ws.root.path, "--no-progress", *args[1:])
    finally:
        timer.cancel()
    assert status == 2
    assert err.strip().splitlines() == [
        f"error: {option} {fifo} is a named pipe (FIFO), not a regular file: refusing to read it"]


def test_a_pipeline_file_that_is_a_fifo_or_a_device_is_a_one_line_error(tmp_path, capsys):
    fifo = tmp_path / "pipeline.toml"
    os.mkfifo(fifo)
    timer = _unblock_later(fifo, 10)
    try:
        status, err = _cli(capsys, "run", str(fifo))
    finally:
        timer.cancel()
    assert (status, err.strip()) == (
        2, f"error: pipeline file {fifo} is a named pipe (FIFO), not a regular file: refusing to read it")
    done = run_curate("run", "/dev/zero", max_rss_mb=1500)  # in a child: a regression would read it whole
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: pipeline file /dev/zero is a device, not a regular file: refusing to read it")
