"""Workspace lock: one writer per workspace, stale-lock takeover, --wait, object storage."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from curate.errors import CurateError
from curate.io import lock
from curate.io.fs import locate
from curate.io.lock import LockInfo, WorkspaceBusy, workspace_lock

REPO = Path(__file__).resolve().parents[2]

# Takes the lock, says "held", holds it until file GO appears, then says when it releases.
# MODE "exit" leaves with os._exit(0) while holding (no cleanup runs), "keep" holds until killed.
HOLDER = r"""
import os, sys, time
from curate.io.fs import locate
from curate.io.lock import workspace_lock
ws, go, mode = sys.argv[1:4]
with workspace_lock(locate(ws), "curate ingest"):
    print("held", flush=True)
    while not os.path.exists(go):
        time.sleep(0.01)
    if mode == "exit":
        os._exit(0)
    print("release", repr(time.time()), flush=True)
"""

# Waits for file START, makes one attempt without waiting, prints "won" (then holds until GO) or "busy".
RACER = r"""
import os, sys, time
from curate.io.fs import locate
from curate.io.lock import WorkspaceBusy, workspace_lock
ws, start, go = sys.argv[1:4]
print("ready", flush=True)
while not os.path.exists(start):
    time.sleep(0.001)
try:
    with workspace_lock(locate(ws), "curate racer"):
        print("won", flush=True)
        while not os.path.exists(go):
            time.sleep(0.01)
except WorkspaceBusy:
    print("busy", flush=True)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _spawn(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True,
                            env=_env(), cwd=REPO)


def _holder(ws: Path, go: Path, mode: str = "release") -> subprocess.Popen:
    proc = _spawn(HOLDER, ws, go, mode)
    line = proc.stdout.readline().strip()
    assert line == "held", f"holder said {line!r}"
    return proc


def _lock_file(ws: Path) -> dict:
    return json.loads((ws / "state" / "lock.json").read_text())


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _record(pid: int, host: str | None = None, token: str = "t" * 32, **extra) -> dict:
    return {"pid": pid, "host": host or socket.gethostname(), "command": "curate old", "started": time.time() - 60,
            "token": token, **extra}


def _write_lock(ws: Path, obj) -> Path:
    path = ws / "state" / "lock.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# --- two processes ----------------------------------------------------------------------------

def test_second_taker_gets_workspace_busy_naming_pid_and_command(tmp_path):
    ws, go = tmp_path / "ws", tmp_path / "go"
    proc = _holder(ws, go)
    try:
        with pytest.raises(WorkspaceBusy) as err, workspace_lock(locate(str(ws)), "curate dedup"):
            pytest.fail("second taker must not get the lock")
        msg = str(err.value)
        assert re.fullmatch(
            rf"workspace {re.escape(str(ws))} is in use by pid {proc.pid} on {re.escape(socket.gethostname())} "
            r"\(curate ingest, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\); wait for it, or rerun with --wait", msg), msg
        assert isinstance(err.value, CurateError)
        assert err.value.holder.pid == proc.pid and err.value.holder.command == "curate ingest"
        assert _lock_file(ws)["pid"] == proc.pid  # the failed attempt left the holder's file alone
    finally:
        go.touch()
        proc.wait(timeout=10)
    assert not (ws / "state" / "lock.json").exists()
    with workspace_lock(locate(str(ws)), "curate dedup") as info:
        assert info.pid == os.getpid() and _lock_file(ws)["command"] == "curate dedup"


def test_wait_gets_the_lock_after_the_holder_releases(tmp_path):
    ws, go = tmp_path / "ws", tmp_path / "go"
    proc = _holder(ws, go)
    waited_for: list[LockInfo] = []

    def on_wait(info: LockInfo) -> None:
        waited_for.append(info)
        go.touch()  # let the holder go only once we are waiting

    try:
        with workspace_lock(locate(str(ws)), "curate dedup", wait=True, poll=0.05, timeout=20,
                            on_wait=on_wait) as info:
            got_at = time.time()
            assert _lock_file(ws)["pid"] == os.getpid() == info.pid
    finally:
        go.touch()
        out = proc.communicate(timeout=10)[0]
    released_at = float(out.split()[-1])
    assert released_at < got_at
    assert [w.pid for w in waited_for] == [proc.pid]  # told once, however many polls


def test_wait_gives_up_after_timeout(tmp_path):
    ws, go = tmp_path / "ws", tmp_path / "go"
    proc = _holder(ws, go)
    try:
        began = time.monotonic()
        with pytest.raises(WorkspaceBusy, match=rf"still in use by pid {proc.pid} .*gave up after 0.3 s"), \
                workspace_lock(locate(str(ws)), "curate dedup", wait=True, poll=0.05, timeout=0.3):
            pass
        assert time.monotonic() - began >= 0.3
    finally:
        go.touch()
        proc.wait(timeout=10)


@pytest.mark.parametrize("death", ["sigkill", "os_exit", "zombie"])
def test_lock_left_by_a_killed_process_is_taken_over(tmp_path, death):
    if death == "zombie" and not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc")
    ws, go = tmp_path / "ws", tmp_path / "go"
    proc = _holder(ws, go, "exit" if death == "os_exit" else "keep")
    if death == "os_exit":
        go.touch()
    else:
        proc.kill()
    if death == "zombie":  # killed, not reaped yet: os.kill(pid, 0) still succeeds
        deadline = time.monotonic() + 10
        while (lock._proc_stat(proc.pid) or ("?",))[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        proc.wait(timeout=10)
    left = _lock_file(ws)
    assert left["pid"] == proc.pid
    with workspace_lock(locate(str(ws)), "curate dedup") as info:
        now = _lock_file(ws)
        assert now["pid"] == os.getpid() == info.pid and now["token"] == info.token != left["token"]
    assert os.listdir(ws / "state") == [lock.GUARD_NAME]  # no renamed leftovers
    proc.wait(timeout=10)


def test_a_leftover_lock_of_this_very_process_is_stale(tmp_path):
    # e.g. written by a process that had our pid before us, or left by an interrupted take
    _write_lock(tmp_path, _record(os.getpid(), token="leftover"))
    with workspace_lock(locate(str(tmp_path)), "curate x") as info:
        assert _lock_file(tmp_path)["token"] == info.token != "leftover"


def test_racing_processes_for_a_stale_lock_only_one_wins(tmp_path):
    ws, start, go = tmp_path / "ws", tmp_path / "start", tmp_path / "go"
    _write_lock(ws, _record(_dead_pid()))
    racers = [_spawn(RACER, ws, start, go) for _ in range(6)]
    assert [proc.stdout.readline().strip() for proc in racers] == ["ready"] * 6
    start.touch()
    try:
        said = []
        for proc in racers:
            line = proc.stdout.readline().strip()
            said.append(line)
            if line == "won":
                winner = proc.pid
        assert sorted(said) == ["busy"] * 5 + ["won"], said
        assert _lock_file(ws)["pid"] == winner
    finally:
        go.touch()
        for proc in racers:
            proc.wait(timeout=10)


@pytest.mark.parametrize(("guard", "takers"), [("flock", 8), ("none", 2)])
def test_takeover_of_a_stale_file_is_exclusive_under_contention(tmp_path, monkeypatch, guard, takers):
    # Threads run attempts against one stale file (bypassing the in-process threading lock, as
    # separate processes would): exactly one wins every round. Without flock (filesystems that
    # refuse it) the rename-and-check fallback is exclusive for two takers.
    if guard == "none":
        monkeypatch.setattr(lock, "fcntl", None)
    path = str(tmp_path / "state" / "lock.json")
    alive = os.getppid()  # a live process of this host stands in for each winner
    dead = _dead_pid()
    for rnd in range(30):
        _write_lock(tmp_path, _record(dead, token=f"stale{rnd}"))
        results = []
        barrier = threading.Barrier(takers)

        def attempt(i, results=results, barrier=barrier):
            info = LockInfo(alive, socket.gethostname(), f"racer {i}", time.time(), uuid.uuid4().hex)
            barrier.wait()
            while True:
                outcome, _ = lock._try_local(path, lock._Record(info, None, None), "k")
                if outcome in (lock._WON, lock._BUSY):
                    results.append(outcome)
                    return

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(takers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [lock._BUSY] * (takers - 1) + [lock._WON]
        assert "lock.json" in os.listdir(tmp_path / "state")
        assert all(n in ("lock.json", lock.GUARD_NAME) for n in os.listdir(tmp_path / "state"))
        os.unlink(path)


# --- pid reuse, other hosts, garbage ----------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_reused_pid_is_told_apart_by_its_start_time(tmp_path):
    other = os.getppid()  # alive, and not us
    real_start = lock._proc_stat(other)[1]
    _write_lock(tmp_path, _record(other, proc_start=real_start))
    with pytest.raises(WorkspaceBusy, match=f"pid {other} "), workspace_lock(locate(str(tmp_path)), "curate x"):
        pass
    _write_lock(tmp_path, _record(other, proc_start=real_start + 1))  # same pid, another process
    with workspace_lock(locate(str(tmp_path)), "curate x") as info:
        assert _lock_file(tmp_path)["pid"] == info.pid == os.getpid()


def test_a_holder_on_another_host_is_respected(tmp_path):
    _write_lock(tmp_path, _record(_dead_pid(), host="elsewhere.example"))
    with pytest.raises(WorkspaceBusy) as err, workspace_lock(locate(str(tmp_path)), "curate x"):
        pass
    assert "on elsewhere.example (curate old, since" in str(err.value)
    assert "cannot tell" in str(err.value) and str(tmp_path / "state" / "lock.json") in str(err.value)


@pytest.mark.parametrize("garbage", ["", "{\"pid\": 12", "[1, 2]", "{\"pid\": 0, \"host\": \"h\"}", "\x00\xff"])
def test_an_old_unreadable_lock_file_is_stale(tmp_path, garbage):
    path = _write_lock(tmp_path, garbage)
    old = time.time() - 60
    os.utime(path, (old, old))
    with workspace_lock(locate(str(tmp_path)), "curate x") as info:
        assert _lock_file(tmp_path)["token"] == info.token
    assert not path.exists()


def test_a_young_unreadable_lock_file_is_a_writer_mid_write(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "STALE_UNREADABLE_AFTER", 0.3)
    _write_lock(tmp_path, "")
    began = time.monotonic()
    with workspace_lock(locate(str(tmp_path)), "curate x") as info:
        assert time.monotonic() - began >= 0.25  # not taken over before it is old enough
        assert _lock_file(tmp_path)["token"] == info.token


def test_a_young_unreadable_lock_file_counts_against_a_timeout(tmp_path):
    _write_lock(tmp_path, "")
    with pytest.raises(WorkspaceBusy, match="being written.*gave up after 0.1 s"), \
            workspace_lock(locate(str(tmp_path)), "curate x", wait=True, timeout=0.1):
        pass



@pytest.mark.parametrize("garbage", ["", "{\"pid\": 12", "\x00\xff"])
def test_a_garbled_lock_file_with_a_future_mtime_is_taken_over_with_one_line(tmp_path, monkeypatch, caplog, garbage):
    # An mtime in the future (clock skew, NFS) made its age negative: every command waited forever.
    monkeypatch.setattr(lock, "STALE_UNREADABLE_AFTER", 0.3)
    path = _write_lock(tmp_path, garbage)
    future = time.time() + 86400
    os.utime(path, (future, future))
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="curate.io.lock"), \
            workspace_lock(locate(str(tmp_path)), "curate x") as info:
        assert 0.25 <= time.monotonic() - began < 5
        assert _lock_file(tmp_path)["token"] == info.token
    assert [r.getMessage() for r in caplog.records] == [
        f"lock file {path} is unreadable (empty or garbled) and no curate process has written it for 0 s: "
        "taking it over"]


def test_a_lock_file_that_is_a_fifo_is_garbage_not_a_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "STALE_UNREADABLE_AFTER", 0.2)
    path = tmp_path / "state" / "lock.json"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    with workspace_lock(locate(str(tmp_path)), "curate x") as info:
        assert _lock_file(tmp_path)["token"] == info.token


def test_cli_on_a_garbled_future_lock_says_so_and_goes_on(tmp_path):
    from tests.bounded import run_curate

    (tmp_path / "a.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    path = _write_lock(tmp_path / "ws", "{garbled")
    future = time.time() + 3600
    os.utime(path, (future, future))
    done = run_curate("ingest", str(tmp_path / "a.jsonl"), "-w", str(tmp_path / "ws"), "--no-progress", timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (f"lock file {path} is unreadable (empty or garbled): waiting up to 5 s for a curate "
                        "process to finish writing it, then taking it over")
    assert lines[1].startswith(f"lock file {path} is unreadable (empty or garbled) and no curate process has "
                               "written it for ") and lines[1].endswith(" s: taking it over")
    assert (tmp_path / "ws" / "manifest" / "_meta.json").exists() and not path.exists()

# --- in-process behaviour ---------------------------------------------------------------------

def test_nested_lock_in_one_process_is_reentrant(tmp_path):
    root = locate(str(tmp_path / "ws"))
    path = tmp_path / "ws" / "state" / "lock.json"
    with workspace_lock(root, "curate run") as outer:
        with workspace_lock(locate(str(tmp_path / "ws") + "/"), "curate ingest") as inner:
            assert inner == outer and inner.command == "curate run"
            with workspace_lock(root, "curate dedup"):
                pass
            assert path.exists()
        assert _lock_file(tmp_path / "ws")["token"] == outer.token
    assert not path.exists()
    with workspace_lock(root, "curate again") as again:  # the count went back to zero
        assert again.token != outer.token
    assert not path.exists()


def test_reentrant_from_another_thread_of_the_holder(tmp_path):
    root = locate(str(tmp_path))
    seen = []

    def stage():
        with workspace_lock(root, "curate ingest") as info:
            seen.append(info)
        seen.append((tmp_path / "state" / "lock.json").exists())

    with workspace_lock(root, "curate run") as outer:
        t = threading.Thread(target=stage)
        t.start()
        t.join()
    assert seen == [outer, True]  # the thread shared the holding; only the outermost exit removes it
    assert not (tmp_path / "state" / "lock.json").exists()


def test_release_on_error_and_only_our_own_token(tmp_path):
    root = locate(str(tmp_path))
    path = tmp_path / "state" / "lock.json"
    with pytest.raises(RuntimeError), workspace_lock(root, "curate x"):
        raise RuntimeError("stage failed")
    assert not path.exists()
    with workspace_lock(root, "curate x"):
        _write_lock(tmp_path, _record(os.getppid(), token="someone-else"))  # replaced behind our back
    assert _lock_file(tmp_path)["token"] == "someone-else"


def test_lock_file_contents(tmp_path):
    with workspace_lock(locate(str(tmp_path)), "curate ingest") as info:
        rec = _lock_file(tmp_path)
    assert {k: rec[k] for k in ("pid", "host", "command", "started", "token")} == {
        "pid": os.getpid(), "host": socket.gethostname(), "command": "curate ingest",
        "started": info.started, "token": info.token}
    assert re.fullmatch(r"[0-9a-f]{32}", info.token)
    if os.path.exists("/proc/self/stat"):
        assert rec["proc_start"] == lock._proc_stat(os.getpid())[1]
    assert abs(info.started - time.time()) < 5


def test_workspace_busy_pickles(tmp_path):
    import pickle

    holder = LockInfo(1, "h", "curate x", 0.0, "t")
    err = pickle.loads(pickle.dumps(WorkspaceBusy("msg", holder, "ws")))
    assert str(err) == "msg" and err.holder == holder and err.workspace == "ws"


# --- object storage (fsspec memory filesystem) ------------------------------------------------

@pytest.fixture
def mem_root():
    name = f"ws-lock-{uuid.uuid4().hex[:8]}"
    root = locate(f"memory://{name}")
    yield root
    if root.fs.exists(root.path):
        root.fs.rm(root.path, recursive=True)


def _mem_write(root, obj) -> None:
    root.fs.pipe_file(root.join("state", "lock.json").path, json.dumps(obj).encode())


def _mem_read(root) -> dict:
    return json.loads(root.fs.cat_file(root.join("state", "lock.json").path))


def test_memory_filesystem_take_and_release(mem_root):
    path = mem_root.join("state", "lock.json").path
    with workspace_lock(mem_root, "curate ingest") as info:
        assert _mem_read(mem_root)["token"] == info.token and info.pid == os.getpid()
        with workspace_lock(mem_root, "curate dedup") as inner:
            assert inner == info
        assert mem_root.fs.exists(path)
    assert not mem_root.fs.exists(path)


def test_memory_filesystem_live_holder_and_other_host_are_busy(mem_root):
    _mem_write(mem_root, _record(os.getppid()))
    with pytest.raises(WorkspaceBusy, match=f"in use by pid {os.getppid()} "), workspace_lock(mem_root, "curate x"):
        pass
    _mem_write(mem_root, _record(_dead_pid(), host="pod-7"))
    with pytest.raises(WorkspaceBusy, match="on pod-7 .*cannot tell"), workspace_lock(mem_root, "curate x"):
        pass
    assert _mem_read(mem_root)["host"] == "pod-7"


@pytest.mark.parametrize("left", ["dead", "garbage"])
def test_memory_filesystem_stale_lock_is_taken_over(mem_root, left):
    if left == "dead":
        _mem_write(mem_root, _record(_dead_pid()))
    else:
        mem_root.fs.pipe_file(mem_root.join("state", "lock.json").path, b"{half")
    with workspace_lock(mem_root, "curate x") as info:
        assert _mem_read(mem_root)["pid"] == os.getpid() and _mem_read(mem_root)["token"] == info.token


def test_memory_filesystem_wait_and_overwritten_lock(mem_root):
    _mem_write(mem_root, _record(os.getppid()))
    path = mem_root.join("state", "lock.json").path
    timer = threading.Timer(0.2, mem_root.fs.rm_file, args=(path,))
    timer.start()
    with workspace_lock(mem_root, "curate x", wait=True, poll=0.05, timeout=10) as info:
        timer.join()
        _mem_write(mem_root, _record(os.getppid(), token="theirs"))  # a racer overwrote ours
    assert info.pid == os.getpid()
    assert _mem_read(mem_root)["token"] == "theirs"  # not removed: not our token
